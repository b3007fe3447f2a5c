// Package keyfile reads and writes the key files of Quire's commands (the log's checkpoint key, a
// witness's cosigning key, a signer's PEM key, a TLS key): a file holding a private key must be
// accessible to its owner only, or whoever reads it can sign in the key's name, and a new key never
// replaces an existing one, which others may already trust. Errors name the file and never
// contain its content.
package keyfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// CheckPrivate refuses a private key file that group or others may read or write, for files that
// another library opens (tls.LoadX509KeyPair, say).
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %04o: it must not be readable by group or others (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// ReadPrivate reads a private key file after CheckPrivate.
func ReadPrivate(path string) ([]byte, error) {
	if err := CheckPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	return b, nil
}

// WritePair writes a new key pair: priv to privPath, mode 0600, created only if no file has that
// name and synced before the public half is written; pub to pubPath, mode 0644. The private key's
// directory is created (mode 0700) if missing.
func WritePair(privPath string, priv []byte, pubPath string, pub []byte) error {
	if err := os.MkdirAll(filepath.Dir(privPath), 0o700); err != nil {
		return fmt.Errorf("creating key directory: %w", err)
	}
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("key file %s already exists: a new key never replaces one that may be trusted", privPath)
	}
	if err != nil {
		return fmt.Errorf("creating key file: %w", err)
	}
	_, err = f.Write(priv)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing key file %s: %w", privPath, err)
	}
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		return fmt.Errorf("writing public key: %w", err)
	}
	return nil
}
