package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"a synced write beside the target replaces it", Options{Sync: true}},
		{"an unsynced write through another directory replaces it", Options{TempDir: "tmp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.o.TempDir != "" {
				tc.o.TempDir = filepath.Join(dir, tc.o.TempDir)
				if err := os.Mkdir(tc.o.TempDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "state.json")
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Write(path, []byte("new"), 0o640, tc.o); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "new" {
				t.Fatalf("read %q, %v; want new", got, err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Fatalf("mode %v, %v; want 0640", fi.Mode(), err)
			}
			assertOnly(t, dir, "state.json", "tmp")
			if tc.o.TempDir != "" {
				assertOnly(t, tc.o.TempDir)
			}
		})
	}
	t.Run("a failed write leaves the old file and no temporary file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Renaming a file over a non-empty directory fails on every POSIX system.
		target := filepath.Join(dir, "sub")
		if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := Write(target, []byte("new"), 0o644, Options{Sync: true}); err == nil {
			t.Fatal("writing over a non-empty directory succeeded")
		}
		assertOnly(t, dir, "state.json", "sub")
		if got, err := os.ReadFile(path); err != nil || string(got) != "old" {
			t.Fatalf("read %q, %v; want old", got, err)
		}
	})
	t.Run("a missing directory is an error naming the file", func(t *testing.T) {
		err := Write(filepath.Join(t.TempDir(), "no", "such", "file"), nil, 0o644, Options{})
		if err == nil {
			t.Fatal("writing into a missing directory succeeded")
		}
	})
}

// assertOnly fails unless dir holds exactly the named entries (those that exist of them).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, n := range names {
		allowed[n] = true
	}
	for _, e := range ents {
		if !allowed[e.Name()] {
			t.Errorf("%s holds %s", dir, e.Name())
		}
	}
}
