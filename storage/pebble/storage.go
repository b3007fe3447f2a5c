// Package pebble is a Tessera storage driver (a tessera.Driver for tessera.NewAppender) that keeps
// a whole tiled transparency log in one embedded Pebble database: entry bundles and hash tiles as
// C2SP tlog-tiles (https://c2sp.org/tlog-tiles) specifies them, the integrated tree state, strong
// deduplication, and every checkpoint (C2SP tlog-checkpoint) the log published.
//
// Hashing follows RFC 6962 section 2.1 through transparency-dev/merkle; tile geometry comes from
// Tessera's api/layout. One goroutine sequences and integrates; everything one batch changes is
// written in one synced Pebble batch (see the crash story on (*sequencer).commit).
//
// Key layout, the one place it is written down. Integers are big-endian so that Pebble's byte order
// is numeric order.
//
//	key                               value
//	"v"                               format version (1 byte): 2; a version 1 database is moved to 2
//	                                  when first opened for writing (see load)
//	"s"                               tree state: size u64 | root [32] | compact range hashes [32]...
//	"c"                               latest checkpoint: published-at unix ns u64 | size u64 | note
//	"h" size u64                      checkpoint history: the note published for that tree size
//	"t" level u64 index u64           hash tile: 1..256 concatenated 32-byte hashes (tlog-tiles)
//	"b" index u64                     entry bundle: entry count u8 (0 = 256) | tlog-tiles bundle
//	"g" generation u32 identity       dedup: index u64 of the first entry with that identity, whose
//	                                  generation is index >> dedupGenBits (see dedupKey); an in-memory
//	                                  filter over them is rebuilt at open, see filter.go
//	"d" identity                      dedup as format version 1 wrote it (index u64), never written
//	                                  again but still looked up: a legacy generation
//	"z" index u64                     gzip form of full entry bundle index (derived, see full.go)
//	"f"                               frozen: final tree size u64 (see Freeze)
//
// A tile or bundle position has one key: the right-edge partial is overwritten as it grows and is
// final once full. A request for a smaller partial width is served by truncation, which yields
// exactly the bytes that width had when it was current, because tiles and bundles only grow.
package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/quirelog/quire/api/tiles"
	"github.com/quirelog/quire/storage/pebblelog"
	"github.com/quirelog/quire/storage/readonly"
)

const (
	// formatVersion 2 keys dedup records by generation; version 1 had only "d" records, which
	// version 2 still reads. Binaries that know only version 1 refuse a version 2 database, as
	// they must: they would not see its dedup records.
	formatVersion       = 2
	legacyFormatVersion = 1

	keyVersion    = 'v'
	keyTreeState  = 's'
	keyCheckpoint = 'c'
	keyHistory    = 'h'
	keyTile       = 't'
	keyBundle     = 'b'
	keyDedup      = 'g'
	keyDedupV1    = 'd'
	keyGzip       = 'z'
	keyFrozen     = 'f'

	hashSize = 32

	// closeSettle bounds how long Close waits for compactions (see pebblelog.Settle).
	closeSettle = 10 * time.Second

	memTableBytes = 32 << 20
	// memTables is how many memtables may exist at once (Pebble's default stop-writes threshold).
	memTables = 2
)

// Defaults for Config's zero values.
const (
	// DefaultCacheBytes bounds the cache of right-edge tiles and bundles (every write's proof
	// touches only those) and of full tiles and gzip forms of bundles that were read (see view).
	DefaultCacheBytes = 64 << 20
	// DefaultPebbleCacheBytes sizes Pebble's block cache, which keeps dedup lookups off the disk.
	DefaultPebbleCacheBytes = 128 << 20
)

// Config configures the driver. Only Path is required; a zero value of any other field takes its
// default, and a negative size is an error.
type Config struct {
	// Path is the directory of the Pebble database; it is created if missing.
	Path string
	// DisableDedup turns strong deduplication off; it is on by default.
	DisableDedup bool
	// DedupFilterBytes caps the in-memory filter that answers most dedup lookups (see
	// dedupFilter); 0 means DefaultDedupFilterBytes. Past it a lookup the filter rules out still
	// seeks, in Pebble, the generations written since the filter was full.
	DedupFilterBytes int64
	// CacheBytes bounds the in-memory cache of recently written (right-edge) tiles and bundles
	// and recently read full tiles and gzip forms; 0 means DefaultCacheBytes.
	CacheBytes int64
	// PebbleCacheBytes sizes Pebble's block cache; 0 means DefaultPebbleCacheBytes. Memtables
	// (2 × 32 MiB) come on top of it.
	PebbleCacheBytes int64
	// HTTPClient is handed to the checkpoint publisher for witness requests; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives publishing failures and Pebble's own messages; nil means slog.Default().
	Logger *slog.Logger
	// ReadOnly opens an existing database for reading only, on read-only media too (see package
	// storage/readonly); such a Storage serves reads and starts no appender.
	ReadOnly bool
	// Metrics, if set, receives the driver's Prometheus series (see metrics.go).
	Metrics prometheus.Registerer
	// OnPublish, if set, is called after every attempt to publish a checkpoint, from the
	// publishing goroutine, with the tree size tried and either the checkpoint published (with
	// any cosignatures) or the error. It must not block.
	OnPublish func(size uint64, checkpoint []byte, err error)

	// dedupGenBits, when not 0, replaces dedupGenBits for this open, so that tests can cross
	// generations with a few entries. A database must always be opened with the same value.
	dedupGenBits uint8
}

func (c *Config) valid() error {
	switch {
	case c.Path == "":
		return errors.New("pebble storage: Config.Path is empty")
	case c.CacheBytes < 0:
		return fmt.Errorf("pebble storage: Config.CacheBytes is %d, want 0 (the default) or more", c.CacheBytes)
	case c.PebbleCacheBytes < 0:
		return fmt.Errorf("pebble storage: Config.PebbleCacheBytes is %d, want 0 (the default) or more", c.PebbleCacheBytes)
	case c.DedupFilterBytes < 0:
		return fmt.Errorf("pebble storage: Config.DedupFilterBytes is %d, want 0 (the default) or more", c.DedupFilterBytes)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.PebbleCacheBytes == 0 {
		c.PebbleCacheBytes = DefaultPebbleCacheBytes
	}
	if c.DedupFilterBytes == 0 {
		c.DedupFilterBytes = DefaultDedupFilterBytes
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Storage is the driver returned by New. It is also the tessera.LogReader that Appender returns.
//
// Goroutines and ownership: adders only touch the queue (under queue.mu) and the outstanding
// counter; the one sequencing goroutine owns the sequencer and is the only writer of tree and of
// the cache, but for the tiles and gzip forms readers add (see view and putIfLonger); the one
// publishing goroutine is the only writer of pub and of checkpoint keys; readers take readMu
// shared. Lock order: mu before readMu (Appender reads state while holding mu); queue.mu
// and the cache's mutex are only ever held alone.
type Storage struct {
	cfg   Config
	db    *pdb.DB
	cache *edgeCache

	// readMu keeps Close from closing db under a read in flight; closed is guarded by it.
	readMu sync.RWMutex
	closed bool

	// tree is the integrated tree, replaced by the sequencer after each synced commit.
	tree atomic.Pointer[treeHead]
	// pub is the latest published checkpoint; its wake channel is closed when a newer one replaces it.
	pub atomic.Pointer[published]

	// mu guards started and closing, and orders Appender against Close.
	mu       sync.Mutex
	started  bool
	closing  bool
	q        *queue
	seqDone  chan struct{}
	pubStop  chan struct{}
	pubDone  chan struct{}
	cancel   context.CancelFunc
	nudgePub chan struct{}
	// importing, guarded by mu, says an Import runs; Appender, Import and Freeze exclude each
	// other under mu.
	importing bool

	// appendCtx is the appender's context; Add refuses new entries once it is done.
	appendCtx      context.Context
	maxOutstanding int64
	// outstanding counts entries added but not yet resolved, for pushback.
	outstanding atomic.Int64
	broken      brokenState
	metrics     *metrics
	// commitFault is the error of the latest commit if it failed; nil once one succeeds.
	commitFault atomic.Pointer[error]

	// filter answers most dedup lookups; nil when read-only or without dedup. The goroutine
	// building it from the stored keys stops when filterStop closes and then closes filterDone.
	filter     *dedupFilter
	filterStop chan struct{}
	filterDone chan struct{}
	// legacyDedup says the database holds format version 1 dedup records, which lookups must
	// check too; none are written any more, so it is settled at open.
	legacyDedup bool
	// firstGen is the oldest generation that can hold a dedup record, settled at open: that of
	// the first stored record, or of the tree size when there is none, since records are only
	// written for new entries. An upgraded log's generations below it are empty, and seeking them
	// would cost every lookup that passes the filter (or that it does not cover) a seek each.
	firstGen int64
	// genBits is dedupGenBits but in tests (see Config.dedupGenBits).
	genBits uint8
}

// treeHead is an immutable snapshot of the integrated tree.
type treeHead struct {
	size uint64
	root []byte
}

// published is an immutable snapshot of the latest published checkpoint. A nil cp means none yet.
type published struct {
	size   uint64
	atNano int64
	cp     []byte
	// next is closed when this snapshot is superseded (or the storage closes), waking Await callers.
	next   chan struct{}
	closed bool
}

// New opens (or creates) the database at cfg.Path. The returned driver's dynamic type is *Storage.
func New(ctx context.Context, cfg Config) (tessera.Driver, error) {
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if !cfg.ReadOnly {
		if err := os.MkdirAll(cfg.Path, 0o755); err != nil {
			return nil, fmt.Errorf("creating database directory %q: %w", cfg.Path, err)
		}
	}
	// Pebble reserves its memtables out of the block cache; without room for them on top, a
	// write-heavy log is left with no cached blocks at all and every dedup lookup reads the disk.
	cache := pdb.NewCache(cfg.PebbleCacheBytes + memTables*memTableBytes)
	defer cache.Unref()
	opts := &pdb.Options{
		Cache:                       cache,
		MemTableSize:                memTableBytes,
		MemTableStopWritesThreshold: memTables,
		Logger:                      pebblelog.New(cfg.Logger),
	}
	// Most dedup lookups are misses; a bloom filter answers those without reading data blocks.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	if cfg.ReadOnly {
		// A read-only open cannot move the database to a newer format; it reads blob files
		// whatever its options say.
		readonly.Options(opts)
	} else {
		valueSeparation(opts)
		// With the values in blob files a flush leaves only keys in L0, a few hundred KiB, yet
		// each of those tables spans every randomly keyed dedup record, so compacting it into
		// Lbase rewrote all of Lbase (write amplification 13 at Lbase on a 10M log). Letting
		// L0 gather 16 sublevels before that compaction cut Lbase's bytes written 3.3x at 2.5M
		// entries; a dedup lookup checks a bloom filter per sublevel, cheap next to a rewrite.
		opts.L0CompactionThreshold = 16
		opts.L0StopWritesThreshold = 64
	}
	db, err := pdb.Open(cfg.Path, opts)
	if err != nil {
		return nil, fmt.Errorf("opening pebble database %q: %w", cfg.Path, err)
	}
	s := &Storage{cfg: cfg, db: db, cache: newEdgeCache(cfg.CacheBytes), metrics: newMetrics(), genBits: dedupGenBits}
	if cfg.dedupGenBits != 0 {
		s.genBits = cfg.dedupGenBits
	}
	if err := s.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if !cfg.ReadOnly && !cfg.DisableDedup {
		s.filter = newDedupFilter(cfg.DedupFilterBytes, firstLinkKeys(s.tree.Load().size), cfg.Logger)
	}
	if cfg.Metrics != nil {
		if err := s.register(cfg.Metrics); err != nil {
			return nil, errors.Join(fmt.Errorf("registering metrics: %w", err), db.Close())
		}
	}
	if s.filter != nil {
		s.filterStop, s.filterDone = make(chan struct{}), make(chan struct{})
		go s.fillDedupFilter()
	}
	return s, nil
}

// valueSeparation keeps entry bundles and hash tiles in blob files, out of the sstables.
// Every flushed sstable spans the randomly keyed dedup records, so it overlaps every sstable
// below it and no compaction can move one down untouched: with the values inline, each level a
// log grows through rewrote every bundle once more, and that compaction work grew with the log
// (scripts/bench-scale). With them separated a compaction rewrites keys and small references,
// and a bundle is written once to a blob file when its memtable is flushed. Values below
// minSeparated (dedup records, the tree state, checkpoints) stay inline.
//
// It needs Pebble's FormatValueSeparation, to which a database made by an earlier Quire is
// moved when it is first opened for writing; Quire binaries from before that can no longer
// open it.
func valueSeparation(opts *pdb.Options) {
	const minSeparated = 1 << 10
	opts.FormatMajorVersion = pdb.FormatValueSeparation
	opts.Experimental.ValueSeparationPolicy = func() pdb.ValueSeparationPolicy {
		return pdb.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           minSeparated,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
}

// load checks the format version and reads the tree head and latest checkpoint into memory.
func (s *Storage) load() error {
	v, err := s.get([]byte{keyVersion})
	switch {
	case errors.Is(err, os.ErrNotExist) && s.cfg.ReadOnly:
		return fmt.Errorf("database %q holds no log", s.cfg.Path)
	case errors.Is(err, os.ErrNotExist):
		if err := s.db.Set([]byte{keyVersion}, []byte{formatVersion}, pdb.Sync); err != nil {
			return fmt.Errorf("writing format version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading format version: %w", err)
	case len(v) == 1 && v[0] == legacyFormatVersion && !s.cfg.ReadOnly:
		// Nothing moves: the "d" records stay and are looked up as the legacy generation, so the
		// upgrade costs one write, not a rewrite of every record at open.
		if err := s.db.Set([]byte{keyVersion}, []byte{formatVersion}, pdb.Sync); err != nil {
			return fmt.Errorf("moving the database to format version %d: %w", formatVersion, err)
		}
	case len(v) != 1 || (v[0] != formatVersion && v[0] != legacyFormatVersion):
		return fmt.Errorf("database format version %v, want %d or %d", v, legacyFormatVersion, formatVersion)
	}
	legacy, err := s.firstKey(keyDedupV1)
	if err != nil {
		return err
	}
	s.legacyDedup = legacy != nil

	st, err := s.readTreeState()
	if err != nil {
		return err
	}
	s.tree.Store(&treeHead{size: st.size, root: st.root})
	first, err := s.firstKey(keyDedup)
	switch {
	case err != nil:
		return err
	case first == nil:
		s.firstGen = int64(st.size >> s.genBits)
	case len(first) != dedupKeyHead+hashSize:
		return fmt.Errorf("dedup key %x is %d bytes, want %d", first, len(first), dedupKeyHead+hashSize)
	default:
		s.firstGen = int64(binary.BigEndian.Uint32(first[1:]))
	}

	p := &published{next: make(chan struct{})}
	raw, err := s.get([]byte{keyCheckpoint})
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading latest checkpoint: %w", err)
	default:
		at, size, cp, err := decodePublished(raw)
		if err != nil {
			return fmt.Errorf("decoding latest checkpoint: %w", err)
		}
		p.atNano, p.size, p.cp = at, size, cp
	}
	s.pub.Store(p)
	return nil
}

// readTreeState returns the stored tree state, or the empty tree when none is stored yet.
func (s *Storage) readTreeState() (treeState, error) {
	raw, err := s.get([]byte{keyTreeState})
	if errors.Is(err, os.ErrNotExist) {
		return treeState{root: rfc6962.DefaultHasher.EmptyRoot()}, nil
	}
	if err != nil {
		return treeState{}, fmt.Errorf("reading tree state: %w", err)
	}
	st, err := decodeTreeState(raw)
	if err != nil {
		return treeState{}, fmt.Errorf("decoding tree state: %w", err)
	}
	return st, nil
}

// get returns a copy of the value at key, or an error wrapping os.ErrNotExist.
func (s *Storage) get(key []byte) ([]byte, error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return nil, errors.New("pebble storage is closed")
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pdb.ErrNotFound) {
		return nil, fmt.Errorf("key %q: %w", key, os.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("getting key %q: %w", key, err)
	}
	out := append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("releasing key %q: %w", key, err)
	}
	return out, nil
}

// ReadCheckpoint returns the latest published checkpoint, or os.ErrNotExist before the first.
func (s *Storage) ReadCheckpoint(_ context.Context) ([]byte, error) {
	p := s.pub.Load()
	if p.cp == nil {
		return nil, fmt.Errorf("no checkpoint published yet: %w", os.ErrNotExist)
	}
	return append([]byte(nil), p.cp...), nil
}

// ReadTile returns the hash tile at (level, index) with partial width p (0 = full), per
// tlog-tiles "/tile/<L>/<N>[.p/<W>]". Like Tessera's POSIX driver, a full tile answers a partial
// request once it exists.
func (s *Storage) ReadTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	k := cacheKey{kind: keyTile, level: level, index: index}
	if v, ok := s.cache.get(k); ok {
		if out, err := tileAtWidth(v, p); err == nil {
			return append([]byte(nil), out...), nil
		}
	}
	v, err := s.get(tileKey(nil, level, index))
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d.p/%d: %w", level, index, p, err)
	}
	out, err := tileAtWidth(v, p)
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d.p/%d: %w", level, index, p, err)
	}
	return out, nil
}

// ReadEntryBundle returns entry bundle index with partial width p (0 = full), per tlog-tiles
// "/tile/entries/<N>[.p/<W>]", falling back to the full bundle like ReadTile.
func (s *Storage) ReadEntryBundle(_ context.Context, index uint64, p uint8) ([]byte, error) {
	k := cacheKey{kind: keyBundle, index: index}
	if v, ok := s.cache.get(k); ok {
		if out, err := bundleAtWidth(v, p); err == nil {
			return append([]byte(nil), out...), nil
		}
	}
	v, err := s.get(bundleKey(nil, index))
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d.p/%d: %w", index, p, err)
	}
	out, err := bundleAtWidth(v, p)
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d.p/%d: %w", index, p, err)
	}
	return out, nil
}

// IntegratedSize returns the size of the integrated (not necessarily published) tree.
func (s *Storage) IntegratedSize(_ context.Context) (uint64, error) {
	return s.tree.Load().size, nil
}

// NextIndex returns the first unassigned index. Integration is synchronous with sequencing here,
// so it equals IntegratedSize.
func (s *Storage) NextIndex(ctx context.Context) (uint64, error) {
	return s.IntegratedSize(ctx)
}

// CheckpointAt returns the checkpoint this log published for exactly tree size size, or an error
// wrapping os.ErrNotExist if it never published one for that size.
func (s *Storage) CheckpointAt(_ context.Context, size uint64) ([]byte, error) {
	cp, err := s.get(historyKey(size))
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint for size %d: %w", size, err)
	}
	return cp, nil
}

// Close stops the sequencer and the checkpoint publisher, waiting for queued entries to be
// integrated (or failed), wakes every Await caller, and closes Pebble. Call it after the
// appender's shutdown function. Close is idempotent.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	started := s.started
	s.mu.Unlock()

	if started {
		s.q.close()
		<-s.seqDone
		close(s.pubStop)
		<-s.pubDone
		s.cancel()
	}
	old := s.pub.Load()
	s.pub.Store(&published{size: old.size, atNano: old.atNano, cp: old.cp, next: make(chan struct{}), closed: true})
	close(old.next)
	if s.filter != nil {
		close(s.filterStop)
		<-s.filterDone
	}

	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.closed = true
	// Flushing the memtables now (up to 64 MiB, well under a second) spares the next start from
	// replaying them from the WAL, which took seconds on a busy machine (scripts/bench-scale's
	// restart time). A crash still replays the WAL, as it must. A database with a fault is not
	// flushed: Pebble treats a failure to start a new WAL as fatal and would end the process.
	var flushErr error
	if !s.cfg.ReadOnly && s.fault() == nil {
		if err := s.db.Flush(); err != nil {
			flushErr = fmt.Errorf("flushing pebble memtables: %w", err)
		} else {
			// Pebble's Open waits for any compaction that starts while it opens, and one that
			// closed with compaction debt starts one at once: settling now spares the next start.
			pebblelog.Settle(s.db, closeSettle)
		}
	}
	if err := s.db.Close(); err != nil {
		return errors.Join(flushErr, fmt.Errorf("closing pebble database: %w", err))
	}
	return flushErr
}

// tileAtWidth serves width p (0 = full) from a stored tile v: the full tile for any width once it
// is full, else the first p hashes (tiles.TrimTile), or an error wrapping os.ErrNotExist when v is
// narrower than p.
func tileAtWidth(v []byte, p uint8) ([]byte, error) {
	switch w := len(v) / hashSize; {
	case w == layout.TileWidth:
		p = 0
	case p == 0 || w < int(p):
		return nil, fmt.Errorf("tile has %d hashes, want width %d: %w", w, p, os.ErrNotExist)
	}
	return tiles.TrimTile(v, p)
}

// bundleAtWidth serves width p (0 = full) from a stored bundle value (count byte | bundle) as
// tileAtWidth does, cutting with tiles.TrimBundle.
func bundleAtWidth(v []byte, p uint8) ([]byte, error) {
	if len(v) < 1 {
		return nil, errors.New("stored entry bundle is empty")
	}
	switch count := int(v[0]); {
	case count == 0:
		p = 0
	case p == 0 || int(p) > count:
		return nil, fmt.Errorf("bundle has %d entries, want width %d: %w", count, p, os.ErrNotExist)
	}
	return tiles.TrimBundle(v[1:], p)
}

func tileKey(dst []byte, level, index uint64) []byte {
	dst = append(dst[:0], keyTile)
	dst = binary.BigEndian.AppendUint64(dst, level)
	return binary.BigEndian.AppendUint64(dst, index)
}

func bundleKey(dst []byte, index uint64) []byte {
	dst = append(dst[:0], keyBundle)
	return binary.BigEndian.AppendUint64(dst, index)
}

// dedupGenBits sets a dedup generation at 2^21 entries. Dedup identities are random, so a
// flushed memtable's records span their whole key range, and with one range for the whole log
// every compaction of L0 into Lbase rewrote all of Lbase's records, however old. Keyed by
// generation, a flush spans only the current generation's range, so only its records are
// rewritten, and a settled generation's tables move down untouched: growing a log to 10M
// entries, compactions wrote 1.2-1.3 GB of sstables instead of 2.0-2.1 GB, and CPU per entry
// in the last millions fell about a sixth (scripts/bench-scale). A lookup that passes the
// in-memory filter seeks once per generation (5 at 10M entries, 48 at 100M), which the bloom
// filters answer for the generations that do not hold the identity; larger generations would
// make those lookups cheaper and each generation's compactions costlier.
const dedupGenBits = 21

// dedupKeyHead is the length of a generation-keyed dedup record's key before its identity: the
// prefix byte and the generation.
const dedupKeyHead = 1 + 4

// dedupGenerations is the number of generations of 2^bits entries that hold the dedup records
// of entries [0, next).
func dedupGenerations(next uint64, bits uint8) int64 {
	return int64((next + 1<<bits - 1) >> bits)
}

// dedupKey is the key of the dedup record of identity in generation gen; gen < 0 is the legacy
// generation, format version 1's "d" records.
func dedupKey(dst []byte, gen int64, identity []byte) []byte {
	if gen < 0 {
		return append(append(dst[:0], keyDedupV1), identity...)
	}
	dst = append(dst[:0], keyDedup)
	dst = binary.BigEndian.AppendUint32(dst, uint32(gen))
	return append(dst, identity...)
}

// dedupIdentity returns the identity in a dedup record's key, of either layout; a key too short
// for its layout, which only a damaged database holds, gives what is left of it.
func dedupIdentity(key []byte) []byte {
	if len(key) > 0 && key[0] == keyDedupV1 {
		return key[1:]
	}
	return key[min(len(key), dedupKeyHead):]
}

// dedupKeyGeneration returns the generation of a dedup record's key of either layout,
// legacyGeneration for a "d" key. A generation-keyed key too short to hold one, which only a
// damaged database holds, counts as legacy too: below every generation, the side on which a
// filter bound set from it covers less, never more.
func dedupKeyGeneration(key []byte) int64 {
	if len(key) < dedupKeyHead || key[0] != keyDedup {
		return legacyGeneration
	}
	return int64(binary.BigEndian.Uint32(key[1:]))
}

// firstKey returns a copy of the first key that starts with prefix, or nil when there is none.
func (s *Storage) firstKey(prefix byte) ([]byte, error) {
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return nil, fmt.Errorf("looking for %q keys: %w", prefix, err)
	}
	var key []byte
	if it.First() {
		key = append([]byte(nil), it.Key()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("looking for %q keys: %w", prefix, err)
	}
	return key, nil
}

func historyKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{keyHistory}, size)
}

// treeState is the integrated tree as stored under key "s".
type treeState struct {
	size   uint64
	root   []byte
	hashes [][]byte // compact range [0, size): one hash per set bit of size, largest subtree first
}

func encodeTreeState(dst []byte, st treeState) []byte {
	dst = binary.BigEndian.AppendUint64(dst[:0], st.size)
	dst = append(dst, st.root...)
	for _, h := range st.hashes {
		dst = append(dst, h...)
	}
	return dst
}

func decodeTreeState(raw []byte) (treeState, error) {
	if len(raw) < 8+hashSize || (len(raw)-8)%hashSize != 0 {
		return treeState{}, fmt.Errorf("tree state is %d bytes, want 40 + a multiple of 32", len(raw))
	}
	st := treeState{size: binary.BigEndian.Uint64(raw)}
	st.root = append([]byte(nil), raw[8:8+hashSize]...)
	rest := raw[8+hashSize:]
	if got, want := len(rest)/hashSize, bits.OnesCount64(st.size); got != want {
		return treeState{}, fmt.Errorf("tree state for size %d has %d compact range hashes, want %d", st.size, got, want)
	}
	for off := 0; off < len(rest); off += hashSize {
		st.hashes = append(st.hashes, append([]byte(nil), rest[off:off+hashSize]...))
	}
	return st, nil
}

func encodePublished(atNano int64, size uint64, cp []byte) []byte {
	v := make([]byte, 0, 16+len(cp))
	v = binary.BigEndian.AppendUint64(v, uint64(atNano))
	v = binary.BigEndian.AppendUint64(v, size)
	return append(v, cp...)
}

func decodePublished(raw []byte) (atNano int64, size uint64, cp []byte, err error) {
	if len(raw) < 17 {
		return 0, 0, nil, fmt.Errorf("latest checkpoint record is %d bytes, want more than 16", len(raw))
	}
	return int64(binary.BigEndian.Uint64(raw)), binary.BigEndian.Uint64(raw[8:]), append([]byte(nil), raw[16:]...), nil
}
