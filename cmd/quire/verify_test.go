package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/storage/pebblelog"
)

// TestVerifyNamesEachCorruption builds a log of 300 entries with quire serve, then corrupts one
// thing per case in a copy of its data directory, through Pebble, and checks that quire verify
// passes the original and fails each copy naming what is wrong and where.
func TestVerifyNamesEachCorruption(t *testing.T) {
	work := t.TempDir()
	s := startServe(t, work)
	dataDir := filepath.Join(work, defaultDataDir)
	const n = 300
	artifacts := make([][]byte, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	k := newECDSA(t)
	for i := range n {
		artifacts[i] = []byte(fmt.Sprint("verify artifact ", i))
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			body, err := signHashedRekord(k, artifacts[i])
			if err == nil {
				var status int
				status, _, err = s.tryPost(body)
				if err == nil && status != 201 {
					err = fmt.Errorf("entry %d: status %d", i, status)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The search follower indexes in the background; wait until it covers the last entry.
	last := sha256.Sum256(artifacts[n-1])
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := s.get("/quire/v1/search?digest=sha256:" + hex.EncodeToString(last[:]))
		if status == 200 && strings.Contains(string(body), "indices") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the search index did not cover the last entry in 30s: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()

	if code, out, errOut := runQuire(t, work, "verify", "--data-dir", dataDir); code != 0 || !strings.Contains(out, fmt.Sprintf("verified the log in %s", dataDir)) || !strings.Contains(out, fmt.Sprintf("%d entries", n)) {
		t.Fatalf("quire verify of the intact log: exit %d\n%s%s", code, out, errOut)
	}

	skey, err := os.ReadFile(filepath.Join(dataDir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	entries := bundleEntries(t, dataDir)
	id5 := sha256.Sum256(entries[5])
	// Entry 5's dedup record, as storage/pebble keys it: "g", generation 0 (u32), identity.
	dedupKey5 := append([]byte{'g', 0, 0, 0, 0}, id5[:]...)
	// Entry 0's leaf hash is one of its search keys, whichever artifact the concurrent writes put
	// there.
	leaf0 := rfc6962.DefaultHasher.HashLeaf(entries[0])
	leafKey0 := append([]byte("leaf:"), leaf0...)

	cases := []struct {
		name    string
		corrupt func(t *testing.T, log, index *pdb.DB)
		// want are the parts of the fault that name it and where it is.
		want []string
	}{
		{"a changed hash in a stored tile is named by tile and position", func(t *testing.T, log, _ *pdb.DB) {
			edit(t, log, []byte{'t', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, func(v []byte) []byte { v[5*32+3] ^= 1; return v })
		}, []string{"tile 0/0: hash 5 is"}},
		{"a changed entry in an entry bundle is named by bundle and entry", func(t *testing.T, log, _ *pdb.DB) {
			edit(t, log, []byte{'b', 0, 0, 0, 0, 0, 0, 0, 0}, func(v []byte) []byte {
				off := 1
				for range 10 {
					off += 2 + int(binary.BigEndian.Uint16(v[off:]))
				}
				v[off+2+20] ^= 1
				return v
			})
		}, []string{"entry bundle 0: entry 10 hashes to leaf"}},
		{"a history checkpoint signed over another root is named by its size", func(t *testing.T, log, _ *pdb.DB) {
			size, raw := firstHistory(t, log)
			v := mustVerifier(t, dataDir)
			n, err := note.Open(raw, note.VerifierList(v))
			if err != nil {
				t.Fatal(err)
			}
			var cp fmtlog.Checkpoint
			if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
				t.Fatal(err)
			}
			cp.Hash[0] ^= 1
			forged, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, signer)
			if err != nil {
				t.Fatal(err)
			}
			set(t, log, binary.BigEndian.AppendUint64([]byte{'h'}, size), forged)
		}, []string{"checkpoint history, size", "but the entries give"}},
		{"a history checkpoint whose signature broke is named by its size", func(t *testing.T, log, _ *pdb.DB) {
			size, raw := firstHistory(t, log)
			raw[len(raw)-5] ^= 1
			set(t, log, binary.BigEndian.AppendUint64([]byte{'h'}, size), raw)
		}, []string{"checkpoint history, size", "signature"}},
		{"a dedup key naming another entry is named by its identity", func(t *testing.T, log, _ *pdb.DB) {
			set(t, log, dedupKey5, binary.BigEndian.AppendUint64(nil, 7))
		}, []string{fmt.Sprintf("dedup key %x: names entry 7, but entry 5 carries that identity first", id5)}},
		{"a deleted dedup key is named by its entry", func(t *testing.T, log, _ *pdb.DB) {
			if err := log.Delete(dedupKey5, pdb.Sync); err != nil {
				t.Fatal(err)
			}
		}, []string{fmt.Sprintf("entry 5: no dedup key for its identity %x", id5)}},
		{"a deleted search key is named by its entry", func(t *testing.T, _, index *pdb.DB) {
			if _, closer, err := index.Get(posting(leafKey0, 0)); err != nil {
				t.Fatalf("the index has no leaf hash posting for entry 0: %v", err)
			} else {
				closer.Close()
			}
			if err := index.Delete(posting(leafKey0, 0), pdb.Sync); err != nil {
				t.Fatal(err)
			}
		}, []string{fmt.Sprintf("search index lacks key leaf hash %x of entry 0", leaf0)}},
		{"a search key naming an entry that does not carry it is named", func(t *testing.T, _, index *pdb.DB) {
			set(t, index, posting(leafKey0, 3), nil)
		}, []string{fmt.Sprintf("search index key leaf hash %x names entry 3, which does not carry it", leaf0)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", dataDir, dir).CombinedOutput(); err != nil {
				t.Fatalf("copying the data directory: %v\n%s", err, out)
			}
			log, index := openPebbleDB(t, filepath.Join(dir, logDBDir)), openPebbleDB(t, filepath.Join(dir, indexDBDir))
			c.corrupt(t, log, index)
			for _, db := range []*pdb.DB{log, index} {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := runQuire(t, work, "verify", "--data-dir", dir)
			if code != 1 {
				t.Fatalf("quire verify: exit %d, want 1\n%s%s", code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("quire verify does not say %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// posting is the search index's Pebble key for key naming log index idx (storage/index's layout).
func posting(key []byte, idx uint64) []byte {
	p := append([]byte{0x01}, binary.AppendUvarint(nil, uint64(len(key)))...)
	return binary.BigEndian.AppendUint64(append(p, key...), idx)
}

func openPebbleDB(t *testing.T, dir string) *pdb.DB {
	t.Helper()
	db, err := pdb.Open(dir, &pdb.Options{Logger: pebblelog.New(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func set(t *testing.T, db *pdb.DB, k, v []byte) {
	t.Helper()
	if err := db.Set(k, v, pdb.Sync); err != nil {
		t.Fatal(err)
	}
}

// edit replaces the value at k with what change makes of a copy of it.
func edit(t *testing.T, db *pdb.DB, k []byte, change func([]byte) []byte) {
	t.Helper()
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatalf("reading key %x: %v", k, err)
	}
	cp := append([]byte(nil), v...)
	closer.Close()
	set(t, db, k, change(cp))
}

// firstHistory returns the smallest non-empty tree size of the checkpoint history and its note.
func firstHistory(t *testing.T, db *pdb.DB) (uint64, []byte) {
	t.Helper()
	it, err := db.NewIter(&pdb.IterOptions{LowerBound: binary.BigEndian.AppendUint64([]byte{'h'}, 1), UpperBound: []byte{'i'}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.First() {
		t.Fatal("no checkpoint history")
	}
	return binary.BigEndian.Uint64(it.Key()[1:]), append([]byte(nil), it.Value()...)
}

func mustVerifier(t *testing.T, dataDir string) note.Verifier {
	t.Helper()
	_, v := readVerifier(t, dataDir)
	return v
}

// bundleEntries reads the entries of entry bundle 0 of the log in dataDir.
func bundleEntries(t *testing.T, dataDir string) [][]byte {
	t.Helper()
	db := openPebbleDB(t, filepath.Join(dataDir, logDBDir))
	defer db.Close()
	v, closer, err := db.Get([]byte{'b', 0, 0, 0, 0, 0, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	var out [][]byte
	for off := 1; off < len(v); {
		l := int(binary.BigEndian.Uint16(v[off:]))
		out = append(out, append([]byte(nil), v[off+2:off+2+l]...))
		off += 2 + l
	}
	return out
}
