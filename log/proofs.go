package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"

	"github.com/quirelog/quire/api/tiles"
)

// proofCacheTiles bounds the tiles whose nodes proofCache keeps: up to twice
// this many, each at most 16 KiB (its 256 hashes and the 255 nodes they
// build), so about 64 MiB. Proofs for writes touch only the right edge; the
// rest absorbs readers asking for proofs all over the tree (a tile per
// 256 entries, so 2 × 2,048 tiles cover a million entries at level 0).
const proofCacheTiles = 2048

// hashSize is the size of an RFC 6962 SHA-256 node hash.
const hashSize = sha256.Size

// proofCache builds RFC 6962 proofs from tlog-tiles hash tiles, keeping
// every node of the tiles it has read. Tessera's client.ProofBuilder does the
// same job but recomputes a subtree root from up to 128 tile hashes on every
// node lookup, which on the write path cost more than checking the request's
// signature (BenchmarkInclusionProof, tree of 20,000: about 230 µs per proof
// from a warm ProofBuilder against a few µs here). A tile's nodes depend
// only on the tile and its width, never on the tree size, so a full tile's
// nodes serve every tree size, and the right-edge partial tiles every
// checkpoint that shares them; thousands of writes answered from one
// checkpoint share all of them. The node lists are transparency-dev/merkle's
// (proof.Inclusion, proof.Consistency); the ephemeral node they name is
// folded as Nodes.Rehash folds it, but once per tree size (ephemeralNode);
// tests check the proofs against client.ProofBuilder.
type proofCache struct {
	fetch client.TileFetcherFunc

	// mu guards the two generations of tiles: lookups check cur and then
	// old (moving a hit to cur); when cur is full it becomes old and the
	// previous old is dropped, which keeps the recently used tiles at the
	// cost of two maps. Tiles are read and built outside mu; two requests
	// may build the same tile, and the second one is dropped.
	mu       sync.Mutex
	cur, old map[tileKey]*tileNodes
	// ephemeral holds the ephemeral nodes proofs have folded (see hashes),
	// under mu; it is emptied when it reaches ephemeralNodes.
	ephemeral map[ephemeralKey][]byte
	// upper holds, under mu, the checked upper parts of inclusion proofs
	// (see verifiedInclusion); it is emptied when it reaches upperProofs.
	upper map[upperKey]upperProof
}

// upperKey names the upper part of the inclusion proofs of the entries of
// full level-0 tile index in the tree of size: the proof of that tile's root
// node, which all of them share.
type upperKey struct{ size, index uint64 }

// upperProof is an upper part that was checked against the tree's root: the
// tile root it starts from and the hashes above it, copied out of the tile
// cache so that an entry pins no evicted tile.
type upperProof struct {
	tileRoot []byte
	hashes   [][]byte
}

// upperProofs bounds proofCache.upper: an entry holds a key, a tile root and
// at most 56 hashes with their slice headers (a tree of 2^64 has 64 levels,
// 8 of them in the level-0 tile), about 3 KiB, so at most about 13 MiB, and
// about 3 MiB in a tree of a million (12 hashes each). 4,096 entries cover
// the level-0 tiles of a million entries at one tree size.
const upperProofs = 4096

// ephemeralKey names ephemeral node id of the tree of size (proof.Nodes.Ephem):
// a node on the tree's right border whose hash is not stored in any tile, but
// which every proof in that tree passing through it shares (a tree has one
// per level at most).
type ephemeralKey struct {
	size uint64
	id   compact.NodeID
}

// ephemeralNodes bounds proofCache.ephemeral (32 hashes and a key each):
// readers ask for proofs in the latest few trees, at most 64 nodes each.
const ephemeralNodes = 1024

// tileKey names a tile of one width: a partial tile of width w holds the
// first w hashes of every wider one, and its nodes never change.
type tileKey struct {
	level, index uint64
	width        uint8 // 0: full
}

// tileNodes are the nodes of one tile by height within it: rows[0] are the
// tile's hashes, rows[k] holds the parent of hashes 2i and 2i+1 of rows[k-1]
// at 32-byte slot i. Rows are never modified once built.
type tileNodes struct {
	rows [layout.TileHeight + 1][]byte
}

func newProofCache(f client.TileFetcherFunc) *proofCache {
	return &proofCache{fetch: f, cur: make(map[tileKey]*tileNodes), ephemeral: make(map[ephemeralKey][]byte), upper: make(map[upperKey]upperProof)}
}

func (c *proofCache) inclusion(ctx context.Context, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof node list: %w", err)
	}
	return c.hashes(ctx, size, nodes)
}

// verifiedInclusion returns the inclusion proof of the entry at index with
// leaf hash leaf in the tree of size, checked against the tree's root: a
// storage fault (a wrong hash in a stored tile) gives an error, never a
// proof that does not verify. The hashes are shared as hashes' are.
//
// Checking every proof with proof.VerifyInclusion cost a sixth of a proof's
// CPU, yet for an entry in a full level-0 tile most of that work is the same
// for every proof: the lower eight hashes and the path they give to the
// tile's root are the tile's own nodes (buildTile made them), and the rest
// is the proof of the tile's root, shared by the tile's 256 entries. So that
// upper part is checked once per tile and tree size (the tree above level 8
// is an RFC 6962 tree over ceil(size/256) leaves, the level-8 nodes) and
// kept; each proof then only compares its leaf hash with the tile's and the
// tile's root with the one the upper part was checked from.
func (c *proofCache) verifiedInclusion(ctx context.Context, index, size uint64, leaf, root []byte) ([][]byte, error) {
	if !inFullTile(index, size) {
		// The right edge's partial tile: its nodes change with the size.
		hs, err := c.inclusion(ctx, index, size)
		if err != nil {
			return nil, err
		}
		if err := proof.VerifyInclusion(hasher, index, size, leaf, hs, root); err != nil {
			return nil, fmt.Errorf("inclusion proof for %d in tree of %d does not verify: %w", index, size, err)
		}
		return hs, nil
	}
	lower, upper, err := c.verifiedTileInclusion(ctx, index, size, leaf, root)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, 0, len(lower)+len(upper))
	return append(append(hs, lower[:]...), upper...), nil
}

// inFullTile reports whether entry index is in a full level-0 tile of the
// tree of size.
func inFullTile(index, size uint64) bool {
	return (index/layout.TileWidth+1)*layout.TileWidth <= size
}

// verifiedTileInclusion is verifiedInclusion for an entry in a full level-0
// tile, as the proof's two parts: lower, the eight hashes within the tile,
// and upper, the hashes above it, which the tile's entries share in this tree.
func (c *proofCache) verifiedTileInclusion(ctx context.Context, index, size uint64, leaf, root []byte) (lower [layout.TileHeight][]byte, upper [][]byte, err error) {
	tileIndex, slot := index/layout.TileWidth, index%layout.TileWidth
	tn, err := c.tile(ctx, tileKey{level: 0, index: tileIndex})
	if err != nil {
		return lower, nil, err
	}
	if !bytes.Equal(tn.rows[0][slot*hashSize:(slot+1)*hashSize], leaf) {
		return lower, nil, fmt.Errorf("inclusion proof for %d in tree of %d does not verify: leaf hash %x differs from the tile's %x", index, size, leaf, tn.rows[0][slot*hashSize:(slot+1)*hashSize])
	}
	tileRoot := tn.rows[layout.TileHeight]
	up, err := c.upperProof(ctx, index, size, tileRoot, root)
	if err != nil {
		return lower, nil, err
	}
	if !bytes.Equal(up.tileRoot, tileRoot) {
		// The tile was read again since and differs: one of its two reads
		// was wrong.
		return lower, nil, fmt.Errorf("inclusion proof for %d in tree of %d does not verify: tile 0/%d's root changed", index, size, tileIndex)
	}
	for h := range layout.TileHeight {
		sib := (slot>>h ^ 1) * hashSize
		lower[h] = tn.rows[h][sib : sib+hashSize]
	}
	return lower, up.hashes, nil
}

// TileProof is the inclusion proof of an entry in a full level-0 tile, in
// the parts that proofs share: an answer can keep the encoding of the tree
// head and of Upper, and encode only the entry's own Lower hashes.
type TileProof struct {
	Index, TreeSize uint64
	// Root is the root of the tree of TreeSize, and Checkpoint the
	// checkpoint the log signed at that size, if it has one (Signed).
	Root       []byte
	Checkpoint string
	Signed     bool
	// Lower are the proof's first hashes, within the entry's tile; Upper
	// the rest, the proof of the tile's root, which every entry of the tile
	// shares in the tree of TreeSize. Both are shared with the proof cache:
	// callers must not modify them.
	Lower [layout.TileHeight][]byte
	Upper [][]byte
}

// TileInclusionProof is InclusionProof in parts, for an entry in a full
// level-0 tile: its hashes are the same, and as checked against the root.
// It reports false, and no error, when InclusionProof is to answer
// instead: for an entry in the right edge's partial tile, and for any
// request that InclusionProof refuses.
func (l *Log) TileInclusionProof(ctx context.Context, index, treeSize uint64) (TileProof, bool, error) {
	cp, err := l.checkpointForSize(ctx, treeSize)
	if err != nil || index >= cp.size || !inFullTile(index, cp.size) || cp.size > math.MaxInt64 {
		return TileProof{}, false, nil
	}
	leaf, err := l.proofs.leaf(ctx, index, cp.size)
	if err != nil {
		return TileProof{}, false, fmt.Errorf("reading leaf hash of entry %d: %w", index, err)
	}
	p := TileProof{Index: index, TreeSize: cp.size, Root: cp.root, Checkpoint: cp.envelope, Signed: cp.raw != nil}
	if p.Lower, p.Upper, err = l.proofs.verifiedTileInclusion(ctx, index, cp.size, leaf, cp.root); err != nil {
		return TileProof{}, false, fmt.Errorf("building inclusion proof for %d in tree of %d: %w", index, cp.size, err)
	}
	return p, true, nil
}

// upperProof returns the upper part of the inclusion proofs of the entries
// in the full level-0 tile of index in the tree of size, checked from
// tileRoot, that tile's root, to the tree's root.
func (c *proofCache) upperProof(ctx context.Context, index, size uint64, tileRoot, root []byte) (upperProof, error) {
	k := upperKey{size: size, index: index / layout.TileWidth}
	c.mu.Lock()
	up, ok := c.upper[k]
	c.mu.Unlock()
	if ok {
		return up, nil
	}
	hs, err := c.inclusion(ctx, index, size)
	if err != nil {
		return upperProof{}, err
	}
	if len(hs) < layout.TileHeight {
		return upperProof{}, fmt.Errorf("inclusion proof for %d in tree of %d has %d hashes, fewer than a full tile's height", index, size, len(hs))
	}
	hs = hs[layout.TileHeight:]
	coarse := (size + layout.TileWidth - 1) / layout.TileWidth
	if err := proof.VerifyInclusion(hasher, k.index, coarse, tileRoot, hs, root); err != nil {
		return upperProof{}, fmt.Errorf("inclusion proof for %d in tree of %d does not verify above its tile: %w", index, size, err)
	}
	buf := make([]byte, (1+len(hs))*hashSize)
	up = upperProof{tileRoot: buf[:hashSize:hashSize], hashes: make([][]byte, len(hs))}
	copy(buf, tileRoot)
	for i, h := range hs {
		b := buf[(1+i)*hashSize : (2+i)*hashSize : (2+i)*hashSize]
		copy(b, h)
		up.hashes[i] = b
	}
	c.mu.Lock()
	putBounded(c.upper, k, up, upperProofs)
	c.mu.Unlock()
	return up, nil
}

func (c *proofCache) consistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(first, second)
	if err != nil {
		return nil, fmt.Errorf("consistency proof node list: %w", err)
	}
	return c.hashes(ctx, second, nodes)
}

// leaf returns the leaf hash of entry index in the tree of size, from its
// level-0 tile (the same tile an inclusion proof for it starts in). It is
// shared, as node's hashes are.
func (c *proofCache) leaf(ctx context.Context, index, size uint64) ([]byte, error) {
	return c.node(ctx, size, compact.NodeID{Level: 0, Index: index})
}

// hashes returns the proof hashes for nodes in the tree of size, with the
// ephemeral node folded (as nodes.Rehash folds it). The hashes are shared
// with the cache, which never modifies them: callers may keep them but must
// not modify them. Proof reads are what the cache is for, and copying every
// hash out of it cost as much as finding them.
func (c *proofCache) hashes(ctx context.Context, size uint64, nodes proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, 0, len(nodes.IDs))
	ephem, begin, end := nodes.Ephem()
	for i := 0; i < len(nodes.IDs); i++ {
		if i == begin && end-begin > 1 {
			h, err := c.ephemeralNode(ctx, size, ephem, nodes.IDs[begin:end])
			if err != nil {
				return nil, err
			}
			hs = append(hs, h)
			i = end - 1
			continue
		}
		h, err := c.node(ctx, size, nodes.IDs[i])
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// ephemeralNode returns the hash of ephemeral node id of the tree of size,
// the fold of its right-border children ids, HashChildren(ids[n-1], ...
// HashChildren(ids[1], ids[0])), as proof.Nodes.Rehash computes it, but once
// per tree.
func (c *proofCache) ephemeralNode(ctx context.Context, size uint64, id compact.NodeID, ids []compact.NodeID) ([]byte, error) {
	k := ephemeralKey{size: size, id: id}
	c.mu.Lock()
	h, ok := c.ephemeral[k]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	h, err := c.node(ctx, size, ids[0])
	if err != nil {
		return nil, err
	}
	for _, id := range ids[1:] {
		left, err := c.node(ctx, size, id)
		if err != nil {
			return nil, err
		}
		h = hasher.HashChildren(left, h)
	}
	c.mu.Lock()
	putBounded(c.ephemeral, k, h, ephemeralNodes)
	c.mu.Unlock()
	return h, nil
}

// node returns the hash of a node of the tree of size, which must lie wholly
// within the tree (proof.Nodes.IDs only name such nodes). The slice is shared:
// callers must not modify it.
func (c *proofCache) node(ctx context.Context, size uint64, id compact.NodeID) ([]byte, error) {
	tl, ti, nl, ni := layout.NodeCoordsToTileAddress(uint64(id.Level), id.Index)
	k := tileKey{level: tl, index: ti, width: layout.PartialTileSize(tl, ti, size)}
	tn, err := c.tile(ctx, k)
	if err != nil {
		return nil, err
	}
	if row := tn.rows[nl]; (ni+1)*hashSize <= uint64(len(row)) {
		return row[ni*hashSize : (ni+1)*hashSize], nil
	}
	return nil, fmt.Errorf("node %d/%d is not in tile %d/%d of tree size %d", id.Level, id.Index, tl, ti, size)
}

// tile returns the nodes of tile k, reading and building them on a miss.
func (c *proofCache) tile(ctx context.Context, k tileKey) (*tileNodes, error) {
	c.mu.Lock()
	tn, ok := c.cur[k]
	if !ok {
		if tn, ok = c.old[k]; ok {
			c.putLocked(k, tn)
		}
	}
	c.mu.Unlock()
	if ok {
		return tn, nil
	}
	raw, err := c.fetch(ctx, k.level, k.index, k.width)
	if err != nil {
		return nil, err
	}
	if want := width(k.width) * hashSize; len(raw) != want {
		return nil, fmt.Errorf("tile %d/%d of width %d is %d bytes, want %d", k.level, k.index, width(k.width), len(raw), want)
	}
	tn = buildTile(raw)
	c.mu.Lock()
	c.putLocked(k, tn)
	c.mu.Unlock()
	return tn, nil
}

// putBounded puts v under k in m, emptying m first when it holds max
// entries: the caches that use it hold what readers ask for now, which
// refills quickly, and need no order kept to evict by.
func putBounded[K comparable, V any](m map[K]V, k K, v V, max int) {
	if len(m) >= max {
		clear(m)
	}
	m[k] = v
}

func (c *proofCache) putLocked(k tileKey, tn *tileNodes) {
	if len(c.cur) >= proofCacheTiles {
		c.old, c.cur = c.cur, make(map[tileKey]*tileNodes, proofCacheTiles)
	}
	c.cur[k] = tn
}

// width is the number of hashes in a tile of partial width w (0: full).
func width(w uint8) int {
	if w == 0 {
		return layout.TileWidth
	}
	return int(w)
}

// buildTile computes every node within a tile from its hashes, which it keeps
// (the caller must not modify them), with hashChildrenInto, since a full tile
// has 255 of them.
func buildTile(hashes []byte) *tileNodes {
	tn := &tileNodes{}
	tn.rows[0] = hashes
	for h := 1; h <= layout.TileHeight; h++ {
		below := tn.rows[h-1]
		row := make([]byte, len(below)/(2*hashSize)*hashSize)
		for i := 0; i < len(row); i += hashSize {
			hashChildrenInto(row[i:i+hashSize], below[2*i:2*i+hashSize], below[2*i+hashSize:2*i+2*hashSize])
		}
		tn.rows[h] = row
	}
	return tn
}

// hashChildrenInto writes the RFC 6962 section 2.1 interior node hash of left
// and right, SHA-256(0x01 || left || right), to dst: what
// rfc6962.Hasher.HashChildren computes, without its three allocations.
func hashChildrenInto(dst, left, right []byte) {
	var in [1 + 2*hashSize]byte
	in[0] = rfc6962.RFC6962NodeHashPrefix
	copy(in[1:], left)
	copy(in[1+hashSize:], right)
	sum := sha256.Sum256(in[:])
	copy(dst, sum[:])
}

// hasher is rfc6962.DefaultHasher with HashChildren through hashChildrenInto,
// for verifying and rehashing proofs (a few dozen nodes each).
var hasher = nodeHasher{rfc6962.DefaultHasher}

type nodeHasher struct{ *rfc6962.Hasher }

func (nodeHasher) HashChildren(left, right []byte) []byte {
	out := make([]byte, hashSize)
	hashChildrenInto(out, left, right)
	return out
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

// readTile reads a hash tile of width p (0: full) for the tree of a past or
// present size. Proofs to past sizes need narrow partial tiles that a driver
// may since have deleted; tiles.Read cuts them from a wider version.
func (l *Log) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return tiles.Read(ctx, l.reader, tiles.Resource{Kind: tiles.HashTile, Level: level, Index: index, Width: p})
}

// readBundle reads entry bundle index of width p as readTile reads tiles.
func (l *Log) readBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return tiles.Read(ctx, l.reader, tiles.Resource{Kind: tiles.EntryBundle, Index: index, Width: p})
}

// bundleViewer is implemented by storage that lends out a full entry bundle
// without copying it (storage/pebble's *Storage); readEntry then copies only
// the entry it wants.
type bundleViewer interface {
	ViewFull(ctx context.Context, res tiles.Resource, coding string, fn func(body, version []byte) error) error
}

// readEntry returns the leaf data of entry index in the tree of size.
func (l *Log) readEntry(ctx context.Context, index, size uint64) ([]byte, error) {
	bi := index / layout.EntryBundleWidth
	res := tiles.Resource{Kind: tiles.EntryBundle, Index: bi, Width: layout.PartialTileSize(0, bi, size)}
	if v, ok := l.reader.(bundleViewer); ok && !res.Partial() {
		var e []byte
		err := v.ViewFull(ctx, res, "", func(body, _ []byte) error {
			offs, err := l.entryOffsets.get(bi, body)
			if err != nil {
				return err
			}
			k := index % layout.EntryBundleWidth
			if k+1 >= uint64(len(offs)) {
				return fmt.Errorf("entry bundle %d holds %d entries, want entry %d", bi, len(offs)-1, k)
			}
			start, end := offs[k]+2, offs[k+1]
			// The offsets came from this bundle, which never changes, but a
			// list that does not fit the body must not cut a wrong entry.
			if end > uint32(len(body)) || start > end || binary.BigEndian.Uint16(body[start-2:]) != uint16(end-start) {
				return fmt.Errorf("entry bundle %d does not match its entry offsets", bi)
			}
			e = append([]byte(nil), body[start:end]...)
			return nil
		})
		if err == nil {
			return e, nil
		}
		// Whatever went wrong, the general path below reads it again and says what.
	}
	return tiles.ReadEntry(ctx, l.reader, index, size)
}

// offsetCache keeps tiles.BundleOffsets of the full entry bundles readEntry
// has read: finding an entry walks the lengths before it, a chain of reads
// across 125 KiB that cost a tenth of an entry read. It holds at most
// entryOffsetBundles lists of 257 offsets (about 1 KiB each, 4 MiB in all)
// and is emptied when full.
type offsetCache struct {
	mu sync.Mutex
	m  map[uint64][]uint32
}

// entryOffsetBundles covers the bundles of a million entries.
const entryOffsetBundles = 4096

// get returns the entry offsets of full bundle index, whose body is body.
func (c *offsetCache) get(index uint64, body []byte) ([]uint32, error) {
	c.mu.Lock()
	offs, ok := c.m[index]
	c.mu.Unlock()
	if ok {
		return offs, nil
	}
	offs, err := tiles.BundleOffsets(body)
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", index, err)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[uint64][]uint32)
	}
	putBounded(c.m, index, offs, entryOffsetBundles)
	c.mu.Unlock()
	return offs, nil
}
