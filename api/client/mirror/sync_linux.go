package mirror

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncDir makes every write to dir's filesystem durable with one syncfs(2) rather than an fsync
// per file.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to sync: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing the filesystem of %s: %w", dir, err)
	}
	return nil
}
