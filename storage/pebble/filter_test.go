package pebble

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

// TestDedupFilterHasNoFalseNegatives adds random identities in batches, in generations of 1,000,
// to filters of several shapes and checks, against a map of what was added, that every added
// identity is reported as maybe present, across link growth and up to the byte cap and past it;
// that past the cap every identity it could not hold is in a generation at or above its bound;
// and that it still rules out most identities never added.
func TestDedupFilterHasNoFalseNegatives(t *testing.T) {
	cases := []struct {
		name             string
		maxBytes, first  int64
		keys             int
		wantFullAtTheEnd bool
	}{
		{"one link that never fills", 1 << 20, 1 << 14, 5_000, false},
		{"links growing from a tiny first one", 1 << 20, 64, 100_000, false},
		{"a last link cut to the byte cap, then full", 8 << 10, 64, 20_000, true},
		{"a cap smaller than the first link", 256, 1 << 10, 1_000, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newDedupFilter(c.maxBytes, c.first, slog.New(slog.DiscardHandler))
			f.scannedTo(allGenerations)
			rng := rand.New(rand.NewPCG(uint64(c.keys), 7))
			added := make(map[string]bool, c.keys)
			var order []filterKey
			for len(order) < c.keys {
				batch := make([]filterKey, 1+rng.IntN(300))
				for i := range batch {
					// Identities of varied length, some sharing long prefixes.
					id := binary.BigEndian.AppendUint64(make([]byte, rng.IntN(3)*16), rng.Uint64())
					batch[i] = filterKey{gen: int64(len(order)+i) / 1000, id: id}
					added[string(id)] = true
				}
				links := len(*f.links.Load())
				f.add(batch)
				order = append(order, batch...)
				// Bits are only ever set, so a key stays found until the links change: check the
				// new batch each time, and everything whenever a link was added and at the end.
				check := batch
				if len(*f.links.Load()) != links || len(order) >= c.keys || !f.usable() {
					check = order
				}
				held := int(f.keys.Load()) - (len(order) - len(check))
				for _, k := range check[:held] {
					if !f.mayContain(k.id) {
						t.Fatalf("after %d keys in %d links: an added identity is reported absent", f.keys.Load(), len(*f.links.Load()))
					}
				}
				if !f.usable() {
					break
				}
			}
			if f.bytes.Load() > c.maxBytes {
				t.Errorf("filter holds %d bytes, cap %d", f.bytes.Load(), c.maxBytes)
			}
			if got := !f.usable(); got != c.wantFullAtTheEnd {
				t.Fatalf("full at the end = %v, want %v (%d keys, %d bytes)", got, c.wantFullAtTheEnd, f.keys.Load(), f.bytes.Load())
			}
			if c.wantFullAtTheEnd {
				held := f.keys.Load()
				if got, want := f.coveredBelow(), order[held].gen; got != want {
					t.Fatalf("a filter full after %d keys covers the generations below %d, want %d, the first key's it could not hold", held, got, want)
				}
				for _, k := range order[held:] {
					if k.gen < f.coveredBelow() {
						t.Fatalf("a key of generation %d is not held, yet the filter covers the generations below %d", k.gen, f.coveredBelow())
					}
				}
			}
			maybe, absent := 0, 0
			for absent < 20_000 {
				id := binary.BigEndian.AppendUint64([]byte("never"), rng.Uint64())
				if added[string(id)] {
					continue
				}
				absent++
				if f.mayContain(id) {
					maybe++
				}
			}
			// Each link answers "maybe" for about 1% of absent identities, full or not.
			links := len(*f.links.Load())
			if rate := float64(maybe) / float64(absent); rate > 0.015*float64(links) {
				t.Errorf("%.1f%% of identities never added are reported maybe present by %d links, want under %.1f%%", 100*rate, links, 1.5*float64(links))
			}
		})
	}
}

// TestAReopenedFilterIsOneLink checks the first link's size for a log opened with entries: one
// link holds them all with room for as many again, never below filterFirstKeys, and cut to the
// byte cap when that leaves less.
func TestAReopenedFilterIsOneLink(t *testing.T) {
	for _, c := range []struct {
		name     string
		stored   int
		maxBytes int64
	}{
		{"an empty log starts with the least first link", 0, DefaultDedupFilterBytes},
		{"a small log starts with the least first link", 1_000, DefaultDedupFilterBytes},
		{"a log of 2M identities takes them in one link with room for 2M more", 2_000_000, DefaultDedupFilterBytes},
		{"a log whose double would pass the cap gets one link cut to the cap", 2_000_000, 4 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			first := firstLinkKeys(uint64(c.stored))
			f := newDedupFilter(c.maxBytes, first, slog.New(slog.DiscardHandler))
			addStored(f, c.stored)
			if c.stored == 0 {
				f.add([]filterKey{{id: []byte("one")}})
			}
			links := *f.links.Load()
			if len(links) != 1 || f.full() {
				t.Fatalf("%d links (full %v) after %d identities, want 1", len(links), f.full(), c.stored)
			}
			want := max(filterFirstKeys, 2*int64(c.stored))
			if capBytes := c.maxBytes / 64 * 512 / filterBitsPerKey; want > capBytes {
				want = capBytes
			}
			// A link holds whole 512-bit blocks, so it may take a few keys more than asked for.
			if got := links[0].capacity; got < want || got > want+512/filterBitsPerKey {
				t.Errorf("first link holds %d identities, want %d", got, want)
			}
			if f.bytes.Load() > c.maxBytes {
				t.Errorf("filter holds %d bytes, cap %d", f.bytes.Load(), c.maxBytes)
			}
		})
	}
}

// TestNewSizesTheFirstLinkFromTheTreeSize checks that New, not only firstLinkKeys, takes the
// stored tree size into account: a database whose tree holds 3M entries reopens with its first
// link sized for 6M identities, where a fixed first link would hold 1M and grow 3 times before
// the scan of the stored keys ends. (The link itself is made at the first add.)
func TestNewSizesTheFirstLinkFromTheTreeSize(t *testing.T) {
	const size = 3_000_000
	dir := filepath.Join(t.TempDir(), "db")
	d, err := New(context.Background(), Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := d.(*Storage)
	// Only the tree state matters to the sizing; its hashes need not be a real tree's.
	st := treeState{size: size, root: make([]byte, hashSize)}
	for range bits.OnesCount64(size) {
		st.hashes = append(st.hashes, make([]byte, hashSize))
	}
	if err := s.db.Set([]byte{keyTreeState}, encodeTreeState(nil, st), pdb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	d, err = New(context.Background(), Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	s = d.(*Storage)
	t.Cleanup(func() { _ = s.Close() })
	if got, want := s.filter.firstKeys, int64(2*size); got != want {
		t.Errorf("first link of a reopened %d-entry log is sized for %d identities, want %d", size, got, want)
	}
}

// TestReopenedLogFindsItsDuplicates checks deduplication through the filter's life: a reopened
// log finds the duplicates of entries written before, while its filter is still being built from
// the stored keys and after; and entries written after it is built (added only by the sequencer)
// are found too.
func TestReopenedLogFindsItsDuplicates(t *testing.T) {
	signer, _ := testKeys(t)
	dir := filepath.Join(t.TempDir(), "db")
	before := entryData("before", 0, 3000)
	l := openTestLog(t, Config{Path: dir}, fastOptions(signer))
	l.appendAll(t, before)
	l.close(t)

	reg := prometheus.NewRegistry()
	l = openTestLog(t, Config{Path: dir, Metrics: reg}, fastOptions(signer))
	defer l.close(t)
	// Racing the real scan, whichever finishes first.
	expectDups(t, l, before[2000:], 2000)
	// Then stand in for a scan that has not finished: a fresh filter that is not ready yet,
	// built only once the writes below are done.
	<-l.s.filterDone
	l.s.filter = newDedupFilter(DefaultDedupFilterBytes, 1<<10, slog.New(slog.DiscardHandler))
	l.s.filterStop, l.s.filterDone = make(chan struct{}), make(chan struct{})

	during := entryData("during", 0, 500)
	expectDups(t, l, before[:1000], 0)
	l.appendAll(t, during)
	expectDups(t, l, during, len(before))
	if l.s.filter.usable() {
		t.Fatal("the filter is in use before its scan ran")
	}
	if v, err := gaugeValue(reg, "quire_dedup_filter_in_use"); err != nil || v != 0 {
		t.Errorf("quire_dedup_filter_in_use = %v (%v) while building, want 0", v, err)
	}

	go l.s.fillDedupFilter()
	<-l.s.filterDone
	if !l.s.filter.usable() {
		t.Fatal("the filter is not in use after its scan")
	}
	expectDups(t, l, before, 0)
	expectDups(t, l, during, len(before))
	after := entryData("after", 0, 2000)
	l.appendAll(t, after)
	expectDups(t, l, after, len(before)+len(during))

	for name, want := range map[string]float64{
		"quire_dedup_filter_in_use": 1,
		// Written while the filter was built, the "during" keys were added twice.
		"quire_dedup_filter_keys":  float64(len(before) + 2*len(during) + len(after)),
		"quire_dedup_filter_bytes": float64(l.s.filter.bytes.Load()),
	} {
		if v, err := gaugeValue(reg, name); err != nil || v != want || v == 0 {
			t.Errorf("%s = %v (%v), want %v", name, v, err, want)
		}
	}
}

// TestDedupPastTheFilterCap gives the filter room for 51 identities, so that the 52nd, in
// generation 3 of 16 entries, does not fit: first in the sequencer, which writes it, then, after a
// restart, in the opening scan. Either way the filter keeps its links and answers for generations
// 0-2, a lookup it rules out seeks generations 3 and up only, and every entry's duplicate is found,
// those stored past the bound too.
func TestDedupPastTheFilterCap(t *testing.T) {
	signer, verifier := testKeys(t)
	dir := filepath.Join(t.TempDir(), "db")
	cfg := Config{Path: dir, dedupGenBits: testGenBits, DedupFilterBytes: 64}
	entries := entryData("capped", 0, 300)
	more := entryData("capped", len(entries), 40)
	const held, bound = 51, 51 >> testGenBits
	for _, c := range []struct {
		name    string
		reopen  bool
		entries [][]byte
	}{
		{"when a key the sequencer writes does not fit", false, entries},
		{"when a key the opening scan reads does not fit, after a restart", true, append(entries[:len(entries):len(entries)], more...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			cfg.Metrics = reg
			l := openTestLog(t, cfg, fastOptions(signer))
			<-l.s.filterDone
			if c.reopen {
				if got := l.s.filter.coveredBelow(); got != bound {
					t.Fatalf("after the opening scan the filter covers the generations below %d, want %d", got, bound)
				}
				l.appendAll(t, more)
			} else {
				l.appendAll(t, entries)
			}
			f := l.s.filter
			if f.usable() || f.coveredBelow() != bound || f.bytes.Load() != 64 || len(*f.links.Load()) != 1 || f.keys.Load() != held {
				t.Fatalf("filter usable %v, covering the generations below %d, with %d keys and %d bytes in %d links; want the generations below %d covered by %d keys in one link of 64 bytes",
					f.usable(), f.coveredBelow(), f.keys.Load(), f.bytes.Load(), len(*f.links.Load()), bound, held)
			}
			// The scan reads keys in generation order, the sequencer in index order: the first
			// 48 are generations 0-2 either way.
			for i, e := range entries[:bound<<testGenBits] {
				if !f.mayContain(tessera.NewEntry(e).Identity()) {
					t.Fatalf("a full filter rules out entry %d, which it holds", i)
				}
			}
			gens := int(dedupGenerations(uint64(len(c.entries)), testGenBits))
			for name, want := range map[string]float64{"quire_dedup_filter_in_use": 0, "quire_dedup_filter_uncovered_generations": float64(gens - bound)} {
				if v, err := gaugeValue(reg, name); err != nil || v != want {
					t.Errorf("%s = %v (%v), want %v", name, v, err, want)
				}
			}
			expectSeeksFrom(t, l.s, bound)
			expectDups(t, l, c.entries, 0)
			l.awaitSize(t, verifier, uint64(len(c.entries)))
			l.close(t)
			checkLog(t, Config{Path: dir, dedupGenBits: testGenBits}, verifier, len(c.entries))
		})
	}
}

// TestLookupsDuringTheOpeningScanSeekOnlyWhatItHasNotReached runs a reopened log's opening scan
// by hand, 40 keys at a time, while entries are resubmitted and new ones written: after each
// chunk the filter covers the generations below that of the next stored key, a lookup it rules
// out seeks only the others, and every duplicate is found.
func TestLookupsDuringTheOpeningScanSeekOnlyWhatItHasNotReached(t *testing.T) {
	signer, verifier := testKeys(t)
	entries := entryData("scanned", 0, 300)
	l, dir := reopenUnscanned(t, signer, verifier, entries, DefaultDedupFilterBytes)
	expectSeeksFrom(t, l.s, legacyGeneration)
	during := entryData("during", 0, 50)
	sc := newDedupScan()
	// The first step reads the (empty) legacy records; each later one 40 generation-keyed keys,
	// of indices [0, 350) once "during" is written, 16 to a generation.
	for step := 0; ; step++ {
		done, err := l.s.scanStep(sc, 40)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if step > 0 {
			want = int64(40 * step >> testGenBits)
		}
		if done {
			want = allGenerations
		}
		if got := l.s.filter.coveredBelow(); got != want {
			t.Fatalf("after step %d the filter covers the generations below %d, want %d", step, got, want)
		}
		expectSeeksFrom(t, l.s, want)
		expectDups(t, l, entries, 0)
		if step == 3 {
			l.appendAll(t, during)
		}
		if step >= 3 {
			expectDups(t, l, during, len(entries))
		}
		if done {
			break
		}
	}
	if !l.s.filter.usable() || l.s.filter.keys.Load() < int64(len(entries)+len(during)) {
		t.Fatalf("after the scan the filter is usable %v with %d keys", l.s.filter.usable(), l.s.filter.keys.Load())
	}
	l.awaitSize(t, verifier, uint64(len(entries)+len(during)))
	l.close(t)
	checkLog(t, Config{Path: dir, dedupGenBits: testGenBits}, verifier, len(entries)+len(during))
}

// TestAScanFindingTheFilterFullCoversOnlyWhatItRead fills a reopened log's filter from the
// sequencer before the opening scan reads anything: the scan then covers the legacy records it
// read (none) and stops once a key it reads does not fit, and lookups it rules out seek every
// generation, not just those past the sequencer's failure.
func TestAScanFindingTheFilterFullCoversOnlyWhatItRead(t *testing.T) {
	signer, verifier := testKeys(t)
	entries := entryData("scanned", 0, 300)
	l, dir := reopenUnscanned(t, signer, verifier, entries, 64)
	// 51 of these fit; index 351, the first that does not, is in generation 21.
	during := entryData("during", 0, 60)
	l.appendAll(t, during)
	if got := l.s.filter.coveredBelow(); got != legacyGeneration {
		t.Fatalf("before the scan the filter covers the generations below %d, want none", got)
	}
	sc := newDedupScan()
	for _, want := range []struct {
		below int64
		done  bool
	}{{0, false}, {0, true}} {
		done, err := l.s.scanStep(sc, 40)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.s.filter.coveredBelow(); got != want.below || done != want.done {
			t.Fatalf("scan step: covers the generations below %d, done %v; want %d, %v", got, done, want.below, want.done)
		}
		expectSeeksFrom(t, l.s, want.below)
		expectDups(t, l, entries, 0)
		expectDups(t, l, during, len(entries))
	}
	l.awaitSize(t, verifier, uint64(len(entries)+len(during)))
	l.close(t)
	checkLog(t, Config{Path: dir, dedupGenBits: testGenBits}, verifier, len(entries)+len(during))
}

// reopenUnscanned writes entries to a new log of 16-entry generations and reopens it, with a
// filter of maxBytes in place of the one New built, that no scan has filled: the test runs the
// scan. It returns the log and its directory.
func reopenUnscanned(t *testing.T, signer note.Signer, verifier note.Verifier, entries [][]byte, maxBytes int64) (*testLog, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	cfg := Config{Path: dir, dedupGenBits: testGenBits}
	writeLog(t, cfg, signer, verifier, entries)
	l := openTestLog(t, cfg, fastOptions(signer))
	<-l.s.filterDone
	l.s.filter = newDedupFilter(maxBytes, 1<<10, slog.New(slog.DiscardHandler))
	return l, dir
}

// expectSeeksFrom checks that a lookup the filter rules out seeks exactly the generations at or
// above below: it stores, behind the filter's back, a record in every generation the log can
// have one in, each of an identity the filter rules out, looks them up and deletes them.
func expectSeeksFrom(t *testing.T, s *Storage, below int64) {
	t.Helper()
	order := s.dedupSeekOrder(s.tree.Load().size)
	ids := make([][]byte, len(order))
	keys := make([][]byte, len(order))
	for i, gen := range order {
		for n := 0; ids[i] == nil; n++ {
			id := sha256.Sum256(fmt.Appendf(nil, "stray %d %d", gen, n))
			if !s.filter.mayContain(id[:]) {
				ids[i], keys[i] = id[:], dedupKey(nil, gen, id[:])
			}
		}
		if err := s.db.Set(keys[i], binary.BigEndian.AppendUint64(nil, uint64(1000+i)), pdb.Sync); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.DedupIndices(context.Background(), ids)
	for _, k := range keys {
		if err := s.db.Delete(k, pdb.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, gen := range order {
		if want := int64(-1); gen >= below {
			if want = int64(1000 + i); got[i] != want {
				t.Errorf("a record in generation %d, not covered by the filter (bound %d), was not found: %d", gen, below, got[i])
			}
		} else if got[i] != want {
			t.Errorf("a record in generation %d, covered by the filter (bound %d), was sought: found %d", gen, below, got[i])
		}
	}
}

// expectDups adds entries again and checks each is answered as the duplicate of index first+i.
func expectDups(t *testing.T, l *testLog, entries [][]byte, first int) {
	t.Helper()
	for i, idx := range l.appendAll(t, entries) {
		if !idx.IsDup || idx.Index != uint64(first+i) {
			t.Fatalf("entry %d again: %+v, want the duplicate of %d", i, idx, first+i)
		}
	}
	ids := make([][]byte, len(entries))
	for i, e := range entries {
		ids[i] = tessera.NewEntry(e).Identity()
	}
	stored, err := l.s.DedupIndices(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range stored {
		if got != int64(first+i) {
			t.Fatalf("DedupIndices of entry %d = %d, want %d", i, got, first+i)
		}
	}
}

// BenchmarkDedupFilterAbsent looks up identities never added in a filter of 10M identities, as
// a log grown to 10M in one process has it (links from filterFirstKeys up) and as a reopened one
// has it (one link sized by firstLinkKeys), and reports the share of lookups that would go on to
// Pebble.
func BenchmarkDedupFilterAbsent(b *testing.B) {
	const stored = 10_000_000
	for _, c := range []struct {
		name  string
		first int64
	}{
		{"grown in one process", filterFirstKeys},
		{"reopened", firstLinkKeys(stored)},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newDedupFilter(DefaultDedupFilterBytes, c.first, slog.New(slog.DiscardHandler))
			f.scannedTo(allGenerations)
			addStored(f, stored)
			id := []byte("absent..")
			maybe := 0
			b.ResetTimer()
			for i := range b.N {
				binary.BigEndian.PutUint64(id, uint64(i))
				if f.mayContain(id) {
					maybe++
				}
			}
			b.ReportMetric(float64(maybe)/float64(b.N), "maybe/op")
			b.ReportMetric(float64(len(*f.links.Load())), "links")
			b.ReportMetric(float64(f.bytes.Load())/(1<<20), "MiB")
		})
	}
}

// BenchmarkDedupLookupUncovered looks up identities, absent and present, in batches of 1,024 as a
// commit does, on a log of 48 dedup generations of 4,096 entries whose filter was capped so that
// it covers all but the newest 0, 1, 4, 16 or 48 of them: a lookup the filter rules out seeks
// that many. 48 is what every lookup cost once the filter was full, before it said what it covers;
// with 2^21-entry generations, 1 is a log just past the default cap (about 27M entries) and 48 one
// of 100M past it. Reports µs per lookup.
func BenchmarkDedupLookupUncovered(b *testing.B) {
	const genBits, gens, batch = 12, 48, 1024
	signer, _ := testKeys(b)
	dir := filepath.Join(b.TempDir(), "db")
	entries := entryData("uncovered", 0, gens<<genBits)
	l := openTestLog(b, Config{Path: dir, dedupGenBits: genBits}, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).WithBatching(batch, 50*time.Millisecond).WithCheckpointInterval(time.Second))
	for lo := 0; lo < len(entries); lo += tessera.DefaultPushbackMaxOutstanding {
		l.appendAll(b, entries[lo:min(lo+tessera.DefaultPushbackMaxOutstanding, len(entries))])
	}
	l.close(b)
	rng := rand.New(rand.NewPCG(1, 2))
	absent, present := make([][]byte, batch), make([][]byte, batch)
	for i := range absent {
		id := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("absent"), rng.Uint64()))
		absent[i] = id[:]
		present[i] = tessera.NewEntry(entries[rng.IntN(len(entries))]).Identity()
	}
	for _, uncovered := range []int{0, 1, 4, 16, gens} {
		b.Run(fmt.Sprintf("uncovered=%d", uncovered), func(b *testing.B) {
			cfg := Config{Path: dir, dedupGenBits: genBits, Logger: slog.New(slog.DiscardHandler)}
			if uncovered > 0 {
				// Room for the covered generations and half of the next, which the scan fails in.
				keys := int64(gens-uncovered)<<genBits + 1<<(genBits-1)
				cfg.DedupFilterBytes = (keys*filterBitsPerKey + 511) / 512 * filterBlockWords * 8
			}
			d, err := New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			s := d.(*Storage)
			defer s.Close()
			<-s.filterDone
			if got := uncoveredSeeks(s.dedupSeekOrder(s.tree.Load().size), s.filter.coveredBelow()); got != uncovered {
				b.Fatalf("the filter leaves %d generations uncovered, want %d", got, uncovered)
			}
			for _, c := range []struct {
				name string
				ids  [][]byte
			}{{"absent", absent}, {"present", present}} {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						got, err := s.DedupIndices(context.Background(), c.ids)
						if err != nil {
							b.Fatal(err)
						}
						if (got[0] >= 0) != (c.name == "present") {
							b.Fatalf("lookup of a %s identity gave index %d", c.name, got[0])
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/lookup")
				})
			}
		})
	}
}

// addStored adds n distinct identities in batches, as the opening scan does.
func addStored(f *dedupFilter, n int) {
	for i := 0; i < n; i += filterScanChunk {
		batch := make([]filterKey, min(filterScanChunk, n-i))
		for j := range batch {
			batch[j].id = binary.BigEndian.AppendUint64([]byte("stored"), uint64(i+j))
		}
		f.add(batch)
	}
}
