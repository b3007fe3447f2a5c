package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	pdb "github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"
)

// testGenBits makes dedup generations of 16 entries, so a few hundred entries span many.
const testGenBits = 4

// TestDedupAcrossGenerations writes a log over many dedup generations and resubmits every entry:
// after a restart, with the filter answering and with a filter past its cap (lookups it rules out
// seek generation 3 and up; TestDedupPastTheFilterCap looks closer), and in a backup opened for
// writing. Each resubmission must get its first copy's index, and quire verify's check must find
// every record filed under its own generation.
func TestDedupAcrossGenerations(t *testing.T) {
	signer, verifier := testKeys(t)
	dir := filepath.Join(t.TempDir(), "db")
	entries := entryData("generations", 0, 300)
	writeLog(t, Config{Path: dir, dedupGenBits: testGenBits}, signer, verifier, entries)

	gens := map[uint32]int{}
	eachKey(t, dir, keyDedup, func(k, _ []byte) { gens[binary.BigEndian.Uint32(k[1:])]++ })
	if want := int(dedupGenerations(uint64(len(entries)), testGenBits)); len(gens) != want || gens[0] != 1<<testGenBits {
		t.Fatalf("dedup records by generation %v, want %d generations of %d", gens, want, 1<<testGenBits)
	}
	checkLog(t, Config{Path: dir, dedupGenBits: testGenBits}, verifier, len(entries))

	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"reopened, with the filter answering", Config{Path: dir, dedupGenBits: testGenBits}},
		{"reopened, with a filter past its cap, so that most lookups go to Pebble", Config{Path: dir, dedupGenBits: testGenBits, DedupFilterBytes: 64}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := openTestLog(t, c.cfg, fastOptions(signer))
			defer l.close(t)
			<-l.s.filterDone
			if got, want := l.s.filter.usable(), c.cfg.DedupFilterBytes == 0; got != want {
				t.Fatalf("filter usable %v, want %v", got, want)
			}
			expectDups(t, l, entries, 0)
		})
	}

	t.Run("a backup opened for writing", func(t *testing.T) {
		l := openTestLog(t, Config{Path: dir, dedupGenBits: testGenBits}, fastOptions(signer))
		more := entryData("generations", len(entries), 40)
		l.appendAll(t, more)
		out := filepath.Join(t.TempDir(), "copy")
		if err := l.s.Backup(out); err != nil {
			t.Fatal(err)
		}
		l.close(t)
		b := openTestLog(t, Config{Path: out, dedupGenBits: testGenBits}, fastOptions(signer))
		defer b.close(t)
		expectDups(t, b, append(entries[:len(entries):len(entries)], more...), 0)
	})
}

// TestVersion1DedupRecordsStillDeduplicate turns a log's dedup records into format version 1's
// ("d" identity, no generation) and reopens it: the log moves to version 2 and finds every old
// record, whether its filter answers or not; new records go to generations; and the check
// accepts the mixed log.
func TestVersion1DedupRecordsStillDeduplicate(t *testing.T) {
	signer, verifier := testKeys(t)
	dir := filepath.Join(t.TempDir(), "db")
	old := entryData("version 1", 0, 300)
	writeLog(t, Config{Path: dir}, signer, verifier, old)
	toVersion1(t, dir)

	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"with the filter answering", Config{Path: dir}},
		{"with a filter that could not hold the legacy records, so that every lookup goes to Pebble", Config{Path: dir, DedupFilterBytes: 64}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := openTestLog(t, c.cfg, fastOptions(signer))
			defer l.close(t)
			if v, err := l.s.get([]byte{keyVersion}); err != nil || !bytes.Equal(v, []byte{formatVersion}) {
				t.Fatalf("format version %v (%v) after opening for writing, want %d", v, err, formatVersion)
			}
			<-l.s.filterDone
			if got, want := l.s.filter.usable(), c.cfg.DedupFilterBytes == 0; got != want {
				t.Fatalf("filter usable %v, want %v", got, want)
			}
			expectDups(t, l, old, 0)
		})
	}

	l := openTestLog(t, Config{Path: dir}, fastOptions(signer))
	newer := entryData("version 2", 0, 100)
	l.appendAll(t, newer)
	expectDups(t, l, newer, len(old))
	expectDups(t, l, old, 0)
	l.awaitSize(t, verifier, uint64(len(old)+len(newer)))
	l.close(t)
	n := 0
	eachKey(t, dir, keyDedup, func(_, _ []byte) { n++ })
	if n != len(newer) {
		t.Fatalf("%d generation-keyed dedup records, want the %d new entries'", n, len(newer))
	}
	checkLog(t, Config{Path: dir}, verifier, len(old)+len(newer))
}

// writeLog writes entries to a new log at cfg.Path, waits for a checkpoint of them and closes it.
func TestAnUpgradedLogSeeksOnlyTheGenerationsWrittenSinceTheUpgrade(t *testing.T) {
	signer, verifier := testKeys(t)
	dir := filepath.Join(t.TempDir(), "db")
	old := entryData("version 1", 0, 300)
	writeLog(t, Config{Path: dir, dedupGenBits: testGenBits}, signer, verifier, old)
	toVersion1(t, dir)
	newer := entryData("version 2", 0, 100)
	size := uint64(len(old) + len(newer))
	// Entries 300-399 fall in generations 18-24; the version 1 records of 0-299 are the legacy one.
	want := []int64{24, 23, 22, 21, 20, 19, 18, -1}
	// A filter too small for the legacy records sends every lookup to Pebble, through every
	// generation in the seek order.
	cfg := Config{Path: dir, dedupGenBits: testGenBits, DedupFilterBytes: 64}

	t.Run("from the tree size when no generation-keyed record is stored yet", func(t *testing.T) {
		l := openTestLog(t, cfg, fastOptions(signer))
		defer l.close(t)
		if got := l.s.dedupSeekOrder(size); !slices.Equal(got, want) {
			t.Fatalf("seek order for %d entries %v, want %v", size, got, want)
		}
		l.appendAll(t, newer)
		l.awaitSize(t, verifier, size)
		expectDups(t, l, newer, len(old))
		expectDups(t, l, old, 0)
	})
	t.Run("from the first stored record after a restart", func(t *testing.T) {
		l := openTestLog(t, cfg, fastOptions(signer))
		defer l.close(t)
		if got := l.s.dedupSeekOrder(size); !slices.Equal(got, want) {
			t.Fatalf("seek order for %d entries %v, want %v", size, got, want)
		}
		expectDups(t, l, newer, len(old))
		expectDups(t, l, old, 0)
	})
	checkLog(t, Config{Path: dir, dedupGenBits: testGenBits}, verifier, int(size))
}

func writeLog(t *testing.T, cfg Config, signer note.Signer, verifier note.Verifier, entries [][]byte) {
	t.Helper()
	l := openTestLog(t, cfg, fastOptions(signer))
	l.appendAll(t, entries)
	l.awaitSize(t, verifier, uint64(len(entries)))
	l.close(t)
}

// toVersion1 rewrites every dedup record of the database at dir as format version 1 stored it
// and sets the format version to 1.
func toVersion1(t *testing.T, dir string) {
	t.Helper()
	db, err := pdb.Open(dir, &pdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewBatch()
	n := 0
	eachKeyOf(t, db, keyDedup, func(k, v []byte) {
		if err := wb.Delete(k, nil); err != nil {
			t.Fatal(err)
		}
		if err := wb.Set(dedupKey(nil, -1, dedupIdentity(k)), v, nil); err != nil {
			t.Fatal(err)
		}
		n++
	})
	if n == 0 {
		t.Fatal("no dedup records to rewrite")
	}
	if err := wb.Set([]byte{keyVersion}, []byte{legacyFormatVersion}, nil); err != nil {
		t.Fatal(err)
	}
	if err := wb.Commit(pdb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkLog runs quire verify's check on the database cfg names and expects it to pass with
// dedupKeys records.
func checkLog(t *testing.T, cfg Config, verifier note.Verifier, dedupKeys int) {
	t.Helper()
	cfg.ReadOnly = true
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := d.(*Storage)
	defer s.Close()
	rep, err := s.Check(context.Background(), CheckOptions{Verifier: verifier})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if rep.DedupKeys != dedupKeys {
		t.Fatalf("Check read %d dedup records, want %d", rep.DedupKeys, dedupKeys)
	}
}

// eachKey calls fn with every key (and value) starting with prefix in the closed database at dir.
func eachKey(t *testing.T, dir string, prefix byte, fn func(k, v []byte)) {
	t.Helper()
	db, err := pdb.Open(dir, &pdb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eachKeyOf(t, db, prefix, fn)
}

func eachKeyOf(t *testing.T, db *pdb.DB, prefix byte, fn func(k, v []byte)) {
	t.Helper()
	it, err := db.NewIter(&pdb.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		fn(bytes.Clone(it.Key()), bytes.Clone(it.Value()))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
}
