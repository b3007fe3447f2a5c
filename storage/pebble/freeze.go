package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/tessera"
)

// ErrFrozen is returned (wrapped) when an appender or an import is asked of a frozen log.
var ErrFrozen = errors.New("the log is frozen: permanently read-only")

// Frozen reports whether Freeze has marked the log, and the size it was frozen at.
func (s *Storage) Frozen() (size uint64, frozen bool, err error) {
	v, err := s.get([]byte{keyFrozen})
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the frozen mark: %w", err)
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("frozen mark is %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// Freeze makes the log permanently read-only: it signs a final checkpoint for the integrated tree
// with opts' checkpoint publisher (its signer and witnesses) and stores it as the latest and in
// the history together with the frozen mark, in one synced batch, so a crash leaves the log either
// writable as before or frozen with its final checkpoint. From then on no appender starts on the
// database. It needs a Storage with no appender (a log is frozen while nothing serves it) and
// refuses a log already frozen. It returns the final checkpoint.
func (s *Storage) Freeze(ctx context.Context, opts *tessera.AppendOptions) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("pebble storage: nil AppendOptions")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return nil, errors.New("pebble storage is closed")
	case s.started || s.importing:
		return nil, errors.New("pebble storage: cannot freeze while an appender or an import runs")
	case s.cfg.ReadOnly:
		return nil, errors.New("pebble storage: opened read-only")
	}
	if size, frozen, err := s.Frozen(); err != nil {
		return nil, err
	} else if frozen {
		return nil, fmt.Errorf("already frozen at size %d: %w", size, ErrFrozen)
	}
	head, prev := s.tree.Load(), s.pub.Load()
	if prev.cp != nil && head.size < prev.size {
		return nil, fmt.Errorf("integrated size %d is below published size %d", head.size, prev.size)
	}
	cp, err := opts.CheckpointPublisher(s, s.cfg.HTTPClient)(ctx, head.size, head.root)
	if err != nil {
		return nil, fmt.Errorf("signing the final checkpoint for size %d: %w", head.size, err)
	}
	now := time.Now().UnixNano()
	wb := s.db.NewBatch()
	defer wb.Close()
	var frozen [8]byte
	binary.BigEndian.PutUint64(frozen[:], head.size)
	for _, kv := range []struct{ k, v []byte }{
		{[]byte{keyCheckpoint}, encodePublished(now, head.size, cp)},
		{historyKey(head.size), cp},
		{[]byte{keyFrozen}, frozen[:]},
	} {
		if err := wb.Set(kv.k, kv.v, nil); err != nil {
			return nil, fmt.Errorf("batching the freeze: %w", err)
		}
	}
	if err := wb.Commit(pdb.Sync); err != nil {
		return nil, fmt.Errorf("committing the freeze: %w", err)
	}
	s.pub.Store(&published{size: head.size, atNano: now, cp: cp, next: make(chan struct{})})
	close(prev.next)
	return cp, nil
}
