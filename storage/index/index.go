// Package index is a small Pebble-backed secondary index for a transparency
// log: opaque byte keys, each naming a set of uint64 log indices, and a
// progress counter (the first log index not yet indexed) that is written in
// the same atomic, synced batch as the keys, so an indexer resumes exactly
// where its last write ended after a crash or restart. It knows nothing of
// entry kinds; Quire's log package decides what the keys are.
//
// Key layout in the Pebble database (one per index, in its own directory):
//
//	0x00 "progress"                          → 8-byte big-endian next index
//	0x00 "format"                            → 8-byte big-endian key format (absent: 0)
//	0x01 uvarint(len(key)) key  BE64(index)  → empty
//
// The length prefix keeps one key from being a prefix of another, so a
// prefix scan over 0x01 uvarint(len) key returns exactly that key's indices,
// in increasing order because the index is big-endian. Re-adding a posting
// rewrites the same Pebble key, so replays are harmless.
package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/quirelog/quire/storage/pebblelog"
	"github.com/quirelog/quire/storage/readonly"
)

var (
	progressKey = []byte("\x00progress")
	formatKey   = []byte("\x00format")
)

const postingTag = 0x01

// DB is an index stored in a Pebble database. Its methods are safe for
// concurrent use; Add calls are serialised.
type DB struct {
	db       *pebble.DB
	path     string
	readOnly bool
	mu       sync.Mutex // serialises Add's read-check-write of progress
	// commitFailed says a batch commit failed: the database may have lost its WAL, so Close
	// must not flush (Pebble ends the process when it cannot start a new WAL).
	commitFailed atomic.Bool
}

// Open opens (creating if needed) the index database in directory path. Pebble's messages go to
// logger (nil: slog.Default()); failures that matter also reach the caller as errors.
func Open(path string, logger *slog.Logger) (*DB, error) {
	opts := &pebble.Options{Logger: pebblelog.New(logger)}
	// Two of an entry's three postings (leaf hash, artifact digest) are random keys, so every
	// flushed memtable spans the whole key space and each compaction of L0 into Lbase rewrites
	// all of Lbase. At Pebble's threshold of 4 files that rewrite came every 16 MiB of memtables
	// and was most of the index's cost; waiting for 16 sublevels (64 MiB) cut the CPU per entry
	// by 40% and the bytes written by half at 4 million entries (BenchmarkSteadyState), at no
	// cost in memory. A search then reads up to 16 more tables, cheap next to the rewrites.
	opts.L0CompactionThreshold = 16
	opts.L0StopWritesThreshold = 64
	// Memtables twice Pebble's 4 MiB default make those rewrites of Lbase come every 128 MiB
	// rather than 64: 15% less CPU per entry and a quarter fewer bytes written at 1.2 million
	// entries (BenchmarkSteadyState), for 8 MiB more memory at most (Pebble holds two), which
	// README "Memory" counts. Waiting for 32 sublevels instead saved as much without memory, but
	// made a search by digest five times slower: a search reads every sublevel.
	opts.MemTableSize = 8 << 20
	return open(path, opts, false)
}

// OpenReadOnly opens an existing index database for lookups only, on read-only media too (see
// storage/readonly); Add then fails.
func OpenReadOnly(path string, logger *slog.Logger) (*DB, error) {
	opts := &pebble.Options{Logger: pebblelog.New(logger)}
	readonly.Options(opts)
	return open(path, opts, true)
}

func open(path string, opts *pebble.Options, readOnly bool) (*DB, error) {
	db, err := pebble.Open(path, opts)
	if err != nil {
		return nil, fmt.Errorf("opening index database %s: %w", path, err)
	}
	return &DB{db: db, path: path, readOnly: readOnly}, nil
}

// Backup writes a consistent copy of the index to dir, which must not exist, while it is in use
// (a Pebble checkpoint, as storage/pebble's Backup).
func (d *DB) Backup(dir string) error {
	if err := d.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpointing the index database into %s: %w", dir, err)
	}
	return nil
}

// closeSettle bounds how long Close waits for compactions (see pebblelog.Settle).
const closeSettle = 10 * time.Second

// Close flushes the memtable, lets compactions finish (for at most closeSettle) and closes the
// database. Without the flush the next Open replays every posting written since the last flush
// from the WAL and writes them out before it returns; without the wait it starts a compaction
// and waits for it to end: together most of a restart's time on a large log
// (scripts/bench-scale). A crash still replays
// the WAL, as it must. An index whose last commit failed or whose directory is gone is not
// flushed: Pebble treats a failure to start a new WAL as fatal and would end the process.
func (d *DB) Close() error {
	var flushErr error
	if !d.readOnly && !d.commitFailed.Load() {
		if _, err := os.Stat(d.path); err != nil {
			flushErr = fmt.Errorf("index database directory: %w", err)
		} else if err := d.db.Flush(); err != nil {
			flushErr = fmt.Errorf("flushing index memtable: %w", err)
		} else {
			pebblelog.Settle(d.db, closeSettle)
		}
	}
	if err := d.db.Close(); err != nil {
		return errors.Join(flushErr, fmt.Errorf("closing index database: %w", err))
	}
	return flushErr
}

// commit commits b with Sync, remembering a failure for Close.
func (d *DB) commit(b *pebble.Batch) error {
	err := b.Commit(pebble.Sync)
	if err != nil {
		d.commitFailed.Store(true)
	}
	return err
}

// postingPrefix is 0x01 uvarint(len(key)) key.
func postingPrefix(key []byte) []byte {
	return appendPostingPrefix(make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+8), key)
}

func appendPostingPrefix(p, key []byte) []byte {
	p = append(p, postingTag)
	p = binary.AppendUvarint(p, uint64(len(key)))
	return append(p, key...)
}

// Add records that keys[i] names indices[i] for every i and moves the
// progress to next, in one synced batch. Progress never moves backwards: a
// next below the stored progress is an error and writes nothing.
func (d *DB) Add(ctx context.Context, keys [][]byte, indices []uint64, next uint64) error {
	if len(keys) != len(indices) {
		return fmt.Errorf("adding to index: %d keys but %d indices", len(keys), len(indices))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("adding to index: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.progress()
	if err != nil {
		return err
	}
	if next < cur {
		return fmt.Errorf("adding to index: progress %d would move back from %d", next, cur)
	}
	// The postings go into the batch in key order. Pebble applies a batch to its memtable in the
	// batch's order, remembering where the last key went; keys that are hashes land all over the
	// skiplist, and each insert searches it from the top, while in order each starts near the last.
	buf := make([]byte, 0, len(keys)*(1+binary.MaxVarintLen64+8)+totalLen(keys))
	postings := make([][]byte, len(keys))
	for i, k := range keys {
		start := len(buf)
		buf = binary.BigEndian.AppendUint64(appendPostingPrefix(buf, k), indices[i])
		postings[i] = buf[start:len(buf):len(buf)]
	}
	slices.SortFunc(postings, bytes.Compare)
	b := d.db.NewBatch()
	defer b.Close()
	for i, pk := range postings {
		if err := b.Set(pk, nil, nil); err != nil {
			return fmt.Errorf("adding posting %d to batch: %w", i, err)
		}
	}
	if err := b.Set(progressKey, binary.BigEndian.AppendUint64(nil, next), nil); err != nil {
		return fmt.Errorf("adding progress to batch: %w", err)
	}
	if err := d.commit(b); err != nil {
		return fmt.Errorf("committing index batch up to %d: %w", next, err)
	}
	return nil
}

// totalLen is the sum of the lengths of keys.
func totalLen(keys [][]byte) int {
	n := 0
	for _, k := range keys {
		n += len(k)
	}
	return n
}

// Lookup returns at most limit indices recorded for key, smallest first,
// starting at the first one at or above from (limit <= 0: all of them). The
// start is a seek in the index, so every page costs the same however deep it
// is.
func (d *DB) Lookup(ctx context.Context, key []byte, from uint64, limit int) ([]uint64, error) {
	prefix := postingPrefix(key)
	lower := binary.BigEndian.AppendUint64(bytes.Clone(prefix), from)
	it, err := d.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("looking up index key: %w", err)
	}
	var out []uint64
	for ok := it.First(); ok && (limit <= 0 || len(out) < limit); ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			// Unreachable with the length prefix; refuse rather than guess.
			_ = it.Close()
			return nil, fmt.Errorf("index key of length %d under a prefix of length %d", len(k), len(prefix))
		}
		out = append(out, binary.BigEndian.Uint64(k[len(prefix):]))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("iterating index key: %w", err)
	}
	return out, nil
}

// Format returns the key format recorded by Restart (0 for an index that never recorded one).
func (d *DB) Format(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("reading index format: %w", err)
	}
	return d.counter(formatKey, "format")
}

// Restart records format and moves the progress back to 0, in one synced batch, so that the
// indexer adds every entry again with that format's keys. Postings already there stay: the
// indexer adds them again, which is harmless. When the recorded format is already format or
// later it changes nothing.
func (d *DB) Restart(ctx context.Context, format uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restarting index: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.counter(formatKey, "format")
	if err != nil {
		return err
	}
	if cur >= format {
		return nil
	}
	b := d.db.NewBatch()
	defer b.Close()
	if err := b.Set(formatKey, binary.BigEndian.AppendUint64(nil, format), nil); err != nil {
		return fmt.Errorf("adding format to batch: %w", err)
	}
	if err := b.Set(progressKey, binary.BigEndian.AppendUint64(nil, 0), nil); err != nil {
		return fmt.Errorf("adding progress to batch: %w", err)
	}
	if err := d.commit(b); err != nil {
		return fmt.Errorf("committing index restart for format %d: %w", format, err)
	}
	return nil
}

// Progress returns the first log index not yet indexed (0 for a new index).
func (d *DB) Progress(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("reading index progress: %w", err)
	}
	return d.progress()
}

func (d *DB) progress() (uint64, error) {
	return d.counter(progressKey, "progress")
}

// counter reads one of the index's 8-byte big-endian values (0 when absent).
func (d *DB) counter(key []byte, name string) (uint64, error) {
	v, closer, err := d.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading index %s: %w", name, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("index %s has %d bytes, want 8", name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Has says whether key names log index idx.
func (d *DB) Has(key []byte, idx uint64) (bool, error) {
	_, closer, err := d.db.Get(binary.BigEndian.AppendUint64(postingPrefix(key), idx))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up index posting: %w", err)
	}
	return true, closer.Close()
}

// Postings calls fn with every key and log index the index records, in key order; fn's error
// stops the walk and is returned. The key is only valid during the call.
func (d *DB) Postings(ctx context.Context, fn func(key []byte, idx uint64) error) error {
	it, err := d.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{postingTag}, UpperBound: []byte{postingTag + 1}})
	if err != nil {
		return fmt.Errorf("walking the index: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[1:]
		n, w := binary.Uvarint(k)
		if w <= 0 || uint64(len(k)) != uint64(w)+n+8 {
			_ = it.Close()
			return fmt.Errorf("index posting %x is malformed", it.Key())
		}
		if err := fn(k[w:w+int(n)], binary.BigEndian.Uint64(k[w+int(n):])); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("walking the index: %w", err)
	}
	return nil
}
