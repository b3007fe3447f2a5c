package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
)

// minFreeBytes is the disk space a commit must leave free (see checkDiskSpace).
const minFreeBytes = 4 << 20

// ErrDiskFull fails a batch that would have left the disk too full for Pebble to keep running.
// It matches syscall.ENOSPC under errors.Is, so the API answers 503 and the batch can be retried
// once space is freed; nothing of it was written.
var ErrDiskFull = fmt.Errorf("log storage is full: %w", syscall.ENOSPC)

// maxMergedBatches bounds how many queued batches the sequencer folds into one commit when it has
// fallen behind: fewer fsyncs under load, bounded commit size.
const maxMergedBatches = 8

// maxMergedBytes stops that folding once the entry data in a commit reaches it, so large entries
// do not make one Pebble batch (and the memory behind it) huge.
const maxMergedBytes = 32 << 20

// lookupWorkers and minLookupsPerWorker shape the parallel dedup lookups of one commit.
const (
	lookupWorkers       = 4
	minLookupsPerWorker = 64
)

// batch is a group of entries that are sequenced together. Its futures wait on done.
type batch struct {
	entries []*tessera.Entry
	results []tessera.Index // set by the sequencer before done is closed
	err     error           // set by the sequencer before done is closed
	done    chan struct{}
	bytes   int       // total entry data, for maxMergedBytes
	created time.Time // when its first entry was queued, for the latency metric
}

// queue gathers entries into batches that flush by size or by age into the sequencer's channel,
// in the order they were created.
type queue struct {
	maxSize int
	maxAge  time.Duration

	mu     sync.Mutex
	cur    *batch
	closed bool
	out    chan *batch // closed by close(); the sequencer drains it
}

func newQueue(maxSize uint, maxAge time.Duration, depth int) *queue {
	return &queue{maxSize: int(maxSize), maxAge: maxAge, out: make(chan *batch, depth)}
}

// add appends e to the current batch and returns the batch and e's position in it.
func (q *queue) add(e *tessera.Entry) (*batch, int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, 0, errors.New("pebble storage is closed")
	}
	if q.cur == nil {
		b := &batch{entries: make([]*tessera.Entry, 0, min(q.maxSize, 1024)), done: make(chan struct{}), created: time.Now()}
		q.cur = b
		if q.maxAge > 0 {
			time.AfterFunc(q.maxAge, func() { q.flushIf(b) })
		}
	}
	b := q.cur
	b.entries = append(b.entries, e)
	b.bytes += len(e.Data())
	pos := len(b.entries) - 1
	if len(b.entries) >= q.maxSize || q.maxAge <= 0 {
		q.flushLocked()
	}
	return b, pos, nil
}

// flushIf flushes b if it is still the batch being filled (its age timer fired first).
func (q *queue) flushIf(b *batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cur == b && !q.closed {
		q.flushLocked()
	}
}

// flushLocked hands the current batch to the sequencer. Sending under mu keeps batches in order;
// when the channel is full this blocks adders, the last line of back-pressure behind pushback.
func (q *queue) flushLocked() {
	if q.cur == nil {
		return
	}
	q.out <- q.cur
	q.cur = nil
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.flushLocked()
	q.closed = true
	close(q.out)
}

// edgeTile is the right-most tile of one tile level, owned by the sequencer.
type edgeTile struct {
	index uint64
	buf   []byte // concatenated hashes, len = 32 × width
	dirty bool
}

// sequencer assigns indices, integrates entries into tiles and bundles, and commits. Every field
// is owned by the single sequencing goroutine (run), except through the Storage it updates.
type sequencer struct {
	s     *Storage
	dedup bool
	// keepDuplicates appends an entry already logged instead of answering with the first copy's
	// index, for an import, which must reproduce its source index for index; the dedup record
	// still names the first copy.
	keepDuplicates bool

	size   uint64
	rng    *compact.Range
	rf     *compact.RangeFactory
	edge   []edgeTile
	bundle []byte // count byte | tlog-tiles bundle of entries [size &^ 255, size)
	bDirty bool

	// per-commit scratch, reused between commits
	wb       *pdb.Batch
	seen     map[string]uint64
	stored   []int64
	all      []*tessera.Entry
	key      []byte
	stateBuf []byte
	fresh    []cachePut
	newKeys  []filterKey
	visitErr error
	visit    compact.VisitFn
}

type cachePut struct {
	k cacheKey
	v []byte
}

func newSequencer(s *Storage) (*sequencer, error) {
	seq := &sequencer{
		s:     s,
		dedup: !s.cfg.DisableDedup,
		rf:    &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren},
		seen:  make(map[string]uint64),
		wb:    s.db.NewBatch(),
	}
	seq.visit = seq.visitNode
	if err := seq.reload(); err != nil {
		return nil, err
	}
	return seq, nil
}

// reload rebuilds the in-memory right edge from Pebble: at start, and after a failed commit left
// the in-memory state ahead of the database.
func (seq *sequencer) reload() error {
	st, err := seq.s.readTreeState()
	if err != nil {
		return err
	}
	rng, err := seq.rf.NewRange(0, st.size, st.hashes)
	if err != nil {
		return fmt.Errorf("rebuilding compact range for size %d: %w", st.size, err)
	}
	seq.size, seq.rng, seq.edge = st.size, rng, seq.edge[:0]
	for level := uint64(0); st.size>>(layout.TileHeight*level) > 0; level++ {
		nodes := st.size >> (layout.TileHeight * level)
		t := edgeTile{index: nodes / layout.TileWidth, buf: make([]byte, 0, layout.TileWidth*hashSize)}
		if w := nodes % layout.TileWidth; w > 0 {
			v, err := seq.s.get(tileKey(nil, level, t.index))
			if err != nil {
				return fmt.Errorf("reading right-edge tile %d/%d: %w", level, t.index, err)
			}
			if uint64(len(v)) != w*hashSize {
				return fmt.Errorf("right-edge tile %d/%d has %d bytes, want %d", level, t.index, len(v), w*hashSize)
			}
			t.buf = append(t.buf, v...)
		}
		seq.edge = append(seq.edge, t)
	}
	seq.bundle, seq.bDirty = append(seq.bundle[:0], 0), false
	if w := st.size % layout.EntryBundleWidth; w > 0 {
		idx := st.size / layout.EntryBundleWidth
		v, err := seq.s.get(bundleKey(nil, idx))
		if err != nil {
			return fmt.Errorf("reading right-edge bundle %d: %w", idx, err)
		}
		if len(v) < 1 || uint64(v[0]) != w {
			return fmt.Errorf("right-edge bundle %d does not hold %d entries", idx, w)
		}
		seq.bundle = append(seq.bundle[:0], v...)
	}
	return nil
}

// run sequences batches until the queue closes. Once ctx is done it fails what is left instead.
func (seq *sequencer) run(ctx context.Context, in <-chan *batch) {
	defer close(seq.s.seqDone)
	defer seq.wb.Close()
	group := make([]*batch, 0, maxMergedBatches)
	for b := range in {
		group = append(group[:0], b)
		size := b.bytes
	more:
		for len(group) < maxMergedBatches && size < maxMergedBytes {
			select {
			case b, ok := <-in:
				if !ok {
					break more
				}
				group = append(group, b)
				size += b.bytes
			default:
				break more
			}
		}
		if err := ctx.Err(); err != nil {
			seq.fail(group, fmt.Errorf("appender context done: %w", err))
			continue
		}
		start, before := time.Now(), seq.size
		if err := seq.commit(group); err != nil {
			seq.s.commitFault.Store(&err)
			seq.fail(group, err)
			if rerr := seq.reload(); rerr != nil {
				seq.s.setBroken(fmt.Errorf("after failed commit (%w), reloading state: %w", err, rerr))
			}
			continue
		}
		seq.s.commitFault.Store(nil)
		now := time.Now()
		seq.s.metrics.observeCommit(group, int(seq.size-before), now.Sub(start), now)
		for _, b := range group {
			seq.s.outstanding.Add(-int64(len(b.entries)))
			close(b.done)
		}
		select {
		case seq.s.nudgePub <- struct{}{}:
		default:
		}
	}
}

func (seq *sequencer) fail(group []*batch, err error) {
	for _, b := range group {
		b.err = err
		seq.s.outstanding.Add(-int64(len(b.entries)))
		close(b.done)
	}
}

// commit sequences and integrates every entry of group and writes the result in one Pebble batch.
//
// Crash story: everything this group changes (dedup keys, entry bundles, hash tiles, tree state)
// goes into one Pebble batch committed with Sync, which Pebble writes to its WAL as a single
// record: after a SIGKILL at any instant, reopening replays either all of it or none of it, so the
// log is exactly before or after the group. Futures resolve (done closes) only after Commit
// returned, so no caller sees an index that a crash could take back. Values are overwritten, never
// appended to, so replaying the WAL is idempotent. The checkpoint is written later, in its own
// synced batch, and only for a tree state already durable, so a crash between the two leaves an
// integrated tree newer than the latest checkpoint, which the publisher signs after restart.
func (seq *sequencer) commit(group []*batch) error {
	if err := seq.s.brokenErr(); err != nil {
		return err
	}
	wb := seq.wb
	wb.Reset()
	clear(seq.seen)
	seq.fresh = seq.fresh[:0]
	seq.newKeys = seq.newKeys[:0]
	seq.visitErr = nil
	start := seq.size

	if seq.dedup {
		if err := seq.prefetch(group); err != nil {
			return err
		}
	}
	k := -1
	for _, b := range group {
		b.results = make([]tessera.Index, len(b.entries))
		for i, e := range b.entries {
			k++
			if seq.dedup {
				first, ok := seq.seen[string(e.Identity())]
				if !ok && seq.stored[k] >= 0 {
					first, ok = uint64(seq.stored[k]), true
				}
				switch {
				case ok && !seq.keepDuplicates:
					b.results[i] = tessera.Index{Index: first, IsDup: true}
					continue
				case !ok:
					seq.seen[string(e.Identity())] = seq.size
					gen := int64(seq.size >> seq.s.genBits)
					seq.newKeys = append(seq.newKeys, filterKey{gen: gen, id: e.Identity()})
					seq.key = dedupKey(seq.key, gen, e.Identity())
					var v [8]byte
					binary.BigEndian.PutUint64(v[:], seq.size)
					if err := wb.Set(seq.key, v[:], nil); err != nil {
						return fmt.Errorf("batching dedup key for index %d: %w", seq.size, err)
					}
				}
			}
			b.results[i] = tessera.Index{Index: seq.size}
			if err := seq.appendEntry(e); err != nil {
				return err
			}
		}
	}
	if seq.size == start {
		return nil
	}
	if err := seq.flushEdge(); err != nil {
		return err
	}
	root, err := seq.rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("computing root for size %d: %w", seq.size, err)
	}
	root = append([]byte(nil), root...)
	seq.stateBuf = encodeTreeState(seq.stateBuf, treeState{size: seq.size, root: root, hashes: seq.rng.Hashes()})
	if err := wb.Set([]byte{keyTreeState}, seq.stateBuf, nil); err != nil {
		return fmt.Errorf("batching tree state for size %d: %w", seq.size, err)
	}
	if err := seq.s.checkDiskSpace(wb.Len()); err != nil {
		return err
	}
	// Before the commit, so no lookup can run between the keys being stored and being in the
	// filter, or, for keys past its cap, between their being stored and the filter's bound
	// being lowered to their generation; a commit that then fails leaves them as harmless false
	// positives.
	if f := seq.s.filter; f != nil {
		f.add(seq.newKeys)
	}
	if err := wb.Commit(pdb.Sync); err != nil {
		return fmt.Errorf("committing entries [%d, %d): %w", start, seq.size, err)
	}
	for _, p := range seq.fresh {
		seq.s.cache.put(p.k, p.v)
	}
	seq.s.tree.Store(&treeHead{size: seq.size, root: root})
	return nil
}

// prefetch looks every identity of group up in Pebble, split across lookupWorkers goroutines:
// the lookups are most of a commit's CPU, and Pebble reads are safe concurrently. Nothing else
// writes dedup keys while the sequencer runs, so the answers stay true for the whole commit.
// seq.stored[k] is the stored index of the k-th entry of the group, or -1.
//
// Each worker sorts its keys and looks them up in order with one iterator (SeekPrefixGE, which
// consults the bloom filters as Get does), instead of a Get per key: a Get builds and drops an
// iterator over every level, and the sorted seeks reuse the files each level has open.
func (seq *sequencer) prefetch(group []*batch) error {
	seq.stored, seq.all = seq.stored[:0], seq.all[:0]
	for _, b := range group {
		seq.all = append(seq.all, b.entries...)
	}
	all := seq.all
	seq.stored = append(seq.stored, make([]int64, len(all))...)
	workers := min(lookupWorkers, runtime.GOMAXPROCS(0), 1+len(all)/minLookupsPerWorker)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(all)/workers, (w+1)*len(all)/workers
		wg.Go(func() {
			ids := make([][]byte, hi-lo)
			for i, e := range all[lo:hi] {
				ids[i] = e.Identity()
			}
			errs[w] = seq.s.lookupSorted(ids, seq.stored[lo:hi], seq.size)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lookupSorted sets stored[i] to the index stored for identities[i], or -1, looking in the
// generations of entries [0, next) and the legacy one. An identity the dedup filter rules out is
// sought only in the generations it does not cover, often none.
func (s *Storage) lookupSorted(identities [][]byte, stored []int64, next uint64) error {
	type lookup struct {
		id []byte
		i  int
		// seeks is how many generations of order can hold its record.
		seeks int
	}
	order := s.dedupSeekOrder(next)
	filter := s.filter
	ruledOut := 0
	if filter != nil {
		// Read before any of the filter's bits: see coveredBelow.
		ruledOut = uncoveredSeeks(order, filter.coveredBelow())
	}
	ls := make([]lookup, 0, len(identities))
	for i, id := range identities {
		stored[i] = -1
		seeks := len(order)
		if filter != nil && !filter.mayContain(id) {
			seeks = ruledOut
		}
		if seeks > 0 {
			ls = append(ls, lookup{id: id, i: i, seeks: seeks})
		}
	}
	if len(ls) == 0 {
		return nil
	}
	slices.SortFunc(ls, func(a, b lookup) int { return bytes.Compare(a.id, b.id) })
	// Pebble skips the bottom level's bloom filters in iterators unless asked; nearly every
	// lookup is of an identity that is absent, which the filter answers without reading a block.
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: []byte{keyDedupV1}, UpperBound: []byte{keyDedup + 1}, UseL6Filters: true})
	if err != nil {
		return fmt.Errorf("opening a dedup iterator: %w", err)
	}
	// Newest generation first: a resubmitted entry is most often a recent one, and an identity
	// has one record, so a found one is not sought in older generations. Within a generation the
	// seeks go in key order, which lets each level's iterator move forward from where it is.
	var key []byte
	for j, gen := range order {
		if len(ls) == 0 {
			break
		}
		left := ls[:0]
		for _, l := range ls {
			if j >= l.seeks {
				continue
			}
			key = dedupKey(key, gen, l.id)
			if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
				left = append(left, l)
				continue
			}
			v, err := it.ValueAndErr()
			if err == nil && len(v) != 8 {
				err = fmt.Errorf("stored index is %d bytes, want 8", len(v))
			}
			if err != nil {
				return errors.Join(fmt.Errorf("dedup identity %x: %w", l.id, err), it.Close())
			}
			stored[l.i] = int64(binary.BigEndian.Uint64(v))
		}
		ls = left
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("looking up dedup identities: %w", err)
	}
	return nil
}

// dedupSeekOrder returns the generations that can hold the dedup record of one of the entries
// [0, next), newest first, then the legacy generation (-1) when the database has one.
func (s *Storage) dedupSeekOrder(next uint64) []int64 {
	newest := dedupGenerations(next, s.genBits) - 1
	order := make([]int64, 0, max(newest-s.firstGen+2, 1))
	for gen := newest; gen >= s.firstGen; gen-- {
		order = append(order, gen)
	}
	if s.legacyDedup {
		order = append(order, legacyGeneration)
	}
	return order
}

// uncoveredSeeks is how many generations of order, a dedupSeekOrder, a lookup still seeks when
// the filter rules its identity out and covers the generations below below: those at or above
// it, which lead the order.
func uncoveredSeeks(order []int64, below int64) int {
	n := 0
	for n < len(order) && order[n] >= below {
		n++
	}
	return n
}

// DedupIndices returns, for each identity (the tessera.Entry.Identity that deduplication
// compares), the index of the first entry integrated with it, or -1. It looks them up as the
// sequencer does for a commit, exported so that the cost of deduplication can be measured on a
// real log (scripts/bench-scale).
func (s *Storage) DedupIndices(_ context.Context, identities [][]byte) ([]int64, error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return nil, errors.New("pebble storage is closed")
	}
	stored := make([]int64, len(identities))
	return stored, s.lookupSorted(identities, stored, s.tree.Load().size)
}

// appendEntry gives e the next index: its bundle data joins the right-edge bundle and its leaf
// hash joins the tree, whose new tile-level nodes visitNode collects.
func (seq *sequencer) appendEntry(e *tessera.Entry) error {
	idx := seq.size
	seq.bundle = append(seq.bundle, e.MarshalBundleData(idx)...)
	seq.bDirty = true
	seq.size++
	if err := seq.rng.Append(e.LeafHash(), seq.visit); err != nil {
		return fmt.Errorf("appending leaf %d to the tree: %w", idx, err)
	}
	if seq.visitErr != nil {
		return seq.visitErr
	}
	if seq.size%layout.EntryBundleWidth == 0 {
		seq.bundle[0] = 0 // full: 256 entries
		if err := seq.putBundle(idx/layout.EntryBundleWidth, seq.bundle, true); err != nil {
			return err
		}
		seq.bundle, seq.bDirty = make([]byte, 1, cap(seq.bundle)), false
	}
	return nil
}

// visitNode receives every node the compact range completes. Only levels that are multiples of
// the tile height are stored in tiles (tlog-tiles "Merkle Tree"); the rest are recomputed by readers.
func (seq *sequencer) visitNode(id compact.NodeID, hash []byte) {
	if id.Level%layout.TileHeight != 0 || seq.visitErr != nil {
		return
	}
	level := uint64(id.Level / layout.TileHeight)
	for uint64(len(seq.edge)) <= level {
		seq.edge = append(seq.edge, edgeTile{buf: make([]byte, 0, layout.TileWidth*hashSize)})
	}
	t := &seq.edge[level]
	tileIdx, pos := id.Index/layout.TileWidth, id.Index%layout.TileWidth
	if tileIdx != t.index || pos != uint64(len(t.buf)/hashSize) {
		seq.visitErr = fmt.Errorf("node %d at tree level %d does not extend right-edge tile %d/%d of width %d", id.Index, id.Level, level, t.index, len(t.buf)/hashSize)
		return
	}
	t.buf = append(t.buf, hash...)
	t.dirty = true
	if len(t.buf) == layout.TileWidth*hashSize {
		if err := seq.putTile(level, t.index, t.buf, true); err != nil {
			seq.visitErr = err
			return
		}
		*t = edgeTile{index: t.index + 1, buf: make([]byte, 0, layout.TileWidth*hashSize)}
	}
}

// flushEdge writes the partial right-edge tiles and bundle this commit changed.
func (seq *sequencer) flushEdge() error {
	for level := range seq.edge {
		t := &seq.edge[level]
		if !t.dirty || len(t.buf) == 0 {
			continue
		}
		if err := seq.putTile(uint64(level), t.index, t.buf, false); err != nil {
			return err
		}
		t.dirty = false
	}
	if seq.bDirty {
		seq.bundle[0] = byte(seq.size % layout.EntryBundleWidth)
		if err := seq.putBundle(seq.size/layout.EntryBundleWidth, seq.bundle, false); err != nil {
			return err
		}
		seq.bDirty = false
	}
	return nil
}

// putTile adds a tile to the write batch and queues it for the cache. A full tile's buffer is
// handed over (the caller starts a new one); a partial one is copied since it keeps growing.
func (seq *sequencer) putTile(level, index uint64, v []byte, full bool) error {
	seq.key = tileKey(seq.key, level, index)
	if err := seq.wb.Set(seq.key, v, nil); err != nil {
		return fmt.Errorf("batching tile %d/%d: %w", level, index, err)
	}
	if !full {
		v = append([]byte(nil), v...)
	}
	seq.fresh = append(seq.fresh, cachePut{k: cacheKey{kind: keyTile, level: level, index: index}, v: v})
	return nil
}

func (seq *sequencer) putBundle(index uint64, v []byte, full bool) error {
	seq.key = bundleKey(seq.key, index)
	if err := seq.wb.Set(seq.key, v, nil); err != nil {
		return fmt.Errorf("batching entry bundle %d: %w", index, err)
	}
	if !full {
		v = append([]byte(nil), v...)
	}
	seq.fresh = append(seq.fresh, cachePut{k: cacheKey{kind: keyBundle, index: index}, v: v})
	return nil
}

// add is the tessera.AddFn of the appender.
func (s *Storage) add(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
	if err := s.appendCtx.Err(); err != nil {
		return failed(fmt.Errorf("appender context done: %w", err))
	}
	if err := s.brokenErr(); err != nil {
		return failed(err)
	}
	n := s.outstanding.Add(1)
	if s.maxOutstanding > 0 && n > s.maxOutstanding {
		s.outstanding.Add(-1)
		return failed(fmt.Errorf("%d entries awaiting integration, limit %d: %w", n-1, s.maxOutstanding, tessera.ErrPushbackIntegration))
	}
	b, pos, err := s.q.add(e)
	if err != nil {
		s.outstanding.Add(-1)
		return failed(err)
	}
	return func() (tessera.Index, error) {
		<-b.done
		if b.err != nil {
			return tessera.Index{}, b.err
		}
		return b.results[pos], nil
	}
}

func failed(err error) tessera.IndexFuture {
	return func() (tessera.Index, error) { return tessera.Index{}, err }
}

// brokenState records a sequencer that can no longer trust its in-memory state.
type brokenState struct {
	err atomic.Pointer[error]
}

func (s *Storage) setBroken(err error) { s.broken.err.CompareAndSwap(nil, &err) }

func (s *Storage) brokenErr() error {
	if p := s.broken.err.Load(); p != nil {
		return *p
	}
	return nil
}
