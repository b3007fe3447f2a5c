//go:build !(linux || darwin || freebsd)

package pebble

// checkDiskSpace cannot ask the file system here; Pebble's own ENOSPC handling applies.
func (s *Storage) checkDiskSpace(int) error { return nil }
