//go:build linux || darwin || freebsd

package pebble

import (
	"fmt"
	"syscall"
)

// freeBytes is the space left to unprivileged writers on the database's file system.
func (s *Storage) freeBytes() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.Path, &st); err != nil {
		return 0, fmt.Errorf("checking free space in %s: %w", s.cfg.Path, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// checkDiskSpace refuses a commit of n bytes that would leave less than minFreeBytes free on the
// database's file system. Pebble treats a failed WAL write as fatal (pebble v2 db.go
// applyInternal: "fatal commit error" through Logger.Fatalf), so without this check a full disk
// crashes the log instead of refusing writes. The reserve keeps room for what
// still writes once batches are refused: checkpoints, the search index, Pebble's manifest.
func (s *Storage) checkDiskSpace(n int) error {
	free, err := s.freeBytes()
	if err != nil {
		return err
	}
	if need := uint64(n) + minFreeBytes; free < need {
		return fmt.Errorf("%w: %d bytes free, a commit of %d bytes needs %d", ErrDiskFull, free, n, need)
	}
	return nil
}
