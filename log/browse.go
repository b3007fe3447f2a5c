package log

import (
	"context"
	"fmt"
)

// CheckpointLister lists the checkpoints a log published. storage/pebble's *Storage and
// storage/mysql's *History satisfy it.
type CheckpointLister interface {
	// Checkpoints returns up to n checkpoints, largest tree size first, each for a size below
	// before (0: any size).
	Checkpoints(ctx context.Context, before uint64, n int) ([][]byte, error)
}

// maxCheckpointsListed bounds one Checkpoints answer.
const maxCheckpointsListed = 1000

// PublishedCheckpoint is a checkpoint the log signed, verified with its key: the signed note
// (with any cosignatures), and its tree size and root hash.
type PublishedCheckpoint struct {
	Raw  []byte
	Size uint64
	Root []byte
}

// Checkpoints returns up to n (at most 1,000) of the checkpoints the log published, largest tree
// size first, each for a size below before (0: any size), each verified with the log's key.
// ErrUnsupported when Config.History cannot list them.
func (l *Log) Checkpoints(ctx context.Context, before uint64, n int) ([]PublishedCheckpoint, error) {
	lister, ok := l.history.(CheckpointLister)
	if !ok {
		return nil, fmt.Errorf("listing past checkpoints: %w", ErrUnsupported)
	}
	raws, err := lister.Checkpoints(ctx, before, min(max(n, 1), maxCheckpointsListed))
	if err != nil {
		return nil, fmt.Errorf("listing past checkpoints: %w", err)
	}
	out := make([]PublishedCheckpoint, 0, len(raws))
	for _, raw := range raws {
		cp, err := l.openCheckpoint(raw)
		if err != nil {
			return nil, fmt.Errorf("stored checkpoint: %w", err)
		}
		out = append(out, PublishedCheckpoint{Raw: cp.raw, Size: cp.size, Root: cp.root})
	}
	return out, nil
}

// EntryBody returns the canonical body of the entry at index, which must be below the latest
// checkpoint's size (else ErrNotFound). It reads no proof: pages that list entries use it.
func (l *Log) EntryBody(ctx context.Context, index uint64) ([]byte, error) {
	cp, err := l.latest(ctx)
	if err != nil {
		return nil, err
	}
	if index >= cp.size {
		return nil, fmt.Errorf("entry %d: the log has %d entries: %w", index, cp.size, ErrNotFound)
	}
	return l.readEntry(ctx, index, cp.size)
}
