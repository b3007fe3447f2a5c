// Package testlog builds real tlog-tiles logs on disk for the mirror and monitor tests and the
// mirror benchmark: Tessera's POSIX driver with an Ed25519 note signer, served by a static file
// server, so the clients are tested against the same bytes any C2SP tlog-tiles log serves.
package testlog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Key is a log's checkpoint signing key in C2SP signed-note form.
type Key struct {
	SKey, VKey string
}

// NewKey makes an Ed25519 note key for origin.
func NewKey(origin string) (Key, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return Key{}, fmt.Errorf("generating note key for %q: %w", origin, err)
	}
	return Key{SKey: skey, VKey: vkey}, nil
}

// Log is a Tessera POSIX log being written in Dir.
type Log struct {
	Dir      string
	Verifier note.Verifier

	cancel   context.CancelFunc
	appender *tessera.Appender
	reader   tessera.LogReader
	shutdown func(context.Context) error
}

// Open starts (or reopens) the log in dir, publishing checkpoints every 100ms.
// The log's background work stops at Close.
func Open(ctx context.Context, dir string, key Key) (*Log, error) {
	signer, err := note.NewSigner(key.SKey)
	if err != nil {
		return nil, fmt.Errorf("loading signer: %w", err)
	}
	verifier, err := note.NewVerifier(key.VKey)
	if err != nil {
		return nil, fmt.Errorf("loading verifier: %w", err)
	}
	return OpenSigned(ctx, dir, signer, verifier)
}

// OpenSigned is Open for a log whose checkpoints signer signs (an ECDSA note signer, as
// rekor-tiles makes of a PEM or KMS key) and verifier checks.
func OpenSigned(ctx context.Context, dir string, signer note.Signer, verifier note.Verifier) (*Log, error) {
	ctx, cancel := context.WithCancel(ctx)
	l, err := open(ctx, dir, signer, verifier)
	if err != nil {
		cancel()
		return nil, err
	}
	l.cancel = cancel
	return l, nil
}

func open(ctx context.Context, dir string, signer note.Signer, verifier note.Verifier) (*Log, error) {
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return nil, fmt.Errorf("opening POSIX storage in %s: %w", dir, err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(100*time.Millisecond).
		WithCheckpointRepublishInterval(0).
		WithBatching(4096, 50*time.Millisecond).
		WithPushback(1 << 20)
	a, shutdown, r, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		return nil, fmt.Errorf("starting appender: %w", err)
	}
	l := &Log{Dir: dir, Verifier: verifier, appender: a, reader: r, shutdown: shutdown}
	// Callers may read the log at once, so wait for the first (possibly empty) checkpoint.
	if err := l.Add(ctx, nil); err != nil {
		return nil, err
	}
	return l, nil
}

// Add appends entries and returns once a checkpoint covering all of them is published.
func (l *Log) Add(ctx context.Context, entries [][]byte) error {
	const chunk = 16384
	for start := 0; start < len(entries); start += chunk {
		end := min(start+chunk, len(entries))
		futures := make([]tessera.IndexFuture, 0, end-start)
		for _, e := range entries[start:end] {
			futures = append(futures, l.appender.Add(ctx, tessera.NewEntry(e)))
		}
		for i, f := range futures {
			if _, err := f(); err != nil {
				return fmt.Errorf("adding entry %d: %w", start+i, err)
			}
		}
	}
	want, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return fmt.Errorf("reading integrated size: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		raw, err := l.reader.ReadCheckpoint(ctx)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reading checkpoint: %w", err)
		}
		if err == nil {
			cp, _, _, err := log.ParseCheckpoint(raw, l.Verifier.Name(), l.Verifier)
			if err != nil {
				return fmt.Errorf("parsing published checkpoint: %w", err)
			}
			if cp.Size >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("no checkpoint covering the new entries was published within 2 minutes")
}

// Close stops the appender.
func (l *Log) Close(ctx context.Context) error {
	defer l.cancel()
	if err := l.shutdown(ctx); err != nil {
		return fmt.Errorf("shutting down appender: %w", err)
	}
	return nil
}

// Entries makes n distinct entries, numbered from first.
func Entries(first, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "test entry %d", first+i)
	}
	return out
}

// Serve serves dir as a static tlog-tiles read replica on a random 127.0.0.1 port.
func Serve(dir string) *httptest.Server {
	return httptest.NewServer(http.FileServer(http.Dir(dir)))
}

// NewVerifier returns the note verifier for key.
func NewVerifier(key Key) (note.Verifier, error) {
	v, err := note.NewVerifier(key.VKey)
	if err != nil {
		return nil, fmt.Errorf("loading verifier: %w", err)
	}
	return v, nil
}

// Fataler is the part of testing.TB SignCheckpoint needs.
type Fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// SignCheckpoint signs a checkpoint for any size and root, as a log that lies would.
func SignCheckpoint(t Fataler, key Key, size uint64, root []byte) []byte {
	t.Helper()
	s, err := note.NewSigner(key.SKey)
	if err != nil {
		t.Fatalf("loading signer: %v", err)
	}
	n, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: s.Name(), Size: size, Hash: root}.Marshal())}, s)
	if err != nil {
		t.Fatalf("signing checkpoint: %v", err)
	}
	return n
}

// Reader is the log's Tessera reader.
func (l *Log) Reader() tessera.LogReader { return l.reader }
