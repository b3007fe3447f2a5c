package pebble

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

// TestCheck writes a 600-entry log (three bundles, a partial tile above level 0), changes one
// record per case through Pebble, and checks that Check names it; the intact log passes.
func TestCheck(t *testing.T) {
	const n = 600
	cases := []struct {
		name    string
		corrupt func(t *testing.T, db *pdb.DB)
		entry   func(uint64, []byte) error
		want    string
	}{
		{name: "an intact log passes", want: ""},
		{name: "a changed hash in a tile above level 0 is named by tile and position", corrupt: func(t *testing.T, db *pdb.DB) {
			editKey(t, db, tileKey(nil, 1, 0), func(v []byte) { v[32+4] ^= 1 })
		}, want: "tile 1/0.p/2: hash 1 is"},
		{name: "a changed root in the tree state is named", corrupt: func(t *testing.T, db *pdb.DB) {
			editKey(t, db, []byte{keyTreeState}, func(v []byte) { v[8] ^= 1 })
		}, want: "tree state: root"},
		{name: "a changed compact range hash in the tree state is named", corrupt: func(t *testing.T, db *pdb.DB) {
			editKey(t, db, []byte{keyTreeState}, func(v []byte) { v[len(v)-1] ^= 1 })
		}, want: "tree state: compact range hash"},
		{name: "a tile beyond the tree is counted", corrupt: func(t *testing.T, db *pdb.DB) {
			setKey(t, db, tileKey(nil, 0, 9), make([]byte, 32))
		}, want: "hash tiles: 5 stored, the tree has 4"},
		{name: "a latest checkpoint signed by another key is named", corrupt: func(t *testing.T, db *pdb.DB) {
			other, _ := testKeys(t)
			cp, err := note.Sign(&note.Note{Text: testOrigin + "\n600\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, other)
			if err != nil {
				t.Fatal(err)
			}
			setKey(t, db, []byte{keyCheckpoint}, encodePublished(1, n, cp))
		}, want: "latest checkpoint: signature"},
		{name: "a dedup record for no entry is named", corrupt: func(t *testing.T, db *pdb.DB) {
			stray := sha256.Sum256([]byte("never logged"))
			setKey(t, db, dedupKey(nil, 0, stray[:]), binary.BigEndian.AppendUint64(nil, 3))
		}, want: "names entry 3, which does not carry it"},
		{name: "a legacy dedup record for no entry is named", corrupt: func(t *testing.T, db *pdb.DB) {
			stray := sha256.Sum256([]byte("never logged"))
			setKey(t, db, dedupKey(nil, -1, stray[:]), binary.BigEndian.AppendUint64(nil, 3))
		}, want: "names entry 3, which does not carry it"},
		{name: "an entry whose dedup record is missing is named", corrupt: func(t *testing.T, db *pdb.DB) {
			if err := db.Delete(dedupKey(nil, 0, checkIdentity(412)), pdb.Sync); err != nil {
				t.Fatal(err)
			}
		}, want: "entry 412: no dedup key for its identity"},
		{name: "a dedup record naming a later copy is named", corrupt: func(t *testing.T, db *pdb.DB) {
			setKey(t, db, dedupKey(nil, 0, checkIdentity(40)), binary.BigEndian.AppendUint64(nil, 41))
		}, want: "names entry 41, but entry 40 carries that identity first"},
		{name: "a dedup record filed under another generation is named", corrupt: func(t *testing.T, db *pdb.DB) {
			if err := db.Delete(dedupKey(nil, 0, checkIdentity(7)), pdb.Sync); err != nil {
				t.Fatal(err)
			}
			setKey(t, db, dedupKey(nil, 1, checkIdentity(7)), binary.BigEndian.AppendUint64(nil, 7))
		}, want: "names entry 7, which belongs to generation 0, not 1"},
		{name: "an entry the caller's check refuses is named by index", entry: func(i uint64, _ []byte) error {
			if i == 517 {
				return errors.New("not what the caller expected")
			}
			return nil
		}, want: "entry 517: not what the caller expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			signer, verifier := testKeys(t)
			l := openTestLog(t, Config{Path: dir}, fastOptions(signer))
			l.appendAll(t, entryData("check", 0, n))
			l.awaitSize(t, verifier, n)
			l.close(t)
			if c.corrupt != nil {
				db, err := pdb.Open(dir, &pdb.Options{})
				if err != nil {
					t.Fatal(err)
				}
				c.corrupt(t, db)
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			d, err := New(context.Background(), Config{Path: dir, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			s := d.(*Storage)
			defer s.Close()
			var done uint64
			rep, err := s.Check(context.Background(), CheckOptions{Verifier: verifier, Entry: c.entry, Progress: func(d, _ uint64) { done = d }})
			if c.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if rep.Size != n || rep.CheckpointSize != n || rep.Bundles != 3 || rep.Tiles != 4 || rep.DedupKeys != n || rep.History == 0 || done != n {
					t.Errorf("report %+v, progress %d; want %d entries, 3 bundles, 4 tiles, %d dedup keys, some history", rep, done, n, n)
				}
				return
			}
			var f *Fault
			if !errors.As(err, &f) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want a *Fault saying %q", err, c.want)
			}
		})
	}
}

// checkIdentity is the dedup identity of entry i of TestCheck's log.
func checkIdentity(i int) []byte {
	return tessera.NewEntry(entryData("check", i, 1)[0]).Identity()
}

func setKey(t *testing.T, db *pdb.DB, k, v []byte) {
	t.Helper()
	if err := db.Set(k, v, pdb.Sync); err != nil {
		t.Fatal(err)
	}
}

func editKey(t *testing.T, db *pdb.DB, k []byte, change func([]byte)) {
	t.Helper()
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatalf("reading key %x: %v", k, err)
	}
	cp := append([]byte(nil), v...)
	closer.Close()
	change(cp)
	setKey(t, db, k, cp)
}
