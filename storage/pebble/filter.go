package pebble

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
)

// Sizes of the dedup filter (see dedupFilter).
const (
	// DefaultDedupFilterBytes caps the dedup filter's memory: about 27 million dedup identities
	// at filterBitsPerKey, after which lookups go to Pebble again.
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
// It never gives a false negative: a key is added before the batch writing it is committed, so
// before any later lookup, and a filter that could not take a key (its byte cap reached) stops
// answering for good. Until the opening scan is complete it is not consulted either.
//
// It grows by links, each a blocked Bloom filter twice the capacity of the one before (the last
// cut to what the byte cap leaves), since a Bloom filter cannot be resized without its keys.
// Readers take no lock: the link list is swapped atomically and bits are read and set atomically.
type dedupFilter struct {
	seed      maphash.Seed
	maxBytes  int64
	firstKeys int64
	logger    *slog.Logger

	// mu serialises adds: the sequencer's and the opening scan's.
	mu    sync.Mutex
	links atomic.Pointer[[]*filterLink]
	keys  atomic.Int64
	bytes atomic.Int64
	// ready is set when the opening scan has added every stored key.
	ready atomic.Bool
	// full is set when a key could not be added: the filter can no longer say "absent".
	full atomic.Bool
}

type filterLink struct {
	words    []atomic.Uint64
	blocks   uint64
	capacity int64
	count    int64 // guarded by dedupFilter.mu
}

func newDedupFilter(maxBytes, firstKeys int64, logger *slog.Logger) *dedupFilter {
	f := &dedupFilter{seed: maphash.MakeSeed(), maxBytes: maxBytes, firstKeys: firstKeys, logger: logger}
	f.links.Store(&[]*filterLink{})
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

// usable says whether mayContain's "false" can be trusted.
func (f *dedupFilter) usable() bool { return f.ready.Load() && !f.full.Load() }

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

// mayContain reports whether identity may have been added; false means it never was. A full
// filter has dropped its links, so it answers "may" to anything.
func (f *dedupFilter) mayContain(identity []byte) bool {
	p := f.probeOf(identity)
	for _, l := range *f.links.Load() {
		if l.has(&p) {
			return true
		}
	}
	return f.full.Load()
}

// add adds identities. Once one does not fit under the byte cap, the filter is no longer usable
// and lets its links go.
func (f *dedupFilter) add(identities ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range identities {
		if f.full.Load() {
			return
		}
		links := *f.links.Load()
		if len(links) == 0 || links[len(links)-1].count >= links[len(links)-1].capacity {
			if !f.grow(links) {
				f.full.Store(true)
				// Nothing consults a full filter again before a restart, so its links would only
				// hold up to the cap's bytes for nothing.
				f.links.Store(&[]*filterLink{})
				f.bytes.Store(0)
				f.keys.Store(0)
				f.logger.Warn("the dedup filter reached its byte cap; dedup lookups go to the database from now on (raise the cap and restart to use it again)",
					"bytes", f.bytes.Load(), "cap", f.maxBytes, "keys", f.keys.Load())
				return
			}
			links = *f.links.Load()
		}
		l := links[len(links)-1]
		p := f.probeOf(id)
		b := l.block(&p)
		for i := range b {
			if m := p.mask[i]; m != 0 {
				b[i].Or(m)
			}
		}
		l.count++
		f.keys.Add(1)
	}
}

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

// fillDedupFilter adds every stored dedup identity to s.filter and then marks it ready. It runs
// in the background from New; the sequencer adds what it writes meanwhile itself, and the
// filter exists before any sequencer, so between them every key is covered. Dedup keys are never
// deleted, so each chunk's fresh iterator still sees every key stored at open. A failed scan
// leaves the filter unused: lookups go to Pebble, correct if slower.
func (s *Storage) fillDedupFilter() {
	defer close(s.filterDone)
	start := time.Now()
	for _, prefix := range []byte{keyDedupV1, keyDedup} {
		from := []byte{prefix}
		for from != nil {
			select {
			case <-s.filterStop:
				return
			default:
			}
			var err error
			if from, err = s.scanDedupChunk(from); err != nil {
				s.cfg.Logger.Error("building the dedup filter failed; dedup lookups go to the database", "err", err)
				return
			}
			if s.filter.full.Load() {
				return
			}
		}
	}
	s.filter.ready.Store(true)
	// Until now every dedup lookup went to Pebble; how long that lasted is worth seeing.
	s.cfg.Logger.Info("dedup filter built", "keys", s.filter.keys.Load(), "bytes", s.filter.bytes.Load(), "took", time.Since(start).Round(time.Millisecond))
}

// scanDedupChunk adds up to filterScanChunk dedup identities from the first key at or after from
// that shares its prefix byte, and returns where the next chunk starts, or nil after the last.
// Close waits for the scan to stop before it closes the database, so the database is open here.
func (s *Storage) scanDedupChunk(from []byte) ([]byte, error) {
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: from, UpperBound: []byte{from[0] + 1}})
	if err != nil {
		return nil, fmt.Errorf("opening a dedup iterator: %w", err)
	}
	// One buffer holds the chunk's identities: add copies nothing out of them.
	var buf []byte
	var ends []int
	var next []byte
	for ok := it.First(); ok; ok = it.Next() {
		if len(ends) == filterScanChunk {
			next = append([]byte(nil), it.Key()...)
			break
		}
		buf = append(buf, dedupIdentity(it.Key())...)
		ends = append(ends, len(buf))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("scanning dedup identities: %w", err)
	}
	ids := make([][]byte, len(ends))
	for i, end := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		ids[i] = buf[start:end]
	}
	s.filter.add(ids...)
	return next, nil
}
