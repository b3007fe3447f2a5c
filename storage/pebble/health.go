package pebble

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Writable says why the driver cannot take writes now, or nil: it is closed, its sequencer no
// longer trusts its in-memory state, the last commit failed (until one succeeds), the database's
// directory is gone, or the disk is below the reserve a commit must leave (see checkDiskSpace).
// It asks the file system each time, so an idle log notices too; it reads only memory, one stat
// and one statfs, so readiness probes may call it often.
func (s *Storage) Writable(context.Context) error {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return errors.New("log storage is closed")
	}
	return s.fault()
}

// fault is Writable for a driver that may be closing: why its database cannot take writes, or nil.
func (s *Storage) fault() error {
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

// Published returns the tree size of the latest published checkpoint and when it was published;
// ok is false before the first. The time is the publisher's clock, kept across restarts.
func (s *Storage) Published() (size uint64, at time.Time, ok bool) {
	p := s.pub.Load()
	if p.cp == nil {
		return 0, time.Time{}, false
	}
	return p.size, time.Unix(0, p.atNano), true
}

// Fresh says whether the latest checkpoint was published less than maxAge ago: an error naming
// its age otherwise, or when none was published yet. A publisher that keeps failing (witnesses
// short of quorum, a signer that fails) shows here even while no one writes, provided the
// appender republishes an unchanged tree more often than maxAge.
func (s *Storage) Fresh(maxAge time.Duration) error {
	size, at, ok := s.Published()
	if !ok {
		return errors.New("no checkpoint published yet")
	}
	if age := time.Since(at); age > maxAge {
		return fmt.Errorf("the latest checkpoint (tree size %d) was published %s ago, more than %s", size, age.Round(time.Second), maxAge)
	}
	return nil
}
