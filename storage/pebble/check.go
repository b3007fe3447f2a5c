package pebble

// Check: an offline audit of a log database, the check an operator runs on a stopped log or a
// backup (quire verify) without trusting the process that wrote it. It recomputes the tree from
// the entries and compares everything stored against it, reading tiles and bundles the way the
// log serves them (ReadTile, ReadEntryBundle), so it checks what clients get.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"

	pdb "github.com/cockroachdb/pebble/v2"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/tiles"
	"github.com/quirelog/quire/storage/setsum"
)

// Fault is what Check found wrong first, and where: a resource ("entry bundle 12", "tile 1/3",
// "entry 3100") or a stored record ("checkpoint history, size 512", "dedup key <hex>").
type Fault struct {
	Where string
	What  string
}

func (f *Fault) Error() string { return f.Where + ": " + f.What }

func fault(where, format string, args ...any) *Fault {
	return &Fault{Where: where, What: fmt.Sprintf(format, args...)}
}

// CheckOptions configures Check. Verifier is required.
type CheckOptions struct {
	// Verifier is the log's checkpoint key; its name is the origin.
	Verifier note.Verifier
	// Entry, if set, is called with every entry in index order, after the storage's own checks
	// of it; an error it returns becomes the Fault of that entry. Package log's index check uses
	// it, so that what an entry is (its kind, its search keys) stays out of storage.
	Entry func(index uint64, data []byte) error
	// Progress, if set, is called after every entry bundle with the entries checked and the total.
	Progress func(done, total uint64)
}

// CheckReport says what a Check covered.
type CheckReport struct {
	// Size is the integrated tree's size; CheckpointSize the latest published checkpoint's.
	Size, CheckpointSize uint64
	// Bundles and Tiles are the entry bundles and hash tiles compared.
	Bundles, Tiles int
	// History is the number of past checkpoints checked against the tree.
	History int
	// DedupKeys is the number of dedup records checked; 0 for a log written without dedup.
	DedupKeys int
}

// target is a tree head stored somewhere (a checkpoint, the tree state) that the recomputed tree
// must match at its size.
type target struct {
	size  uint64
	root  []byte
	where string
}

// Check recomputes the log from its entries and compares with it, stopping at the first fault (a
// *Fault; other errors are failures to read): every entry bundle (width, parse), every hash tile
// (full and the right-edge partials), the stored tree state, the latest checkpoint (signature,
// origin, root) and every checkpoint in the history (each a prefix of the same tree, so all are
// consistent with the latest), and the dedup records (each entry's identity names it, or an
// earlier copy of it; and no record names an entry that does not carry it: two setsum digests
// compared, and each record looked up only when they differ). Open the Storage with ReadOnly;
// Check does not write.
func (s *Storage) Check(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	if o.Verifier == nil {
		return nil, errors.New("checking the log: no checkpoint verifier")
	}
	st, err := s.readTreeState()
	if err != nil {
		return nil, &Fault{Where: "tree state", What: err.Error()}
	}
	rep := &CheckReport{Size: st.size}
	targets, err := s.checkpointTargets(ctx, o.Verifier, st, rep)
	if err != nil {
		return nil, err
	}
	c := &checker{s: s, o: o, rep: rep, rng: (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)}
	if err := c.sumDedup(ctx); err != nil {
		return nil, err
	}
	c.visit = c.visitNode
	for len(targets) > 0 && targets[0].size == 0 {
		if !bytes.Equal(targets[0].root, rfc6962.DefaultHasher.EmptyRoot()) {
			return nil, fault(targets[0].where, "root %x is not the empty tree's", targets[0].root)
		}
		targets = targets[1:]
	}
	for r := range layout.Range(0, st.size, st.size) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if targets, err = c.bundle(ctx, r, targets); err != nil {
			return nil, err
		}
		if o.Progress != nil {
			o.Progress(c.size, st.size)
		}
	}
	if err := c.finish(ctx, st); err != nil {
		return nil, err
	}
	return rep, nil
}

// checkpointTargets reads and verifies the latest checkpoint and the history, and returns them
// with the tree state as the tree heads to meet, by size.
func (s *Storage) checkpointTargets(ctx context.Context, v note.Verifier, st treeState, rep *CheckReport) ([]target, error) {
	var out []target
	it, err := s.db.NewIterWithContext(ctx, &pdb.IterOptions{LowerBound: []byte{keyHistory}, UpperBound: []byte{keyHistory + 1}})
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint history: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			_ = it.Close()
			return nil, fault(fmt.Sprintf("checkpoint history key %x", k), "is %d bytes, want 9", len(k))
		}
		size := binary.BigEndian.Uint64(k[1:])
		where := fmt.Sprintf("checkpoint history, size %d", size)
		cp, err := openCheckpoint(v, it.Value())
		if err != nil {
			_ = it.Close()
			return nil, fault(where, "%v", err)
		}
		if cp.Size != size {
			_ = it.Close()
			return nil, fault(where, "the checkpoint filed there has size %d", cp.Size)
		}
		if size > st.size {
			_ = it.Close()
			return nil, fault(where, "beyond the tree's %d entries", st.size)
		}
		out = append(out, target{size: size, root: cp.Hash, where: where})
		rep.History++
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading checkpoint history: %w", err)
	}
	raw, err := s.get([]byte{keyCheckpoint})
	switch {
	case errors.Is(err, os.ErrNotExist) && st.size == 0:
	case errors.Is(err, os.ErrNotExist):
		return nil, fault("latest checkpoint", "none stored, though the tree has %d entries", st.size)
	case err != nil:
		return nil, err
	default:
		_, size, note, err := decodePublished(raw)
		if err != nil {
			return nil, fault("latest checkpoint", "%v", err)
		}
		cp, err := openCheckpoint(v, note)
		if err != nil {
			return nil, fault("latest checkpoint", "%v", err)
		}
		if cp.Size != size || cp.Size > st.size {
			return nil, fault("latest checkpoint", "size %d, recorded as %d, with %d entries in the tree", cp.Size, size, st.size)
		}
		rep.CheckpointSize = cp.Size
		out = append(out, target{size: cp.Size, root: cp.Hash, where: "latest checkpoint"})
	}
	out = append(out, target{size: st.size, root: st.root, where: "tree state"})
	slices.SortStableFunc(out, func(a, b target) int { return cmp.Compare(a.size, b.size) })
	return out, nil
}

func openCheckpoint(v note.Verifier, raw []byte) (*flog.Checkpoint, error) {
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	if cp.Origin != v.Name() {
		return nil, fmt.Errorf("origin %q is not the log's %q", cp.Origin, v.Name())
	}
	return &cp, nil
}

// countKeys counts the keys starting with prefix.
func (s *Storage) countKeys(ctx context.Context, prefix byte) (int, error) {
	it, err := s.db.NewIterWithContext(ctx, &pdb.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return 0, fmt.Errorf("counting %q keys: %w", prefix, err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("counting %q keys: %w", prefix, err)
	}
	return n, nil
}

// checker is one Check's state while it walks the entries.
type checker struct {
	s   *Storage
	o   CheckOptions
	rep *CheckReport

	rng   *compact.Range
	visit compact.VisitFn
	size  uint64
	// tiles are the right-edge tiles being rebuilt, per tile level.
	tiles    [][]byte
	tileIdx  []uint64
	tileErr  error
	ownDedup int
	key      []byte
	// storedDedup digests the dedup records, entryDedup the record each entry should have: in a
	// log written with dedup on throughout, the same multiset.
	storedDedup, entryDedup setsum.Sum
}

// eachDedup calls fn with every dedup record, the legacy ones first, then by generation and
// identity: the identity, and the stored index both raw and decoded. A malformed record, or one
// filed under a generation its index does not belong to, is a fault.
func (c *checker) eachDedup(ctx context.Context, fn func(identity, raw []byte, idx uint64) error) error {
	for _, prefix := range []byte{keyDedupV1, keyDedup} {
		if err := c.eachDedupOf(ctx, prefix, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) eachDedupOf(ctx context.Context, prefix byte, fn func(identity, raw []byte, idx uint64) error) error {
	it, err := c.s.db.NewIterWithContext(ctx, &pdb.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return fmt.Errorf("reading dedup keys: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 1+hashSize || (prefix == keyDedup && len(k) != dedupKeyHead+hashSize) {
			return fault(fmt.Sprintf("dedup key %x", k), "is %d bytes", len(k))
		}
		where := fmt.Sprintf("dedup key %x", dedupIdentity(k))
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("reading dedup keys: %w", err)
		}
		if len(v) != 8 {
			return fault(where, "value is %d bytes, want 8", len(v))
		}
		idx := binary.BigEndian.Uint64(v)
		if gen := binary.BigEndian.Uint32(k[1:]); prefix == keyDedup && uint64(gen) != idx>>c.s.genBits {
			return fault(where, "names entry %d, which belongs to generation %d, not %d", idx, idx>>c.s.genBits, gen)
		}
		if err := fn(dedupIdentity(k), v, idx); err != nil {
			return err
		}
	}
	return nil
}

// sumDedup digests the stored dedup records in one sequential pass.
func (c *checker) sumDedup(ctx context.Context) error {
	err := c.eachDedup(ctx, func(identity, raw []byte, _ uint64) error {
		c.storedDedup.Add(identity, raw)
		return nil
	})
	if err != nil {
		return err
	}
	c.rep.DedupKeys = int(c.storedDedup.Count())
	return nil
}

// visitNode rebuilds the tiles above level 0 from the nodes the compact range completes, as the
// sequencer stores them, and compares each once it is full. Level 0 holds the leaf hashes, which
// bundle compares entry by entry.
func (c *checker) visitNode(id compact.NodeID, hash []byte) {
	if id.Level == 0 || id.Level%layout.TileHeight != 0 || c.tileErr != nil {
		return
	}
	level := int(id.Level / layout.TileHeight)
	for len(c.tiles) <= level {
		c.tiles = append(c.tiles, make([]byte, 0, layout.TileWidth*hashSize))
		c.tileIdx = append(c.tileIdx, 0)
	}
	c.tiles[level] = append(c.tiles[level], hash...)
	if len(c.tiles[level]) == layout.TileWidth*hashSize {
		c.tileErr = c.compareTile(context.Background(), uint64(level), c.tileIdx[level], c.tiles[level], 0)
		c.tiles[level] = c.tiles[level][:0]
		c.tileIdx[level]++
	}
}

func tileName(level, index uint64, p uint8) string {
	if p > 0 {
		return fmt.Sprintf("tile %d/%d.p/%d", level, index, p)
	}
	return fmt.Sprintf("tile %d/%d", level, index)
}

// leafMismatch names the culprit when entry k of bundle r hashes to computed but its level-0
// tile records stored: the tile, or the bundle when the tile agrees with the level above it,
// which was hashed from the entries as they were written.
func (c *checker) leafMismatch(ctx context.Context, r layout.RangeInfo, k int, stored, computed, leaves []byte) error {
	i := r.Index*layout.EntryBundleWidth + uint64(k)
	tile := tileName(0, r.Index, r.Partial)
	if r.Partial == 0 {
		rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
		for j := 0; j < len(leaves); j += hashSize {
			if err := rng.Append(leaves[j:j+hashSize], nil); err != nil {
				return err
			}
		}
		tileRoot, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		above, err := c.s.ReadTile(ctx, 1, r.Index/layout.TileWidth, layout.PartialTileSize(1, r.Index/layout.TileWidth, c.rep.Size))
		pos := int(r.Index%layout.TileWidth) * hashSize
		if err == nil && len(above) >= pos+hashSize && bytes.Equal(above[pos:pos+hashSize], tileRoot) {
			return fault(fmt.Sprintf("entry bundle %d", r.Index), "entry %d hashes to leaf %x, but %s, which agrees with the level above, records %x", i, computed, tile, stored)
		}
	}
	return fault(tile, "hash %d is %x, but entry %d in entry bundle %d hashes to %x", k, stored, i, r.Index, computed)
}

func (c *checker) compareTile(ctx context.Context, level, index uint64, want []byte, p uint8) error {
	where := tileName(level, index, p)
	got, err := c.s.ReadTile(ctx, level, index, p)
	if err != nil {
		return fault(where, "%v", err)
	}
	c.rep.Tiles++
	if bytes.Equal(got, want) {
		return nil
	}
	if len(got) != len(want) {
		return fault(where, "%d bytes, want %d", len(got), len(want))
	}
	for i := 0; i < len(want); i += hashSize {
		if !bytes.Equal(got[i:i+hashSize], want[i:i+hashSize]) {
			return fault(where, "hash %d is %x, the entries give %x", i/hashSize, got[i:i+hashSize], want[i:i+hashSize])
		}
	}
	return nil
}

// bundle checks the entries of one bundle, meeting the targets their sizes reach.
func (c *checker) bundle(ctx context.Context, r layout.RangeInfo, targets []target) ([]target, error) {
	where := fmt.Sprintf("entry bundle %d", r.Index)
	raw, err := c.s.ReadEntryBundle(ctx, r.Index, r.Partial)
	if err != nil {
		return nil, fault(where, "%v", err)
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fault(where, "%v", err)
	}
	if uint(len(b.Entries)) != r.N {
		return nil, fault(where, "%d entries, want %d", len(b.Entries), r.N)
	}
	c.rep.Bundles++
	leaves, err := c.s.ReadTile(ctx, 0, r.Index, r.Partial)
	if err != nil {
		return nil, fault(tileName(0, r.Index, r.Partial), "%v", err)
	}
	if len(leaves) != len(b.Entries)*hashSize {
		return nil, fault(tileName(0, r.Index, r.Partial), "%d bytes for %d entries", len(leaves), len(b.Entries))
	}
	c.rep.Tiles++
	for k, data := range b.Entries {
		i := c.size
		e := tessera.NewEntry(data)
		if stored := leaves[k*hashSize : (k+1)*hashSize]; !bytes.Equal(stored, e.LeafHash()) {
			return nil, c.leafMismatch(ctx, r, k, stored, e.LeafHash(), leaves)
		}
		if err := c.rng.Append(e.LeafHash(), c.visit); err != nil {
			return nil, fmt.Errorf("adding entry %d to the tree: %w", i, err)
		}
		if c.tileErr != nil {
			return nil, c.tileErr
		}
		c.size++
		c.entryDedup.Add(e.Identity(), binary.BigEndian.AppendUint64(c.key[:0], i))
		if c.o.Entry != nil {
			if err := c.o.Entry(i, data); err != nil {
				return nil, fault(fmt.Sprintf("entry %d", i), "%v", err)
			}
		}
		for len(targets) > 0 && targets[0].size == c.size {
			root, err := c.rng.GetRootHash(nil)
			if err != nil {
				return nil, fmt.Errorf("computing the root at size %d: %w", c.size, err)
			}
			if !bytes.Equal(root, targets[0].root) {
				return nil, fault(targets[0].where, "root %x at size %d, but the entries give %x", targets[0].root, c.size, root)
			}
			targets = targets[1:]
		}
	}
	return targets, nil
}

// dedup checks that entry i's identity has a dedup record naming i, or an earlier entry with the
// same identity (a copy logged while dedup was off).
func (c *checker) dedup(ctx context.Context, i uint64, identity []byte) error {
	stored := []int64{0}
	err := c.s.lookupSorted([][]byte{identity}, stored, c.rep.Size)
	idx := uint64(stored[0])
	where := fmt.Sprintf("dedup key %x", identity)
	switch {
	case err != nil:
		return fault(where, "%v", err)
	case stored[0] < 0:
		return fault(fmt.Sprintf("entry %d", i), "no dedup key for its identity %x, though the log has %d (was it written with dedup off?)", identity, c.rep.DedupKeys)
	case idx == i:
		c.ownDedup++
		return nil
	case idx > i:
		return fault(where, "names entry %d, but entry %d carries that identity first", idx, i)
	}
	other, err := c.identityAt(ctx, idx)
	if err != nil {
		return err
	}
	if !bytes.Equal(other, identity) {
		return fault(where, "names entry %d, which does not carry it (entry %d does)", idx, i)
	}
	return nil
}

// identityAt reads entry i's dedup identity.
func (c *checker) identityAt(ctx context.Context, i uint64) ([]byte, error) {
	data, err := c.s.Entry(ctx, i)
	if err != nil {
		return nil, fault(fmt.Sprintf("entry bundle %d", i/layout.EntryBundleWidth), "%v", err)
	}
	return tessera.NewEntry(data).Identity(), nil
}

// Entry reads the data of entry i of the integrated tree, from its entry bundle.
func (s *Storage) Entry(ctx context.Context, i uint64) ([]byte, error) {
	size := s.tree.Load().size
	if i >= size {
		return nil, fmt.Errorf("entry %d is beyond the tree's %d entries: %w", i, size, os.ErrNotExist)
	}
	return tiles.ReadEntry(ctx, s, i, size)
}

// finish compares what is left once every entry has been seen: the right-edge partial tiles,
// the tree state's compact range, the number of stored tiles and bundles, and dedup records that
// no entry accounted for.
func (c *checker) finish(ctx context.Context, st treeState) error {
	for level, t := range c.tiles {
		if len(t) == 0 {
			continue
		}
		if err := c.compareTile(ctx, uint64(level), c.tileIdx[level], t, uint8(len(t)/hashSize)); err != nil {
			return err
		}
	}
	hashes := c.rng.Hashes()
	if len(hashes) != len(st.hashes) {
		return fault("tree state", "%d compact range hashes, the entries give %d", len(st.hashes), len(hashes))
	}
	for i := range hashes {
		if !bytes.Equal(hashes[i], st.hashes[i]) {
			return fault("tree state", "compact range hash %d is %x, the entries give %x", i, st.hashes[i], hashes[i])
		}
	}
	if n, err := c.s.countKeys(ctx, keyTile); err != nil {
		return err
	} else if n != c.rep.Tiles {
		return fault("hash tiles", "%d stored, the tree has %d", n, c.rep.Tiles)
	}
	if n, err := c.s.countKeys(ctx, keyBundle); err != nil {
		return err
	} else if n != c.rep.Bundles {
		return fault("entry bundles", "%d stored, the tree has %d", n, c.rep.Bundles)
	}
	if c.rep.DedupKeys == 0 || c.storedDedup.Equal(&c.entryDedup) {
		return nil
	}
	return c.findDedupFault(ctx)
}

// findDedupFault looks up every entry's dedup record, then walks the records, to name what made
// the digests differ. Entries logged again while dedup was off make them differ too, and pass.
func (c *checker) findDedupFault(ctx context.Context) error {
	for r := range layout.Range(0, c.rep.Size, c.rep.Size) {
		raw, err := c.s.ReadEntryBundle(ctx, r.Index, r.Partial)
		if err != nil {
			return fault(fmt.Sprintf("entry bundle %d", r.Index), "%v", err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fault(fmt.Sprintf("entry bundle %d", r.Index), "%v", err)
		}
		for k, data := range b.Entries {
			if err := c.dedup(ctx, r.Index*layout.EntryBundleWidth+uint64(k), tessera.NewEntry(data).Identity()); err != nil {
				return err
			}
		}
	}
	if c.ownDedup == c.rep.DedupKeys {
		return nil
	}
	return c.strayDedup(ctx)
}

// strayDedup finds the dedup record that names no entry carrying its identity. Every entry's own
// record was found, so there is one more record than entries: a walk over them names it.
func (c *checker) strayDedup(ctx context.Context) error {
	err := c.eachDedup(ctx, func(identity, _ []byte, idx uint64) error {
		where := fmt.Sprintf("dedup key %x", identity)
		if idx >= c.rep.Size {
			return fault(where, "names entry %d, beyond the log's %d entries", idx, c.rep.Size)
		}
		got, err := c.identityAt(ctx, idx)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, identity) {
			return fault(where, "names entry %d, which does not carry it", idx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fault("dedup keys", "%d stored, %d entries have their own", c.rep.DedupKeys, c.ownDedup)
}
