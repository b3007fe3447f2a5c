// Package readonly opens Pebble databases for reading only, so that a log can be served from
// read-only media (a read-only mount, a directory without write permission, an archive disc).
//
// Pebble's own read-only mode still creates and write-locks the database's LOCK file, which fails
// on such media. Options makes Pebble take a shared (read) lock on that file instead, opened for
// reading: it still fails while a writer holds the database, whose compactions would delete files
// under a reader, and it takes no lock at all where the file cannot even be opened for reading.
// TestServeReadOnlyMedia in cmd/quire serves a log from a read-only bind mount.
package readonly

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options sets opts to open the database read-only, locking it as the package doc says.
func Options(opts *pebble.Options) {
	opts.ReadOnly = true
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	opts.FS = lockFS{FS: fs}
}

// lockFS is a vfs.FS whose Lock takes a shared lock (see lock_unix.go).
type lockFS struct {
	vfs.FS
}
