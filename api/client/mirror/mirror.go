// Package mirror copies a C2SP tlog-tiles log into a directory laid out exactly as tlog-tiles serves
// it (checkpoint, tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>]), so that the directory served by
// any static file server is a read replica.
//
// A mirror run verifies everything it keeps: the checkpoint's signature; every entry bundle against
// its level-0 tile (RFC 6962 leaf hashes); every higher tile against the nodes recomputed from the
// level-0 hashes with a compact range; the root against the checkpoint; and, when catching up, that
// the previously mirrored checkpoint is a prefix of the new tree. Files are written via a temporary
// file and a rename, so an interrupted run leaves only whole files; full tiles never change, and a
// partial tile is immutable under its .p/<W> name, so a rerun reuses every file already present and
// downloads only the rest. The checkpoint is written last, and obsolete partial tiles are removed
// only after it, so DIR always serves a consistent log.
package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/quirelog/quire/api/client/atomicfile"
	"github.com/quirelog/quire/api/tiles"
)

// DefaultParallel is the number of concurrent fetches when Config.Parallel is zero.
const DefaultParallel = 8

// tmpDir holds files being written; it is inside Dir so that the final rename stays on one filesystem.
const tmpDir = ".quire-mirror-tmp"

// Config configures a mirror run.
type Config struct {
	// Fetcher reads the source log. Required.
	Fetcher tiles.Fetcher
	// LogVerifier verifies the source's checkpoint; its name is the log origin. Required.
	LogVerifier note.Verifier
	// Dir is the mirror's root directory. Required.
	Dir string
	// Parallel is the number of concurrent fetches (DefaultParallel if zero).
	Parallel uint
	// Progress, if set, is called about once a second and once at the end.
	Progress func(Progress)
}

// Progress is a snapshot of a running mirror.
type Progress struct {
	// Entries of Total have been verified (read from disk or downloaded).
	Entries, Total uint64
	// Fetched is how many tiles and bundles were downloaded, Reused how many were already on disk.
	Fetched, Reused uint64
	Bytes           uint64
	Elapsed         time.Duration
	Done            bool
}

// Result summarises a finished run.
type Result struct {
	// OldSize is the size of the mirrored checkpoint before the run (0 if none), Size after it.
	OldSize, Size uint64
	Progress
}

// ErrInconsistent is returned (wrapped) when the source's tree is not an extension of the tree
// already mirrored.
var ErrInconsistent = errors.New("source log is inconsistent with the mirrored checkpoint")

type run struct {
	cfg    Config
	size   uint64
	start  time.Time
	done   atomic.Uint64
	fetch  atomic.Uint64
	reused atomic.Uint64
	bytes  atomic.Uint64
}

// Mirror brings cfg.Dir up to date with the source log, verifying all of it.
func Mirror(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Fetcher == nil || cfg.LogVerifier == nil || cfg.Dir == "" {
		return nil, errors.New("mirror: Fetcher, LogVerifier and Dir are required")
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = DefaultParallel
	}
	v := cfg.LogVerifier
	cpRaw, err := cfg.Fetcher.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching checkpoint: %w", err)
	}
	cp, _, _, err := flog.ParseCheckpoint(cpRaw, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("verifying checkpoint: %w", err)
	}
	var old *flog.Checkpoint
	if raw, err := os.ReadFile(filepath.Join(cfg.Dir, layout.CheckpointPath)); err == nil {
		if old, _, _, err = flog.ParseCheckpoint(raw, v.Name(), v); err != nil {
			return nil, fmt.Errorf("verifying the mirrored checkpoint: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the mirrored checkpoint: %w", err)
	}
	res := &Result{Size: cp.Size}
	if old != nil {
		res.OldSize = old.Size
		switch {
		case old.Size == cp.Size && !bytes.Equal(old.Hash, cp.Hash):
			return nil, fmt.Errorf("size %d: mirrored root %x, source root %x: %w", cp.Size, old.Hash, cp.Hash, ErrInconsistent)
		case old.Size >= cp.Size:
			// The source is not ahead of us (perhaps a stale cache): nothing to do, and never go backwards.
			res.Size = old.Size
			res.Done = true
			return res, nil
		}
	}
	if err := os.RemoveAll(filepath.Join(cfg.Dir, tmpDir)); err != nil {
		return nil, fmt.Errorf("clearing temp dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("creating temp dir: %w", err)
	}

	r := &run{cfg: cfg, size: cp.Size, start: time.Now()}
	stopProgress := r.reportProgress()
	err = r.mirrorTree(ctx, cp, old)
	stopProgress()
	res.Progress = r.snapshot(false)
	if err != nil {
		return res, err
	}
	// Everything the checkpoint commits to must be durable before the checkpoint is.
	if err := syncDir(cfg.Dir); err != nil {
		return res, err
	}
	if err := writeAtomic(cfg.Dir, layout.CheckpointPath, cpRaw); err != nil {
		return res, fmt.Errorf("writing checkpoint: %w", err)
	}
	if err := syncDir(cfg.Dir); err != nil {
		return res, err
	}
	oldSize := uint64(0)
	if old != nil {
		oldSize = old.Size
	}
	if err := r.removeObsoletePartials(oldSize); err != nil {
		return res, err
	}
	if err := os.RemoveAll(filepath.Join(cfg.Dir, tmpDir)); err != nil {
		return res, fmt.Errorf("removing temp dir: %w", err)
	}
	res.Progress = r.snapshot(true)
	if cfg.Progress != nil {
		cfg.Progress(res.Progress)
	}
	return res, nil
}

func (r *run) snapshot(done bool) Progress {
	return Progress{
		Entries: r.done.Load(), Total: r.size,
		Fetched: r.fetch.Load(), Reused: r.reused.Load(), Bytes: r.bytes.Load(),
		Elapsed: time.Since(r.start), Done: done,
	}
}

func (r *run) reportProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				r.cfg.Progress(r.snapshot(false))
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// mirrorTree fetches and checks every bundle and tile for cp, and old's root on the way.
func (r *run) mirrorTree(ctx context.Context, cp *flog.Checkpoint, old *flog.Checkpoint) error {
	// Tiles above level 0 are checked against the nodes recomputed from the leaves as soon as each
	// is complete, so only one unfinished tile per level is held: memory stays bounded.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(r.cfg.Parallel))
	err := r.walkLeaves(gctx, g, cp, old)
	if werr := g.Wait(); werr != nil {
		return werr
	}
	return err
}

// walkLeaves reads level 0 in order, recomputing the tree; it hands each finished higher tile to g
// to check, then checks the root and the partial tiles at the right edge.
func (r *run) walkLeaves(ctx context.Context, g *errgroup.Group, cp, old *flog.Checkpoint) error {
	// unfinished[l] holds the level-l nodes (l a multiple of 8 above 0) of the level l/8 tile not
	// yet complete; done[l] counts the complete tiles of that level.
	unfinished := map[uint][][]byte{}
	done := map[uint]uint64{}
	checkTile := func(level uint, idx uint64, nodes [][]byte) {
		want := bytes.Join(nodes, nil)
		g.Go(func() error { return r.upperTile(ctx, uint64(level/8), idx, want) })
	}
	visit := func(id compact.NodeID, h []byte) {
		if id.Level == 0 || id.Level%8 != 0 {
			return
		}
		unfinished[id.Level] = append(unfinished[id.Level], h)
		if len(unfinished[id.Level]) == layout.TileWidth {
			checkTile(id.Level, done[id.Level], unfinished[id.Level])
			unfinished[id.Level] = nil
			done[id.Level]++
		}
	}
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	checkOld := func() error {
		if old == nil || rng.End() != old.Size {
			return nil
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return fmt.Errorf("hashing the tree at the mirrored size %d: %w", old.Size, err)
		}
		if !bytes.Equal(root, old.Hash) {
			return fmt.Errorf("size %d: mirrored root %x, source tree gives %x: %w", old.Size, old.Hash, root, ErrInconsistent)
		}
		return nil
	}

	bundles := (cp.Size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	for hs, err := range r.levelZeroInOrder(ctx, bundles) {
		if err != nil {
			return err
		}
		// Leaves are appended one at a time so that the mirrored size, which may fall inside a
		// bundle, is seen on the way.
		for _, h := range hs {
			if err := rng.Append(h, visit); err != nil {
				return fmt.Errorf("appending leaf %d: %w", rng.End(), err)
			}
			if err := checkOld(); err != nil {
				return err
			}
		}
		r.done.Add(uint64(len(hs)))
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("hashing the tree: %w", err)
	}
	if rng.End() == 0 {
		// RFC 6962 §2.1: the empty tree hashes to SHA-256(""), where a compact range gives nil.
		root = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !bytes.Equal(root, cp.Hash) {
		return fmt.Errorf("entries hash to root %x at size %d, the checkpoint says %x", root, cp.Size, cp.Hash)
	}
	for level := uint(8); cp.Size>>level > 0; level += 8 {
		if got, want := done[level]*layout.TileWidth+uint64(len(unfinished[level])), cp.Size>>level; got != want {
			return fmt.Errorf("recomputed %d nodes at level %d, want %d", got, level, want)
		}
		if len(unfinished[level]) > 0 {
			checkTile(level, done[level], unfinished[level])
		}
	}
	return nil
}

// levelZeroInOrder runs levelZero for bundles 0..n-1 with cfg.Parallel workers and yields the
// leaf hashes in index order. At most lookahead bundles are held, so memory stays bounded however
// big the log is; the first error stops it.
func (r *run) levelZeroInOrder(ctx context.Context, n uint64) iter.Seq2[[][]byte, error] {
	type result struct {
		hashes [][]byte
		err    error
	}
	return func(yield func([][]byte, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		lookahead := int(r.cfg.Parallel) * 4
		pending := make(chan chan result, lookahead)
		workers := make(chan struct{}, r.cfg.Parallel)
		var wg sync.WaitGroup
		defer wg.Wait()
		go func() {
			defer close(pending)
			for idx := range n {
				ch := make(chan result, 1)
				select {
				case pending <- ch:
				case <-ctx.Done():
					return
				}
				select {
				case workers <- struct{}{}:
				case <-ctx.Done():
					ch <- result{err: ctx.Err()}
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-workers }()
					hs, err := r.levelZero(ctx, idx)
					ch <- result{hs, err}
				}()
			}
		}()
		for ch := range pending {
			res := <-ch
			if !yield(res.hashes, res.err) || res.err != nil {
				cancel()
				for range pending {
				}
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(nil, err)
		}
	}
}

// levelZero gets entry bundle idx and level-0 tile idx, checks that the tile holds the bundle's leaf
// hashes, and returns them.
func (r *run) levelZero(ctx context.Context, idx uint64) ([][]byte, error) {
	p := layout.PartialTileSize(0, idx, r.size)
	width := int(p)
	if p == 0 {
		width = layout.EntryBundleWidth
	}
	bundlePath, tilePath := layout.EntriesPath(idx, p), layout.TilePath(0, idx, p)
	for refetch := false; ; refetch = true {
		bundle, bundleReused, err := r.get(ctx, bundlePath, refetch, func(ctx context.Context) ([]byte, error) {
			return r.cfg.Fetcher.ReadEntryBundle(ctx, idx, p)
		}, func(b []byte) ([]byte, error) { return tiles.TrimBundle(b, p) })
		if err != nil {
			return nil, err
		}
		tile, tileReused, err := r.get(ctx, tilePath, refetch, func(ctx context.Context) ([]byte, error) {
			return r.cfg.Fetcher.ReadTile(ctx, 0, idx, p)
		}, func(b []byte) ([]byte, error) { return tiles.TrimTile(b, p) })
		if err != nil {
			return nil, err
		}
		hashes, err := leafHashesMatching(idx, bundle, tile, width)
		if err == nil || refetch || !(bundleReused || tileReused) {
			return hashes, err
		}
		// A file from an earlier run that does not check out was torn by a crash (files are not
		// synced one by one): fetch both again, once.
	}
}

// leafHashesMatching parses bundle idx, hashes its entries and checks them against its level-0 tile.
func leafHashesMatching(idx uint64, bundle, tile []byte, width int) ([][]byte, error) {
	var eb api.EntryBundle
	if err := eb.UnmarshalText(bundle); err != nil {
		return nil, fmt.Errorf("parsing entry bundle %d: %w", idx, err)
	}
	if len(eb.Entries) != width || len(tile) != width*32 {
		return nil, fmt.Errorf("entry bundle %d has %d entries and its tile %d hashes, want %d", idx, len(eb.Entries), len(tile)/32, width)
	}
	hashes := make([][]byte, width)
	for i, e := range eb.Entries {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(e)
		if !bytes.Equal(hashes[i], tile[i*32:(i+1)*32]) {
			return nil, fmt.Errorf("entry %d: leaf hash %x, level-0 tile %d says %x", idx*layout.EntryBundleWidth+uint64(i), hashes[i], idx, tile[i*32:(i+1)*32])
		}
	}
	return hashes, nil
}

// upperTile gets tile level/idx and checks it holds exactly the recomputed nodes want.
func (r *run) upperTile(ctx context.Context, level, idx uint64, want []byte) error {
	p := layout.PartialTileSize(level, idx, r.size)
	for refetch := false; ; refetch = true {
		tile, reused, err := r.get(ctx, layout.TilePath(level, idx, p), refetch, func(ctx context.Context) ([]byte, error) {
			return r.cfg.Fetcher.ReadTile(ctx, level, idx, p)
		}, func(b []byte) ([]byte, error) { return tiles.TrimTile(b, p) })
		if err != nil {
			return err
		}
		if bytes.Equal(tile, want) {
			return nil
		}
		if refetch || !reused {
			return fmt.Errorf("tile %d/%d does not hold the hashes recomputed from the entries", level, idx)
		}
	}
}

// get returns the resource at path from disk if a previous run stored it (unless refetch), or else
// fetches it, trims it to the width asked for, and stores it. Whether it is right is checked by the
// caller either way; reused says it came from disk.
func (r *run) get(ctx context.Context, path string, refetch bool, fetch func(context.Context) ([]byte, error), trim func([]byte) ([]byte, error)) (data []byte, reused bool, err error) {
	full := filepath.Join(r.cfg.Dir, filepath.FromSlash(path))
	if !refetch {
		if data, err := os.ReadFile(full); err == nil {
			r.reused.Add(1)
			return data, true, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, false, fmt.Errorf("reading %s: %w", full, err)
		}
	}
	data, err = fetch(ctx)
	if err != nil {
		// Tessera's fetcher formats errors with %v; keep a cancellation recognisable for callers.
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("fetching %s: %w", path, context.Cause(ctx))
		}
		return nil, false, fmt.Errorf("fetching %s: %w", path, err)
	}
	// A fetcher asked for a partial resource may answer with the full one that replaced it.
	if data, err = trim(data); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	if err := writeAtomic(r.cfg.Dir, path, data); err != nil {
		return nil, false, err
	}
	r.fetch.Add(1)
	r.bytes.Add(uint64(len(data)))
	return data, false, nil
}

// removeObsoletePartials deletes the partial tiles and bundles that the new checkpoint superseded.
// Only tiles at the right edge of some tree can have had partials: those from the old edge to the new.
func (r *run) removeObsoletePartials(oldSize uint64) error {
	for level := uint64(0); r.size>>(8*level) > 0 || level == 0; level++ {
		fromIdx := (oldSize >> (8 * level)) / layout.TileWidth
		toIdx := (r.size >> (8 * level)) / layout.TileWidth
		for idx := fromIdx; idx <= toIdx; idx++ {
			p := layout.PartialTileSize(level, idx, r.size)
			paths := []string{layout.TilePath(level, idx, 0)}
			if level == 0 {
				paths = append(paths, layout.EntriesPath(idx, 0))
			}
			for _, path := range paths {
				if err := r.prunePartials(path, p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// prunePartials removes every <path>.p/<W> except the one for width keep (0 keeps none).
func (r *run) prunePartials(path string, keep uint8) error {
	dir := filepath.Join(r.cfg.Dir, filepath.FromSlash(path)) + ".p"
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	kept := 0
	for _, e := range ents {
		if keep != 0 && e.Name() == fmt.Sprint(keep) {
			kept++
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("removing obsolete partial %s: %w", filepath.Join(dir, e.Name()), err)
		}
	}
	if kept == 0 {
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("removing %s: %w", dir, err)
		}
	}
	return nil
}

// writeAtomic writes root/path through a temporary file in root's temp dir, renamed into place, so
// a reader or a rerun never sees half a file under its final name. Files are not synced one by one
// (that would cost a journal commit each): syncDir runs once before the checkpoint is written, and
// a file torn by a crash before then fails verification on the next run and is fetched again.
func writeAtomic(root, path string, data []byte) error {
	full := filepath.Join(root, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(full), err)
	}
	return atomicfile.Write(full, data, 0o644, atomicfile.Options{TempDir: filepath.Join(root, tmpDir)})
}
