// Package identity keeps the record of which log a data directory holds: the log's checkpoint
// origin and verifier key (a C2SP signed-note key), written on the log's first start and compared
// on every later one. A restart with another key or origin is refused instead of signing the same
// tree under a new key, or renaming the log mid-stream: a new key is a new log, in a new data
// directory.
//
// The record is a text file, DIR/identity, mode 0644 (nothing in it is secret):
//
//	# comment lines
//	origin log.example.org
//	verifier-key log.example.org+9a2e5f2b+AWZw…
//
// It is a file, not a key in the log's Pebble database, so that other commands read it while
// `quire serve` holds the database's lock, and so that it stays with the data directory when the
// log's storage is elsewhere (a MySQL backend, where each front end has its own data directory).
// TestPin shows that a record is written once, atomically, and then only compared.
package identity

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
)

// FileName is the record's name in a data directory.
const FileName = "identity"

// Identity is what names a log: the origin line of its checkpoints and the key that signs them.
type Identity struct {
	Origin string
	// VerifierKey is the checkpoint verifier key in C2SP signed-note form; its name is Origin.
	VerifierKey string
}

func (id Identity) String() string {
	return fmt.Sprintf("origin %q, verifier key %s", id.Origin, id.VerifierKey)
}

// Check says whether id is a possible identity: a verifier key that transparency-dev/formats
// parses (Ed25519 or ECDSA note keys), named after the origin.
func (id Identity) Check() error {
	if id.Origin == "" || strings.ContainsAny(id.Origin, "\n") {
		return fmt.Errorf("origin %q is empty or has a newline", id.Origin)
	}
	v, err := fnote.NewVerifier(id.VerifierKey)
	if err != nil {
		return fmt.Errorf("verifier key %q: %w", id.VerifierKey, err)
	}
	if v.Name() != id.Origin {
		return fmt.Errorf("verifier key %s is named %q, not the origin %q", id.VerifierKey, v.Name(), id.Origin)
	}
	return nil
}

// Marshal is the record's file content.
func (id Identity) Marshal() []byte {
	return fmt.Appendf(nil, "# The log this data directory holds. A log's identity never changes: a new key is a\n# new log, in a new data directory.\norigin %s\nverifier-key %s\n", id.Origin, id.VerifierKey)
}

// Parse reads a record written by Marshal: "origin" and "verifier-key" lines, once each, and
// comment lines.
func Parse(b []byte) (Identity, error) {
	var id Identity
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok || value == "" || seen[name] {
			return Identity{}, fmt.Errorf("line %d: want one \"origin ORIGIN\" and one \"verifier-key VKEY\" line", n)
		}
		seen[name] = true
		switch name {
		case "origin":
			id.Origin = value
		case "verifier-key":
			id.VerifierKey = value
		default:
			return Identity{}, fmt.Errorf("line %d: unknown field %q", n, name)
		}
	}
	if err := sc.Err(); err != nil {
		return Identity{}, err
	}
	if err := id.Check(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// Read returns the identity recorded in dir; an error matching fs.ErrNotExist when there is none.
func Read(dir string) (Identity, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("reading the data directory's identity: %w", err)
	}
	id, err := Parse(b)
	if err != nil {
		return Identity{}, fmt.Errorf("the data directory's identity %s is damaged: %w", path, err)
	}
	return id, nil
}

// MismatchError is Pin's refusal to serve a data directory as another log than the one it holds.
type MismatchError struct {
	Dir              string
	Recorded, Wanted Identity
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("data directory %s holds the log with %s, not %s: a log's identity never changes, and a new key or origin means a new log, so give it a new data directory (or give this one its own key)",
		e.Dir, e.Recorded, e.Wanted)
}

// Verify compares the identity dir records with id: nil if it is id, a *MismatchError if it is
// another, an error matching fs.ErrNotExist if dir records none.
func Verify(dir string, id Identity) error {
	rec, err := Read(dir)
	if err != nil {
		return err
	}
	if rec != id {
		return &MismatchError{Dir: dir, Recorded: rec, Wanted: id}
	}
	return nil
}

// Pin records id in dir if dir records no identity yet, and otherwise Verifies it. It reports
// whether it wrote the record. The record is written whole or not at all, and never over another.
func Pin(dir string, id Identity) (bool, error) {
	if err := id.Check(); err != nil {
		return false, err
	}
	err := Verify(dir, id)
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := create(filepath.Join(dir, FileName), id.Marshal()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process recorded one first.
			return false, Verify(dir, id)
		}
		return false, err
	}
	return true, nil
}

// Remove deletes dir's record, for a log that is started anew in the same directory before it has
// any entry.
func Remove(dir string) error {
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the data directory's identity: %w", err)
	}
	return nil
}

// create writes data to path only if nothing is there, atomically: a synced temporary file is
// hard-linked to path (which fails if path exists) and the directory synced, so after a crash path
// is either absent or complete.
func create(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing the data directory's identity: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the data directory's identity: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("recording the data directory's identity: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the data directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing the data directory: %w", err)
	}
	return nil
}
