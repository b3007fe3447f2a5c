package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// TestRestartKeepsTheLog reopens the same directory: the tree, its checkpoint and its dedup index
// are as they were, and appends carry on from there.
func TestRestartKeepsTheLog(t *testing.T) {
	signer, verifier := testKeys(t)
	for _, tc := range []struct {
		name   string
		first  int
		second int
	}{
		{name: "a log ending mid-bundle", first: 300, second: 50},
		{name: "a log ending on a bundle boundary", first: 512, second: 256},
		{name: "a log of one entry", first: 1, second: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Path: filepath.Join(t.TempDir(), "db")}
			ctx := context.Background()

			l := openTestLog(t, cfg, fastOptions(signer))
			first := entryData(tc.name, 0, tc.first)
			l.appendAll(t, first)
			cp1 := l.awaitSize(t, verifier, uint64(tc.first))
			raw1, err := l.s.ReadCheckpoint(ctx)
			if err != nil {
				t.Fatalf("ReadCheckpoint: %v", err)
			}
			l.close(t)

			l = openTestLog(t, cfg, fastOptions(signer))
			defer l.close(t)
			if size, err := l.s.IntegratedSize(ctx); err != nil || size != uint64(tc.first) {
				t.Fatalf("IntegratedSize after reopen = %d, %v; want %d", size, err, tc.first)
			}
			raw2, err := l.s.ReadCheckpoint(ctx)
			if err != nil {
				t.Fatalf("ReadCheckpoint after reopen: %v", err)
			}
			if !bytes.Equal(raw1, raw2) {
				t.Fatalf("checkpoint changed across restart:\n%s\nthen\n%s", raw1, raw2)
			}
			if got := parseCheckpoint(t, verifier, raw2); !bytes.Equal(got.Hash, cp1.Hash) {
				t.Fatalf("root after reopen %x, want %x", got.Hash, cp1.Hash)
			}

			again := l.appendAll(t, first[:min(len(first), 20)])
			for i, idx := range again {
				if !idx.IsDup || idx.Index != uint64(i) {
					t.Fatalf("resubmitted entry %d after restart got %+v, want its old index as a duplicate", i, idx)
				}
			}
			second := entryData(tc.name, tc.first, tc.second)
			got := l.appendAll(t, second)
			for i, idx := range got {
				if idx.IsDup || idx.Index != uint64(tc.first+i) {
					t.Fatalf("new entry %d after restart got %+v, want index %d", i, idx, tc.first+i)
				}
			}
			cp := l.awaitSize(t, verifier, uint64(tc.first+tc.second))
			if want := rfc6962Root(t, append(first, second...)); !bytes.Equal(cp.Hash, want) {
				t.Fatalf("root after appending past the restart %x, want %x", cp.Hash, want)
			}
		})
	}
}

// TestDedup checks that identical entries get the first copy's index, whether they meet in one
// batch, in concurrent submissions, or not at all when dedup is off.
func TestDedup(t *testing.T) {
	signer, _ := testKeys(t)
	for _, tc := range []struct {
		name      string
		disable   bool
		batchSize uint
		copies    int
	}{
		{name: "concurrent copies in one batch share one index", batchSize: 1024, copies: 200},
		{name: "concurrent copies spread over many batches share one index", batchSize: 3, copies: 200},
		{name: "with dedup off every copy gets its own index", disable: true, batchSize: 16, copies: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := fastOptions(signer).WithBatching(tc.batchSize, 5*time.Millisecond)
			l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db"), DisableDedup: tc.disable}, opts)
			defer l.close(t)
			l.appendAll(t, entryData("before", 0, 10))

			ctx := context.Background()
			results := make([]tessera.Index, tc.copies)
			errs := make([]error, tc.copies)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range tc.copies {
				wg.Go(func() {
					<-start
					results[i], errs[i] = l.add(ctx, tessera.NewEntry([]byte("the same entry")))()
				})
			}
			close(start)
			wg.Wait()

			indices := map[uint64]int{}
			originals := 0
			for i := range results {
				if errs[i] != nil {
					t.Fatalf("copy %d: %v", i, errs[i])
				}
				indices[results[i].Index]++
				if !results[i].IsDup {
					originals++
				}
			}
			if tc.disable {
				if len(indices) != tc.copies || originals != tc.copies {
					t.Fatalf("dedup off: %d distinct indices and %d originals for %d copies", len(indices), originals, tc.copies)
				}
				return
			}
			if len(indices) != 1 || originals != 1 {
				t.Fatalf("dedup on: indices %v and %d originals, want one index and one original", indices, originals)
			}
			if _, ok := indices[10]; !ok {
				t.Fatalf("dedup on: shared index %v, want 10 (the next free index)", indices)
			}
		})
	}
}

// TestDedupIndices checks the lookup deduplication makes: the first index of every identity
// the log holds, -1 for the others, in the order asked, whatever the sorted lookup does.
func TestDedupIndices(t *testing.T) {
	signer, _ := testKeys(t)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, fastOptions(signer))
	defer l.close(t)
	entries := entryData("indices", 0, 700)
	l.appendAll(t, entries)
	var ids [][]byte
	var want []int64
	for i := len(entries) - 1; i >= 0; i -= 7 {
		ids = append(ids, tessera.NewEntry(entries[i]).Identity())
		want = append(want, int64(i))
		ids = append(ids, tessera.NewEntry([]byte(fmt.Sprintf("absent %d", i))).Identity())
		want = append(want, -1)
	}
	got, err := l.s.DedupIndices(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DedupIndices = %v, want %v", got, want)
	}
}

// TestAwaitWakesManyWaiters has many callers add and wait at once; each must come back with a
// signed checkpoint that covers its own index.
func TestAwaitWakesManyWaiters(t *testing.T) {
	signer, verifier := testKeys(t)
	opts := fastOptions(signer).WithCheckpointInterval(100 * time.Millisecond)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, opts)
	defer l.close(t)

	const waiters = 2000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	entries := entryData("await", 0, waiters)
	type answer struct {
		idx tessera.Index
		cp  []byte
		err error
	}
	answers := make([]answer, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() {
			idx, cp, err := l.s.Await(ctx, l.add(ctx, tessera.NewEntry(entries[i])))
			answers[i] = answer{idx, cp, err}
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("waiter %d: %v", i, a.err)
		}
		if cp := parseCheckpoint(t, verifier, a.cp); cp.Size <= a.idx.Index {
			t.Fatalf("waiter %d: index %d not covered by checkpoint size %d", i, a.idx.Index, cp.Size)
		}
	}

	t.Run("a waiter whose context ends gets its error", func(t *testing.T) {
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		beyond := func() (tessera.Index, error) { return tessera.Index{Index: 1 << 40}, nil }
		if _, _, err := l.s.Await(short, beyond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Await past the end = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("a failed future's error is returned", func(t *testing.T) {
		boom := errors.New("boom")
		if _, _, err := l.s.Await(ctx, failed(boom)); !errors.Is(err, boom) {
			t.Fatalf("Await(failed future) = %v, want boom", err)
		}
	})
}

// TestCheckpointHistory checks that every checkpoint published stays readable by its size.
func TestCheckpointHistory(t *testing.T) {
	signer, verifier := testKeys(t)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, fastOptions(signer))
	defer l.close(t)
	ctx := context.Background()

	published := map[uint64][]byte{}
	var size int
	for _, n := range []int{3, 250, 1, 600} {
		l.appendAll(t, entryData("history", size, n))
		size += n
		l.awaitSize(t, verifier, uint64(size))
		raw, err := l.s.ReadCheckpoint(ctx)
		if err != nil {
			t.Fatalf("ReadCheckpoint: %v", err)
		}
		published[parseCheckpoint(t, verifier, raw).Size] = raw
	}
	for _, want := range []uint64{0, 3, 253, 254, 854} {
		if _, ok := published[want]; !ok && want != 0 {
			t.Fatalf("size %d was never the latest checkpoint; test setup is wrong", want)
		}
	}
	for size, raw := range published {
		got, err := l.s.CheckpointAt(ctx, size)
		if err != nil {
			t.Fatalf("CheckpointAt(%d): %v", size, err)
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("CheckpointAt(%d) = %q, want %q", size, got, raw)
		}
	}
	if cp, err := l.s.CheckpointAt(ctx, 0); err != nil || parseCheckpoint(t, verifier, cp).Size != 0 {
		t.Fatalf("CheckpointAt(0) = %q, %v; want the empty tree's checkpoint", cp, err)
	}
	if _, err := l.s.CheckpointAt(ctx, 10_000); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckpointAt(10000) = %v, want os.ErrNotExist", err)
	}
}

// TestPushback fills a tiny outstanding budget while the batch waits for its age.
func TestPushback(t *testing.T) {
	signer, _ := testKeys(t)
	opts := fastOptions(signer).WithBatching(1000, 300*time.Millisecond).WithPushback(4)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, opts)
	defer l.close(t)
	ctx := context.Background()

	futures := make([]tessera.IndexFuture, 50)
	for i, e := range entryData("pushback", 0, len(futures)) {
		futures[i] = l.add(ctx, tessera.NewEntry(e))
	}
	var pushed, accepted int
	for i, f := range futures {
		_, err := f()
		switch {
		case errors.Is(err, tessera.ErrPushback):
			pushed++
		case err != nil:
			t.Fatalf("entry %d: %v, want success or pushback", i, err)
		default:
			accepted++
		}
	}
	if pushed == 0 || accepted == 0 || accepted > 4 {
		t.Fatalf("%d accepted and %d pushed back, want 1..4 accepted and the rest pushed back", accepted, pushed)
	}
	t.Run("the budget frees up once the batch is integrated", func(t *testing.T) {
		if _, err := l.add(ctx, tessera.NewEntry([]byte("after the batch")))(); err != nil {
			t.Fatalf("add after integration: %v", err)
		}
	})
}

// TestReadsOfAbsentResources checks the os.ErrNotExist answers a tile server turns into 404s.
func TestReadsOfAbsentResources(t *testing.T) {
	ctx := context.Background()
	d, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := d.(*Storage)
	defer s.Close()
	if _, err := s.ReadCheckpoint(ctx); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadCheckpoint of a new log = %v, want os.ErrNotExist", err)
	}

	signer, _ := testKeys(t)
	a, shutdown, _, err := tessera.NewAppender(ctx, d, fastOptions(signer))
	if err != nil {
		t.Fatalf("NewAppender: %v", err)
	}
	defer shutdown(ctx)
	futures := make([]tessera.IndexFuture, 10)
	for i, e := range entryData("absent", 0, 10) {
		futures[i] = a.Add(ctx, tessera.NewEntry(e))
	}
	for _, f := range futures {
		if _, err := f(); err != nil {
			t.Fatalf("add: %v", err)
		}
	}

	for _, tc := range []struct {
		name string
		read func() ([]byte, error)
	}{
		{name: "a tile wider than written", read: func() ([]byte, error) { return s.ReadTile(ctx, 0, 0, 11) }},
		{name: "a full tile that is still partial", read: func() ([]byte, error) { return s.ReadTile(ctx, 0, 0, 0) }},
		{name: "a tile past the end", read: func() ([]byte, error) { return s.ReadTile(ctx, 0, 1, 1) }},
		{name: "a tile level above the tree", read: func() ([]byte, error) { return s.ReadTile(ctx, 1, 0, 1) }},
		{name: "a bundle wider than written", read: func() ([]byte, error) { return s.ReadEntryBundle(ctx, 0, 11) }},
		{name: "a full bundle that is still partial", read: func() ([]byte, error) { return s.ReadEntryBundle(ctx, 0, 0) }},
		{name: "a bundle past the end", read: func() ([]byte, error) { return s.ReadEntryBundle(ctx, 1, 1) }},
	} {
		t.Run(tc.name+" is not found", func(t *testing.T) {
			if b, err := tc.read(); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("got %d bytes, %v; want os.ErrNotExist", len(b), err)
			}
		})
	}
	t.Run("a narrower partial tile is the prefix", func(t *testing.T) {
		full, err := s.ReadTile(ctx, 0, 0, 10)
		if err != nil {
			t.Fatalf("ReadTile(p=10): %v", err)
		}
		part, err := s.ReadTile(ctx, 0, 0, 4)
		if err != nil || !bytes.Equal(part, full[:4*hashSize]) {
			t.Fatalf("ReadTile(p=4) = %x, %v; want the first 4 hashes", part, err)
		}
	})
}

// TestBlobFiles checks where values go: a database made before value separation (Pebble's
// default format) is moved to the format that allows it when opened, and from then on entry
// bundles are kept in blob files and read back from them after a restart.
func TestBlobFiles(t *testing.T) {
	signer, verifier := testKeys(t)
	ctx := context.Background()
	cfg := Config{Path: filepath.Join(t.TempDir(), "db")}
	old, err := pdb.Open(cfg.Path, &pdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Set([]byte{keyVersion}, []byte{formatVersion}, pdb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	entries := entryData("blob", 0, 300)
	l := openTestLog(t, cfg, fastOptions(signer))
	l.appendAll(t, entries)
	l.awaitSize(t, verifier, uint64(len(entries)))
	l.close(t)

	ro, err := pdb.Open(cfg.Path, &pdb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m := ro.Metrics()
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if m.BlobFiles.LiveCount == 0 || m.BlobFiles.ReferencedValueSize < layout.EntryBundleWidth*uint64(len(entries[0])) {
		t.Fatalf("blob files after closing: %d holding %d referenced bytes; want the full bundle's entries in them", m.BlobFiles.LiveCount, m.BlobFiles.ReferencedValueSize)
	}

	l = openTestLog(t, cfg, fastOptions(signer))
	defer l.close(t)
	raw, err := l.s.ReadEntryBundle(ctx, 0, 0)
	if err != nil {
		t.Fatalf("reading the full bundle back: %v", err)
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		t.Fatalf("parsing the full bundle: %v", err)
	}
	for i, e := range b.Entries {
		if !bytes.Equal(e, entries[i]) {
			t.Fatalf("entry %d read back as %q, want %q", i, e, entries[i])
		}
	}
	if len(b.Entries) != layout.EntryBundleWidth {
		t.Fatalf("full bundle has %d entries, want %d", len(b.Entries), layout.EntryBundleWidth)
	}
}
