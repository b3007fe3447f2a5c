//go:build unix && !linux

package mirror

import "syscall"

// syncDir makes every write durable; without syncfs(2), sync(2) flushes all filesystems.
func syncDir(string) error {
	syscall.Sync()
	return nil
}
