package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	pdb "github.com/cockroachdb/pebble/v2"
)

// Checkpoints returns up to n of the checkpoints this log published, largest tree size first,
// each for a size below before (0: any size). Paging with before set to the smallest size of the
// previous page walks the whole history, a seek per page.
func (s *Storage) Checkpoints(ctx context.Context, before uint64, n int) ([][]byte, error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return nil, errors.New("pebble storage is closed")
	}
	upper := historyKey(before)
	if before == 0 {
		upper = []byte{keyHistory + 1}
	}
	it, err := s.db.NewIterWithContext(ctx, &pdb.IterOptions{LowerBound: []byte{keyHistory}, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	var out [][]byte
	for ok := it.Last(); ok && len(out) < n; ok = it.Prev() {
		out = append(out, bytes.Clone(it.Value()))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	return out, nil
}
