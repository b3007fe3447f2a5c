package pebble

import (
	"context"
	"fmt"
	"os"
)

// Healthy says whether the storage can take writes: nil, or the reason it cannot. It fails while
// the sequencer's state is broken, after a failed commit until one succeeds, and when the
// database's directory is gone or its disk too full for a commit, which it asks the file system
// each time, so an idle log notices too.
func (s *Storage) Healthy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.brokenErr(); err != nil {
		return err
	}
	if p := s.commitFault.Load(); p != nil {
		return fmt.Errorf("the last commit failed: %w", *p)
	}
	if _, err := os.Stat(s.cfg.Path); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	return s.checkDiskSpace(0)
}
