package log

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// proofCacheSizes is how many tree sizes keep a warm proof builder. Writes
// ask for proofs to the newest checkpoint or two; a few more absorb readers.
const proofCacheSizes = 8

// proofCache keeps one Tessera proof builder per recent tree size, so the
// thousands of writes answered from one checkpoint share fetched tiles
// instead of each reading its own. A ProofBuilder is not safe for concurrent
// use, so each has a mutex; proofs from a warm builder take microseconds.
type proofCache struct {
	fetch client.TileFetcherFunc

	mu       sync.Mutex
	builders []*sizedBuilder // oldest first
}

type sizedBuilder struct {
	size uint64
	mu   sync.Mutex
	pb   *client.ProofBuilder
}

func newProofCache(f client.TileFetcherFunc) *proofCache {
	return &proofCache{fetch: f}
}

func (c *proofCache) builder(ctx context.Context, size uint64) (*sizedBuilder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.builders {
		if b.size == size {
			return b, nil
		}
	}
	pb, err := client.NewProofBuilder(ctx, size, c.fetch)
	if err != nil {
		return nil, fmt.Errorf("new proof builder for size %d: %w", size, err)
	}
	b := &sizedBuilder{size: size, pb: pb}
	if len(c.builders) >= proofCacheSizes {
		c.builders = append(c.builders[:0], c.builders[1:]...)
	}
	c.builders = append(c.builders, b)
	return b, nil
}

func (c *proofCache) inclusion(ctx context.Context, index, size uint64) ([][]byte, error) {
	b, err := c.builder(ctx, size)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pb.InclusionProof(ctx, index)
}

func (c *proofCache) consistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	b, err := c.builder(ctx, second)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pb.ConsistencyProof(ctx, first, second)
}

// root computes the RFC 6962 root of the tree of size from the tiles.
func (c *proofCache) root(ctx context.Context, size uint64) ([]byte, error) {
	nodes, err := client.FetchRangeNodes(ctx, size, c.fetch)
	if err != nil {
		return nil, fmt.Errorf("fetching range nodes: %w", err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, size, nodes)
	if err != nil {
		return nil, fmt.Errorf("building compact range: %w", err)
	}
	return r.GetRootHash(nil)
}

// readTile reads a hash tile of width p (0: full). A driver may delete a
// partial tile once a wider one exists (Tessera's POSIX driver garbage
// collects them), yet proofs to past tree sizes need the narrow one. Hashes
// in a tile never change once written (tlog-tiles), so the first p hashes of
// the full tile, or of the current wider partial tile, are the same tile.
func (l *Log) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	t, err := l.reader.ReadTile(ctx, level, index, p)
	if err == nil || p == 0 || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, fmt.Errorf("reading tile %d/%d.p/%d: %w", level, index, p, err)
		}
		return t, nil
	}
	wider, err := l.readWider(ctx, p, func(w uint8) ([]byte, error) { return l.reader.ReadTile(ctx, level, index, w) },
		func(size uint64) uint8 { return layout.PartialTileSize(level, index, size) })
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d.p/%d: %w", level, index, p, err)
	}
	if len(wider) < int(p)*32 {
		return nil, fmt.Errorf("tile %d/%d has %d bytes, want at least %d", level, index, len(wider), int(p)*32)
	}
	return wider[:int(p)*32], nil
}

// readBundle reads entry bundle index of width p with the same fallback as
// readTile: a bundle's first p entries never change.
func (l *Log) readBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	b, err := l.reader.ReadEntryBundle(ctx, index, p)
	if err == nil || p == 0 || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, fmt.Errorf("reading entry bundle %d.p/%d: %w", index, p, err)
		}
		return b, nil
	}
	wider, err := l.readWider(ctx, p, func(w uint8) ([]byte, error) { return l.reader.ReadEntryBundle(ctx, index, w) },
		func(size uint64) uint8 { return layout.PartialTileSize(0, index, size) })
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d.p/%d: %w", index, p, err)
	}
	end, err := bundlePrefix(wider, int(p))
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", index, err)
	}
	return wider[:end], nil
}

// readWider reads the full resource, or else the partial one of the latest
// checkpoint's width, if that is wider than p.
func (l *Log) readWider(ctx context.Context, p uint8, read func(w uint8) ([]byte, error), widthAt func(size uint64) uint8) ([]byte, error) {
	full, err := read(0)
	if err == nil {
		return full, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	cp, err := l.latest(ctx)
	if err != nil {
		return nil, err
	}
	w := widthAt(cp.size)
	if w <= p {
		return nil, fmt.Errorf("no full or wider partial version (latest width %d): %w", w, fs.ErrNotExist)
	}
	return read(w)
}

// bundlePrefix returns the byte length of the first n entries of a
// tlog-tiles entry bundle (each a 2-byte big-endian length and the data).
func bundlePrefix(b []byte, n int) (int, error) {
	off := 0
	for i := 0; i < n; i++ {
		if off+2 > len(b) {
			return 0, fmt.Errorf("bundle ends after %d of %d entries", i, n)
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		if off > len(b) {
			return 0, fmt.Errorf("entry %d overruns the bundle", i)
		}
	}
	return off, nil
}

// readEntry returns the leaf data of entry index in the tree of size.
func (l *Log) readEntry(ctx context.Context, index, size uint64) ([]byte, error) {
	bi := index / layout.EntryBundleWidth
	raw, err := l.readBundle(ctx, bi, layout.PartialTileSize(0, bi, size))
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("parsing entry bundle %d: %w", bi, err)
	}
	i := index % layout.EntryBundleWidth
	if i >= uint64(len(b.Entries)) {
		return nil, fmt.Errorf("entry bundle %d has %d entries, want entry %d", bi, len(b.Entries), i)
	}
	return b.Entries[i], nil
}
