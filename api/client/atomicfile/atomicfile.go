// Package atomicfile replaces files so that a reader, or a client run again after a crash, finds
// under a file's name either its old content or its new content, never part of either: the data
// goes to a temporary file on the same file system, which is then renamed over the target (rename
// is atomic on POSIX file systems). The client's state files, mirrored tiles and bundles are
// written this way; TestWrite shows a failed write leaves the old file and no temporary behind.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Options say where the temporary file goes and whether the data is made durable first.
type Options struct {
	// TempDir holds the temporary file; it must be on the target's file system. Empty means the
	// target's own directory.
	TempDir string
	// Sync flushes the data to disk before the rename, so that after a power loss the target
	// holds the old or the new content. Without it a crash may leave the new name with missing
	// data; a caller that syncs many files at once (a mirror) or can check what it wrote does
	// without.
	Sync bool
}

// Write replaces path with data, mode perm. On error path is unchanged and the temporary file is
// removed.
func Write(path string, data []byte, perm os.FileMode, o Options) error {
	dir := o.TempDir
	if dir == "" {
		dir = filepath.Dir(path)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	err = write(f, data, perm, o.Sync)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// write fills f and closes it.
func write(f *os.File, data []byte, perm os.FileMode, sync bool) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
