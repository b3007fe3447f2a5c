package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sync"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// History is the log's checkpoint history: for each tree size, a checkpoint the log published at
// that size. Tessera's driver keeps only the latest checkpoint, so every front end's Watcher
// records each one it sees. A front end polls every tenth of a second and the driver publishes
// at most once a second, so while any front end runs none is missed; a size no front end saw is
// not found, never answered with another size's checkpoint.
type History struct {
	db *sql.DB
}

// History returns the database's checkpoint history.
func (d *DB) History() *History { return &History{db: d.db} }

// Record stores cp as the checkpoint for size, unless one is stored already: front ends that
// saw the same publication race to insert the same row, and a republication at the same size
// (new cosignatures) is as good as the first.
func (h *History) Record(ctx context.Context, size uint64, cp []byte) error {
	if _, err := h.db.ExecContext(ctx, "INSERT IGNORE INTO `QuireCheckpoint` (`size`, `note`) VALUES (?, ?)", size, cp); err != nil {
		return fmt.Errorf("recording checkpoint for size %d: %w", size, err)
	}
	return nil
}

// CheckpointAt returns the checkpoint recorded for size, or an error wrapping fs.ErrNotExist.
func (h *History) CheckpointAt(ctx context.Context, size uint64) ([]byte, error) {
	var cp []byte
	err := h.db.QueryRowContext(ctx, "SELECT `note` FROM `QuireCheckpoint` WHERE `size` = ?", size).Scan(&cp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("no checkpoint recorded for size %d: %w", size, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint for size %d: %w", size, err)
	}
	return cp, nil
}

// Watcher is the checkpoint source of a front end's tessera.PublicationAwaiter: each call reads
// the latest published checkpoint, records a new one in History, and returns the newest one
// whose entries deduplication has indexed. So a write is answered only when its checkpoint is in
// History, and only when a copy of it sent to any front end afterwards gets its index.
type Watcher struct {
	read     func(context.Context) ([]byte, error)
	history  *History
	verifier note.Verifier
	indexed  func(context.Context) (uint64, error)

	mu   sync.Mutex
	seen []byte // the latest checkpoint read, recorded in history
	// pending are the checkpoints seen since covered, oldest first: under load a new one is
	// published before dedup has indexed the last, and answering with an older one that it
	// has indexed beats waiting for it to catch up with the newest.
	pending []sizedCheckpoint
	covered []byte // the newest checkpoint all of whose entries dedup has indexed
}

// maxPending bounds the checkpoints a Watcher holds back, about a minute of publications.
const maxPending = 64

type sizedCheckpoint struct {
	raw  []byte
	size uint64
}

// WatcherConfig is what a Watcher needs.
type WatcherConfig struct {
	// ReadCheckpoint reads the latest published checkpoint (Tessera's LogReader.ReadCheckpoint).
	ReadCheckpoint func(context.Context) ([]byte, error)
	// History records what the Watcher sees.
	History *History
	// VerifierKey is the log's checkpoint verifier key: nothing it does not verify is recorded.
	VerifierKey string
	// DedupIndexed, if set, says how many leading entries deduplication has indexed; a
	// checkpoint is held back until it covers them all.
	DedupIndexed func(context.Context) (uint64, error)
}

// NewWatcher checks cfg and returns a Watcher.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.ReadCheckpoint == nil || cfg.History == nil {
		return nil, errors.New("watcher config: ReadCheckpoint and History are required")
	}
	v, err := note.NewVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("watcher config: parsing verifier key: %w", err)
	}
	return &Watcher{read: cfg.ReadCheckpoint, history: cfg.History, verifier: v, indexed: cfg.DedupIndexed}, nil
}

// ReadCheckpoint is the function tessera.NewPublicationAwaiter polls. Until a checkpoint is
// covered it returns an error wrapping fs.ErrNotExist, which the awaiter takes as "not yet".
func (w *Watcher) ReadCheckpoint(ctx context.Context) ([]byte, error) {
	raw, err := w.read(ctx)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !bytes.Equal(raw, w.seen) {
		size, err := w.open(raw)
		if err != nil {
			return nil, err
		}
		if err := w.history.Record(ctx, size, raw); err != nil {
			return nil, err
		}
		w.seen = raw
		if len(w.pending) == maxPending {
			// Dedup is far behind; the newest checkpoints are the ones worth waiting for.
			w.pending = w.pending[1:]
		}
		w.pending = append(w.pending, sizedCheckpoint{raw: raw, size: size})
	}
	if len(w.pending) > 0 {
		n := uint64(math.MaxUint64)
		if w.indexed != nil {
			var err error
			if n, err = w.indexed(ctx); err != nil {
				return nil, fmt.Errorf("reading deduplication progress: %w", err)
			}
		}
		for len(w.pending) > 0 && w.pending[0].size <= n {
			w.covered = w.pending[0].raw
			w.pending = w.pending[1:]
		}
	}
	if w.covered == nil {
		return nil, fmt.Errorf("no checkpoint covered by deduplication yet: %w", fs.ErrNotExist)
	}
	// A copy: the awaiter hands it to every waiting write.
	return bytes.Clone(w.covered), nil
}

// open verifies a checkpoint with the log's key and returns its size.
func (w *Watcher) open(raw []byte) (uint64, error) {
	n, err := note.Open(raw, note.VerifierList(w.verifier))
	if err != nil {
		return 0, fmt.Errorf("latest checkpoint does not verify with the log's key: %w", err)
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return 0, fmt.Errorf("parsing latest checkpoint: %w", err)
	}
	if cp.Origin != w.verifier.Name() {
		return 0, fmt.Errorf("latest checkpoint has origin %q, not the log's %q", cp.Origin, w.verifier.Name())
	}
	return cp.Size, nil
}

// Checkpoints returns up to n of the recorded checkpoints, largest tree size first, each for a
// size below before (0: any size).
func (h *History) Checkpoints(ctx context.Context, before uint64, n int) ([][]byte, error) {
	q, args := "SELECT `note` FROM `QuireCheckpoint` ORDER BY `size` DESC LIMIT ?", []any{n}
	if before > 0 {
		q, args = "SELECT `note` FROM `QuireCheckpoint` WHERE `size` < ? ORDER BY `size` DESC LIMIT ?", []any{before, n}
	}
	rows, err := h.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var cp []byte
		if err := rows.Scan(&cp); err != nil {
			return nil, fmt.Errorf("reading a checkpoint: %w", err)
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	return out, nil
}
