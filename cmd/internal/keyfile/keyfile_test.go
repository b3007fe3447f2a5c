package keyfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPrivate(t *testing.T) {
	const secret = "PRIVATE+KEY+secret"
	for _, tc := range []struct {
		name string
		mode os.FileMode
		want string // "" means the read succeeds
	}{
		{"a key only its owner can access is read", 0o600, ""},
		{"a key its owner can only read is read", 0o400, ""},
		{"a key others can read is refused", 0o644, "mode 0644"},
		{"a key its group can read is refused", 0o640, "mode 0640"},
		{"a key others can write is refused", 0o602, "mode 0602"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := ReadPrivate(path)
			if tc.want == "" {
				if err != nil || string(got) != secret {
					t.Fatalf("ReadPrivate = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ReadPrivate error %v, want one naming %s and %q", err, path, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q contains the key", err)
			}
		})
	}
	t.Run("a missing key file is an error", func(t *testing.T) {
		if _, err := ReadPrivate(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("ReadPrivate of a missing file: %v", err)
		}
	})
}

func TestWritePair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	t.Run("a new pair is written with the private half for its owner only", func(t *testing.T) {
		if err := WritePair(priv, []byte("secret\n"), pub, []byte("public\n")); err != nil {
			t.Fatal(err)
		}
		for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, priv: 0o600, pub: 0o644} {
			fi, err := os.Stat(path)
			if err != nil || fi.Mode() != mode {
				t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, mode)
			}
		}
		if b, err := ReadPrivate(priv); err != nil || string(b) != "secret\n" {
			t.Fatalf("private half %q, %v", b, err)
		}
	})
	t.Run("an existing key is never replaced", func(t *testing.T) {
		err := WritePair(priv, []byte("other"), pub, []byte("other"))
		if err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("WritePair over an existing key: %v", err)
		}
		if b, _ := os.ReadFile(priv); string(b) != "secret\n" {
			t.Fatalf("private key now %q", b)
		}
		if b, _ := os.ReadFile(pub); string(b) != "public\n" {
			t.Fatalf("public key now %q", b)
		}
	})
}
