package pebble

import (
	"context"
	"errors"
	"time"
)

// Writable says why the driver cannot take writes now, or nil: it is closed, its sequencer no
// longer trusts its in-memory state after a failed commit, or the disk is below the reserve a
// commit must leave (see checkDiskSpace). It reads only memory and one statfs, so readiness
// probes may call it often.
func (s *Storage) Writable(context.Context) error {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return errors.New("log storage is closed")
	}
	if err := s.brokenErr(); err != nil {
		return err
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
