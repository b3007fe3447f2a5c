package pebble

import (
	"errors"
	"fmt"

	pdb "github.com/cockroachdb/pebble/v2"
)

// Backup writes a consistent copy of the database to dir, which must not exist, while the log
// keeps serving and appending: a Pebble checkpoint (hard links to the immutable table files where
// dir is on the same filesystem, copies elsewhere, and the write-ahead log up to now, synced
// first). Every batch committed before Backup was called, and so every entry acknowledged and
// every checkpoint published by then, is in the copy; the copy is a closed database that New
// opens like any other, a log as it was at one instant between two commits.
func (s *Storage) Backup(dir string) error {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return errors.New("pebble storage is closed")
	}
	if err := s.db.Checkpoint(dir, pdb.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpointing the log database into %s: %w", dir, err)
	}
	return nil
}
