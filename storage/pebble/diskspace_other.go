//go:build !(linux || darwin || freebsd)

package pebble

import "errors"

// freeBytes cannot ask the file system here.
func (s *Storage) freeBytes() (uint64, error) {
	return 0, errors.New("free disk space is not known on this platform")
}

// checkDiskSpace cannot ask the file system here; Pebble's own ENOSPC handling applies.
func (s *Storage) checkDiskSpace(int) error { return nil }
