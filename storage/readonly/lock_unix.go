//go:build unix

package readonly

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Lock opens name for reading and takes a shared fcntl lock on it, which conflicts with the
// exclusive one a writing Pebble holds. A lock file that does not exist or cannot be opened (no
// read permission) is not locked: nothing can write there either.
func (lockFS) Lock(name string) (io.Closer, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return io.NopCloser(nil), nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		f.Close()
		return nil, fmt.Errorf("database %s is open for writing by another process: %w", name, err)
	}
	return f, nil
}
