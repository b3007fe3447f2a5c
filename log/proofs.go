package log

import (
	"context"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"

	"github.com/quirelog/quire/api/tiles"
)

// proofCacheSizes is how many tree sizes keep their computed nodes. Writes
// ask for proofs to the newest checkpoint or two; a few more absorb readers.
const proofCacheSizes = 8

// maxTilesPerTree bounds the tiles one tree size keeps (each about 30 KiB
// with its computed nodes). Writes touch only the right edge, but readers
// asking for proofs all over a large tree could otherwise pull in all of it.
const maxTilesPerTree = 256

// proofCache builds RFC 6962 proofs from tlog-tiles hash tiles, keeping, per
// recent tree size, every node it has computed. Tessera's client.ProofBuilder
// does the same job but recomputes a subtree root from up to 128 tile hashes
// on every node lookup, which on the write path cost more than checking the
// request's signature (BenchmarkInclusionProof, tree of 20,000: about 230 µs
// per proof from a warm ProofBuilder against about 6 µs here); here each
// tile's internal nodes are hashed once per tree size and thousands of writes
// answered from one checkpoint share them. The node lists and ephemeral-node
// rehashing are transparency-dev/merkle's (proof.Inclusion,
// proof.Consistency, Nodes.Rehash), and tests check the proofs against
// client.ProofBuilder.
type proofCache struct {
	fetch client.TileFetcherFunc

	mu    sync.Mutex
	trees []*treeNodes // oldest first
}

// treeNodes holds the computed nodes of the tree of one size.
type treeNodes struct {
	size  uint64
	fetch client.TileFetcherFunc

	mu    sync.Mutex // guards tiles; held while a tile is fetched
	tiles map[tileKey]*tileNodes
}

type tileKey struct{ level, index uint64 }

// tileNodes are the nodes of one tile by height within it: rows[0] are the
// tile's hashes, rows[k][i] the parent of rows[k-1][2i] and rows[k-1][2i+1].
type tileNodes struct {
	rows [layout.TileHeight + 1][][]byte
}

func newProofCache(f client.TileFetcherFunc) *proofCache {
	return &proofCache{fetch: f}
}

func (c *proofCache) tree(size uint64) *treeNodes {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.trees {
		if t.size == size {
			return t
		}
	}
	t := &treeNodes{size: size, fetch: c.fetch, tiles: make(map[tileKey]*tileNodes)}
	if len(c.trees) >= proofCacheSizes {
		c.trees = append(c.trees[:0], c.trees[1:]...)
	}
	c.trees = append(c.trees, t)
	return t
}

func (c *proofCache) inclusion(ctx context.Context, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof node list: %w", err)
	}
	return c.tree(size).hashes(ctx, nodes)
}

func (c *proofCache) consistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(first, second)
	if err != nil {
		return nil, fmt.Errorf("consistency proof node list: %w", err)
	}
	return c.tree(second).hashes(ctx, nodes)
}

// hashes returns the proof hashes for nodes, folding the ephemeral node.
func (t *treeNodes) hashes(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	t.mu.Lock()
	for i, id := range nodes.IDs {
		h, err := t.node(ctx, id)
		if err != nil {
			t.mu.Unlock()
			return nil, err
		}
		hs[i] = h
	}
	t.mu.Unlock()
	out, err := nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("rehashing proof: %w", err)
	}
	return out, nil
}

// node returns the hash of a node of the tree, which must lie wholly within
// the tree (proof.Nodes.IDs only name such nodes). t.mu must be held.
func (t *treeNodes) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	tl, ti, nl, ni := layout.NodeCoordsToTileAddress(uint64(id.Level), id.Index)
	k := tileKey{tl, ti}
	tn, ok := t.tiles[k]
	if !ok {
		raw, err := t.fetch(ctx, tl, ti, layout.PartialTileSize(tl, ti, t.size))
		if err != nil {
			return nil, err
		}
		var ht api.HashTile
		if err := ht.UnmarshalText(raw); err != nil {
			return nil, fmt.Errorf("parsing tile %d/%d: %w", tl, ti, err)
		}
		tn = &tileNodes{}
		tn.rows[0] = ht.Nodes
		for h := 1; h <= layout.TileHeight; h++ {
			below := tn.rows[h-1]
			row := make([][]byte, len(below)/2)
			for i := range row {
				row[i] = rfc6962.DefaultHasher.HashChildren(below[2*i], below[2*i+1])
			}
			tn.rows[h] = row
		}
		if len(t.tiles) >= maxTilesPerTree {
			clear(t.tiles)
		}
		t.tiles[k] = tn
	}
	if row := tn.rows[nl]; ni < uint64(len(row)) {
		return row[ni], nil
	}
	return nil, fmt.Errorf("node %d/%d is not in tile %d/%d of tree size %d", id.Level, id.Index, tl, ti, t.size)
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

// readEntry returns the leaf data of entry index in the tree of size.
func (l *Log) readEntry(ctx context.Context, index, size uint64) ([]byte, error) {
	return tiles.ReadEntry(ctx, l.reader, index, size)
}
