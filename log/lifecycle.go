package log

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Frozen reports whether the log is frozen (permanently read-only, see Config.Frozen) and the size
// it was frozen at, for status pages.
func (l *Log) Frozen() (finalSize uint64, frozen bool) {
	return l.finalSize, l.frozen
}

// AwaitIndexed blocks until the search follower has indexed the first size entries, for commands
// that bring the index up to date before they finish (an import, a freeze). It needs an Index and
// a running follower.
func (l *Log) AwaitIndexed(ctx context.Context, size uint64) error {
	if l.index == nil || l.follower == nil {
		return errors.New("awaiting the search index: the log has no index follower")
	}
	for {
		done, err := l.index.Progress(ctx)
		if err != nil {
			return fmt.Errorf("reading index progress: %w", err)
		}
		if done >= size {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("awaiting the search index at %d of %d entries: %w", done, size, ctx.Err())
		case <-l.followerDone:
			return errors.New("awaiting the search index: the follower stopped")
		case <-time.After(l.follower.interval):
		}
	}
}
