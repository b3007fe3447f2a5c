package identity

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func newIdentity(t testing.TB, origin string) Identity {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Origin: origin, VerifierKey: vkey}
}

func TestPin(t *testing.T) {
	dir := t.TempDir()
	first := newIdentity(t, "log.example.org")
	t.Run("a data directory without a record records the first identity, readable by all", func(t *testing.T) {
		if _, err := Read(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read of a new directory = %v, want fs.ErrNotExist", err)
		}
		wrote, err := Pin(dir, first)
		if err != nil || !wrote {
			t.Fatalf("Pin = %t, %v; want it written", wrote, err)
		}
		fi, err := os.Stat(filepath.Join(dir, FileName))
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("record: %v, mode %v; want 0644", err, fi.Mode().Perm())
		}
		if got, err := Read(dir); err != nil || got != first {
			t.Fatalf("Read = %+v, %v; want %+v", got, err, first)
		}
		if tmp, _ := filepath.Glob(filepath.Join(dir, ".*")); len(tmp) != 0 {
			t.Errorf("temporary files left behind: %v", tmp)
		}
	})
	t.Run("the same identity again writes nothing", func(t *testing.T) {
		if wrote, err := Pin(dir, first); err != nil || wrote {
			t.Fatalf("Pin = %t, %v; want nothing written", wrote, err)
		}
	})
	for _, tc := range []struct {
		name string
		id   Identity
	}{
		{"another key for the same origin is refused, naming both", newIdentity(t, "log.example.org")},
		{"a key for another origin is refused, naming both", newIdentity(t, "other.example.org")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(dir, FileName))
			_, err := Pin(dir, tc.id)
			var me *MismatchError
			if !errors.As(err, &me) || me.Recorded != first || me.Wanted != tc.id {
				t.Fatalf("Pin = %v, want a *MismatchError from %+v to %+v", err, first, tc.id)
			}
			for _, s := range []string{first.VerifierKey, tc.id.VerifierKey, "new data directory"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if after, _ := os.ReadFile(filepath.Join(dir, FileName)); string(after) != string(before) {
				t.Errorf("a refused Pin changed the record")
			}
		})
	}
	t.Run("a key not named after its origin is not an identity", func(t *testing.T) {
		id := newIdentity(t, "log.example.org")
		id.Origin = "other.example.org"
		if _, err := Pin(t.TempDir(), id); err == nil {
			t.Fatal("Pin accepted a key named log.example.org for origin other.example.org")
		}
	})
	t.Run("a damaged record is an error, not a missing one", func(t *testing.T) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, FileName), []byte("origin log.example.org\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Pin(d, first); err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("Pin over a damaged record = %v, want it refused as damaged", err)
		}
	})
	t.Run("a removed record lets the directory record a new identity", func(t *testing.T) {
		if err := Remove(dir); err != nil {
			t.Fatal(err)
		}
		other := newIdentity(t, "other.example.org")
		if wrote, err := Pin(dir, other); err != nil || !wrote {
			t.Fatalf("Pin after Remove = %t, %v", wrote, err)
		}
	})
}

// FuzzParse checks the record parser never panics and that what it accepts is a valid identity
// whose record parses back to itself.
func FuzzParse(f *testing.F) {
	_, vkey, err := note.GenerateKey(rand.Reader, "log.example.org")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(Identity{Origin: "log.example.org", VerifierKey: vkey}.Marshal())
	f.Add([]byte("origin log.example.org\norigin log.example.org\n"))
	f.Add([]byte("verifier-key " + vkey + "\norigin log.example.org\n# note\n\n"))
	f.Add([]byte("origin a b\nverifier-key x+00000000+AA==\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := Parse(b)
		if err != nil {
			return
		}
		if err := id.Check(); err != nil {
			t.Fatalf("Parse accepted %+v, which Check refuses: %v", id, err)
		}
		again, err := Parse(id.Marshal())
		if err != nil || again != id {
			t.Fatalf("record of %+v parses as %+v, %v", id, again, err)
		}
	})
}
