package pebble

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
)

// Sizes of the dedup filter (see dedupFilter).
const (
	// DefaultDedupFilterBytes caps the dedup filter's memory: about 27 million dedup identities
	// at filterBitsPerKey, after which the generations written since are no longer covered.
	DefaultDedupFilterBytes = 32 << 20
	// filterBitsPerKey gives a blocked Bloom filter of 7 probes a false-positive rate near 1%.
	filterBitsPerKey = 10
	filterProbes     = 7
	// filterFirstKeys is the least capacity of the first link (1.25 MiB); see firstLinkKeys.
	filterFirstKeys = 1 << 20
	// filterScanChunk is how many stored identities the opening scan adds per hold of readMu, so
	// Close waits for one chunk at most.
	filterScanChunk = 1 << 14
)

// filterBlockWords is one block, 512 bits: every probe of a key falls in the same cache line.
const filterBlockWords = 8

// dedupFilter answers "certainly absent" for a dedup identity without reaching Pebble: nearly
// every write brings a new identity, and at 10M entries Pebble's answer walks memtables, many L0
// sublevels and a bloom filter per level. It is derived state, never persisted: the storage
// builds it at open by scanning the stored dedup records of both layouts and adds every key the
// sequencer writes.
//
// It may not hold every stored key: the opening scan has not reached them yet, or they did not
// fit under the byte cap. What it holds is said by one bound, coveredBelow, a dedup generation
// (the legacy records are generation -1):
//
//	every dedup record stored, or in a batch being committed, whose generation is below
//	coveredBelow() has had its identity added to the filter.
//
// So an identity mayContain rules out can only be stored in a generation at or above the bound,
// and a lookup seeks only those. The bound is the lesser of two:
//   - scanned, how far the opening scan has come. It reads the legacy records, then the
//     generations in key order, so once a chunk is added every generation below that of the next
//     stored key is in, together with what the sequencer added meanwhile;
//   - failed, the least generation of a key that did not fit. Once one key does not fit no later
//     one does (the cap stays where it is), but the scan and the sequencer add keys of different
//     generations, hence the least. The links stay, since they still answer for every
//     generation below it: a log past the cap seeks the generations written since, not all.
//
// Orderings that keep it true:
//   - the sequencer adds a batch's keys before committing it, so a key that did not fit has
//     lowered failed before its record can be read;
//   - the scan raises scanned only after adding the chunk, under mu, as the sequencer's adds are;
//   - a lookup reads the bound before the filter's bits (see coveredBelow).
//
// It grows by links, each a blocked Bloom filter twice the capacity of the one before (the last
// cut to what the byte cap leaves), since a Bloom filter cannot be resized without its keys.
// Readers take no lock: the link list is swapped atomically and bits are read and set atomically.
type dedupFilter struct {
	seed      maphash.Seed
	maxBytes  int64
	firstKeys int64
	logger    *slog.Logger

	// mu serialises adds, the sequencer's and the opening scan's, and guards what follows it but
	// for the atomics, which readers load without it.
	mu      sync.Mutex
	scanned int64
	// failed is allGenerations until a key does not fit; see full.
	failed int64
	links  atomic.Pointer[[]*filterLink]
	keys   atomic.Int64
	bytes  atomic.Int64
	// below is min(scanned, failed), published for lookups.
	below atomic.Int64
}

// Bounds of coveredBelow.
const (
	// legacyGeneration is where format version 1's "d" records sort: below every generation, so a
	// bound of 0 covers them and one of legacyGeneration covers nothing.
	legacyGeneration = -1
	// allGenerations is the bound of a filter that holds every stored key.
	allGenerations = math.MaxInt64
)

// filterKey is a dedup identity and the generation its record is stored in.
type filterKey struct {
	gen int64
	id  []byte
}

type filterLink struct {
	words    []atomic.Uint64
	blocks   uint64
	capacity int64
	count    int64 // guarded by dedupFilter.mu
}

func newDedupFilter(maxBytes, firstKeys int64, logger *slog.Logger) *dedupFilter {
	f := &dedupFilter{seed: maphash.MakeSeed(), maxBytes: maxBytes, firstKeys: firstKeys, logger: logger,
		scanned: legacyGeneration, failed: allGenerations}
	f.links.Store(&[]*filterLink{})
	f.below.Store(legacyGeneration)
	return f
}

// firstLinkKeys is the first link's capacity for a log opened with stored entries: room for all
// of them and as many again, so a reopened log's filter is one link until it doubles. An absent
// identity costs one cache miss per link, and each link adds its own false positives (about 1%
// each, every one a Pebble seek): a 10M log grown from filterFirstKeys in one process has 4
// links. The tree size stands in for the stored count, which the scan only learns at its end:
// they differ by the entries sequenced but not yet integrated and by duplicates an import kept.
// grow cuts the link to the byte cap.
func firstLinkKeys(stored uint64) int64 {
	return max(filterFirstKeys, 2*int64(min(stored, 1<<40)))
}

// coveredBelow is the generation below which every stored identity is in the filter (see
// dedupFilter). A lookup reads it before mayContain: the scan sets bits, then raises the bound,
// so a bound read first comes with every bit it promises, where bits read first could miss a
// chunk whose raised bound the lookup then trusts. A failure lowers the bound before the commit
// of the key that did not fit, so a lookup that can see that commit sees the lowered bound too.
func (f *dedupFilter) coveredBelow() int64 { return f.below.Load() }

// usable says whether the filter holds every stored identity, so that a lookup it rules out
// need not reach Pebble at all.
func (f *dedupFilter) usable() bool { return f.coveredBelow() == allGenerations }

// probe is where a key's bits are: a hash choosing the block in each link and the bits set in a
// block, the same in every link.
type probe struct {
	h    uint64
	mask [filterBlockWords]uint64
}

func (f *dedupFilter) probeOf(identity []byte) probe {
	p := probe{h: maphash.Bytes(f.seed, identity)}
	// The in-block positions come from a remix of the hash, so they do not follow the block choice
	// made from its high bits (SplitMix64's finaliser).
	x := p.h ^ 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	for range filterProbes {
		pos := x & 511
		p.mask[pos>>6] |= 1 << (pos & 63)
		x >>= 9
	}
	return p
}

func (l *filterLink) block(p *probe) []atomic.Uint64 {
	b, _ := bits.Mul64(p.h, l.blocks)
	return l.words[b*filterBlockWords : (b+1)*filterBlockWords]
}

func (l *filterLink) has(p *probe) bool {
	b := l.block(p)
	for i := range b {
		if m := p.mask[i]; m != 0 && b[i].Load()&m != m {
			return false
		}
	}
	return true
}

// mayContain reports whether identity may have been added; false means it never was.
func (f *dedupFilter) mayContain(identity []byte) bool {
	p := f.probeOf(identity)
	for _, l := range *f.links.Load() {
		if l.has(&p) {
			return true
		}
	}
	return false
}

// add adds keys. From the first that does not fit under the byte cap on, none is added, and the
// least generation among those left lowers the bound.
func (f *dedupFilter) add(keys []filterKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range keys {
		if f.full() {
			f.fail(keys[i:])
			return
		}
		links := *f.links.Load()
		if len(links) == 0 || links[len(links)-1].count >= links[len(links)-1].capacity {
			if !f.grow(links) {
				f.fail(keys[i:])
				f.logger.Warn("the dedup filter reached its byte cap; a dedup lookup it rules out still seeks the generations from the first one it could not cover on, one more for every 2^21 entries written from now (raise --dedup-filter-bytes and restart to cover them)",
					"bytes", f.bytes.Load(), "cap", f.maxBytes, "keys", f.keys.Load(), "uncovered_from_generation", f.failed)
				return
			}
			links = *f.links.Load()
		}
		l := links[len(links)-1]
		p := f.probeOf(k.id)
		b := l.block(&p)
		for j := range b {
			if m := p.mask[j]; m != 0 {
				b[j].Or(m)
			}
		}
		l.count++
		f.keys.Add(1)
	}
}

// scannedTo records that the opening scan has added every stored key of the generations below
// gen, and reports whether the scan is done: it has read every key, or the filter is full and
// every key it has yet to read is at or above the bound the failure set, so adding them would
// change nothing.
func (f *dedupFilter) scannedTo(gen int64) (done bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scanned = gen
	if f.full() && f.failed <= gen {
		f.scanned = allGenerations
	}
	f.publish()
	return f.scanned == allGenerations
}

// full says a key did not fit, so no add tries to grow the filter again; under mu.
func (f *dedupFilter) full() bool { return f.failed != allGenerations }

// fail lowers the bound to the least generation of keys, which did not fit; under mu.
func (f *dedupFilter) fail(keys []filterKey) {
	for _, k := range keys {
		f.failed = min(f.failed, k.gen)
	}
	f.publish()
}

// publish makes the bound the lesser of scanned and failed; under mu.
func (f *dedupFilter) publish() { f.below.Store(min(f.scanned, f.failed)) }

// grow appends a link of twice the last one's capacity, or what the byte cap still allows.
func (f *dedupFilter) grow(links []*filterLink) bool {
	want := f.firstKeys
	if n := len(links); n > 0 {
		want = 2 * links[n-1].capacity
	}
	blocks := (want*filterBitsPerKey + 511) / 512
	if left := (f.maxBytes - f.bytes.Load()) / (filterBlockWords * 8); blocks > left {
		blocks = left
	}
	capacity := blocks * 512 / filterBitsPerKey
	if capacity <= 0 {
		return false
	}
	l := &filterLink{words: make([]atomic.Uint64, blocks*filterBlockWords), blocks: uint64(blocks), capacity: capacity}
	grown := append(append(make([]*filterLink, 0, len(links)+1), links...), l)
	f.links.Store(&grown)
	f.bytes.Add(blocks * filterBlockWords * 8)
	return true
}

// fillDedupFilter adds every stored dedup identity to s.filter, raising its bound as it goes
// (see dedupFilter). It runs in the background from New; the sequencer adds what it writes
// meanwhile itself, and the filter exists before any sequencer, so between them every key is
// covered. Dedup keys are never deleted, so each chunk's fresh iterator still sees every key
// stored at open. A failed scan leaves the bound where it was: lookups the filter rules out seek
// the generations the scan had not reached, correct if slower.
func (s *Storage) fillDedupFilter() {
	defer close(s.filterDone)
	start := time.Now()
	sc := newDedupScan()
	for done := false; !done; {
		select {
		case <-s.filterStop:
			return
		default:
		}
		var err error
		if done, err = s.scanStep(sc, filterScanChunk); err != nil {
			s.cfg.Logger.Error("building the dedup filter failed; dedup lookups seek the generations it had not reached", "err", err)
			return
		}
	}
	// Until now dedup lookups the filter ruled out still sought the generations the scan had not
	// reached; how long that lasted is worth seeing.
	s.cfg.Logger.Info("dedup filter built", "keys", s.filter.keys.Load(), "bytes", s.filter.bytes.Load(),
		"took", time.Since(start).Round(time.Millisecond), "covers_all", s.filter.usable())
}

// dedupScan is where the opening scan is: the next stored dedup key it reads is the first at or
// after from with from's prefix byte; the legacy records come first.
type dedupScan struct{ from []byte }

func newDedupScan() *dedupScan { return &dedupScan{from: []byte{keyDedupV1}} }

// scanStep adds up to chunk stored dedup identities to s.filter from where sc is, raises the
// filter's bound to the generation of the key it reads next, and reports whether the scan is
// done.
func (s *Storage) scanStep(sc *dedupScan, chunk int) (done bool, err error) {
	next, err := s.scanDedupChunk(sc.from, chunk)
	if err != nil {
		return false, err
	}
	gen := int64(allGenerations)
	switch {
	case next != nil:
		sc.from, gen = next, dedupKeyGeneration(next)
	case sc.from[0] == keyDedupV1:
		sc.from, gen = []byte{keyDedup}, 0
	}
	return s.filter.scannedTo(gen), nil
}

// scanDedupChunk adds up to chunk dedup identities from the first key at or after from
// that shares its prefix byte, and returns where the next chunk starts, or nil after the last.
// Close waits for the scan to stop before it closes the database, so the database is open here.
func (s *Storage) scanDedupChunk(from []byte, chunk int) ([]byte, error) {
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: from, UpperBound: []byte{from[0] + 1}})
	if err != nil {
		return nil, fmt.Errorf("opening a dedup iterator: %w", err)
	}
	// One buffer holds the chunk's identities: add copies nothing out of them.
	var buf []byte
	var ends []int
	var gens []int64
	var next []byte
	for ok := it.First(); ok; ok = it.Next() {
		if len(ends) == chunk {
			next = append([]byte(nil), it.Key()...)
			break
		}
		buf = append(buf, dedupIdentity(it.Key())...)
		ends = append(ends, len(buf))
		gens = append(gens, dedupKeyGeneration(it.Key()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("scanning dedup identities: %w", err)
	}
	keys := make([]filterKey, len(ends))
	for i, end := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		keys[i] = filterKey{gen: gens[i], id: buf[start:end]}
	}
	s.filter.add(keys)
	return next, nil
}
