package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/quirelog/quire/api/tiles"
)

// Defaults of ImportConfig's zero values.
const (
	// DefaultImportParallel is how many bundles and tiles an import fetches at once.
	DefaultImportParallel = 8
	// DefaultImportCommitBundles is how many entry bundles go into one synced commit: the unit an
	// interrupted import resumes from.
	DefaultImportCommitBundles = 16
)

// ImportSource reads the log to import, as C2SP tlog-tiles resources; Tessera's
// client.HTTPFetcher (a log server) and client.FileFetcher (a directory in the tlog-tiles layout,
// such as rekor-tiles' or Tessera's POSIX storage, or a `quirectl mirror`) are ones.
type ImportSource interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// ImportConfig configures Import. Source and Verifier are required.
type ImportConfig struct {
	Source ImportSource
	// Verifier checks the source's checkpoint; its name is the log's origin.
	Verifier note.Verifier
	// Parallel bounds concurrent fetches (DefaultImportParallel if 0).
	Parallel int
	// CommitBundles is how many bundles one commit holds (DefaultImportCommitBundles if 0).
	CommitBundles int
	// Progress, if set, is called after each commit and once at the end, from Import's goroutine.
	Progress func(ImportProgress)
}

// ImportProgress is a snapshot of a running import.
type ImportProgress struct {
	// Entries of Total are in the database; Start of them were there before this run.
	Entries, Start, Total uint64
	Elapsed               time.Duration
	Done                  bool
}

// Import copies the log Source serves into this database, index for index, so that the log it
// holds afterwards is that log and an appender continues it: the next checkpoint it publishes is
// consistent with the source's. Everything is verified before the import counts as done: the
// source's checkpoint with Verifier; every entry bundle against the source's level-0 tile (RFC 6962
// leaf hashes); the root the entries hash to against the checkpoint; and every higher tile the
// source serves against the one computed here. The source's checkpoint is then stored as the
// log's latest, so readers see it and its witnesses' cosignatures.
//
// Entries go in in commits of CommitBundles bundles, each one synced Pebble batch like an
// appender's, so an interrupted import resumes where its last commit ended: call Import again,
// against the same source or a newer checkpoint of it. Entries are appended even where they repeat
// an earlier one (the source logged them); the dedup record names the first copy, as if the log
// had been written here, with Tessera's identity (the SHA-256 of the entry).
//
// Import refuses a database with an appender running, opened read-only, frozen, or holding more
// entries than the source; entries that turn out not to be the source's prefix fail the root
// check, and the database must then be removed. It returns the source checkpoint imported.
func (s *Storage) Import(ctx context.Context, cfg ImportConfig) ([]byte, error) {
	if cfg.Source == nil || cfg.Verifier == nil {
		return nil, errors.New("import: Source and Verifier are required")
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultImportParallel
	}
	if cfg.CommitBundles <= 0 {
		cfg.CommitBundles = DefaultImportCommitBundles
	}
	if err := s.startImport(); err != nil {
		return nil, err
	}
	defer func() {
		s.mu.Lock()
		s.importing = false
		s.mu.Unlock()
	}()

	raw, err := cfg.Source.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("import: reading the source checkpoint: %w", err)
	}
	cp, _, _, err := flog.ParseCheckpoint(raw, cfg.Verifier.Name(), cfg.Verifier)
	if err != nil {
		return nil, fmt.Errorf("import: verifying the source checkpoint: %w", err)
	}
	start := s.tree.Load().size
	if start > cp.Size {
		return nil, fmt.Errorf("import: the database holds %d entries, more than the source's %d", start, cp.Size)
	}
	im := &importer{s: s, cfg: cfg, size: cp.Size, begun: time.Now(), start: start}
	im.done = start
	if err := im.copyEntries(ctx, start); err != nil {
		return nil, err
	}
	head := s.tree.Load()
	if head.size != cp.Size || !bytes.Equal(head.root, cp.Hash) {
		return nil, fmt.Errorf("import: the entries hash to root %x at size %d, the source checkpoint says %x at %d: the database is not that log (remove it and import again)", head.root, head.size, cp.Hash, cp.Size)
	}
	if err := im.checkUpperTiles(ctx); err != nil {
		return nil, err
	}
	if err := s.storeImportedCheckpoint(cp.Size, raw); err != nil {
		return nil, err
	}
	if cfg.Progress != nil {
		cfg.Progress(im.snapshot(true))
	}
	return raw, nil
}

func (s *Storage) startImport() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return errors.New("pebble storage is closed")
	case s.started || s.importing:
		return errors.New("import: an appender or another import runs on this database")
	case s.cfg.ReadOnly:
		return errors.New("import: the database is open read-only")
	}
	if size, frozen, err := s.Frozen(); err != nil {
		return err
	} else if frozen {
		return fmt.Errorf("import: frozen at size %d: %w", size, ErrFrozen)
	}
	s.importing = true
	return nil
}

// storeImportedCheckpoint makes the source's checkpoint the log's latest (and records it in the
// history), in one synced batch.
func (s *Storage) storeImportedCheckpoint(size uint64, cp []byte) error {
	prev := s.pub.Load()
	if prev.cp != nil && prev.size == size && bytes.Equal(prev.cp, cp) {
		return nil
	}
	now := time.Now().UnixNano()
	wb := s.db.NewBatch()
	defer wb.Close()
	if err := wb.Set([]byte{keyCheckpoint}, encodePublished(now, size, cp), nil); err != nil {
		return fmt.Errorf("import: batching the checkpoint: %w", err)
	}
	if err := wb.Set(historyKey(size), cp, nil); err != nil {
		return fmt.Errorf("import: batching the checkpoint history: %w", err)
	}
	if err := wb.Commit(pdb.Sync); err != nil {
		return fmt.Errorf("import: committing the checkpoint: %w", err)
	}
	s.pub.Store(&published{size: size, atNano: now, cp: cp, next: make(chan struct{})})
	close(prev.next)
	return nil
}

// importer is one Import run, owned by Import's goroutine.
type importer struct {
	s                 *Storage
	cfg               ImportConfig
	size, start, done uint64
	begun             time.Time
}

// copyEntries fetches the bundles from the one holding entry from to the source's size,
// cfg.Parallel at a time, checks each against its level-0 tile, and appends them in order, one
// synced commit per cfg.CommitBundles bundles.
func (im *importer) copyEntries(ctx context.Context, from uint64) error {
	if from == im.size {
		return nil
	}
	seq, err := newSequencer(im.s)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer seq.wb.Close()
	seq.keepDuplicates = true
	first, last := from/layout.EntryBundleWidth, (im.size-1)/layout.EntryBundleWidth
	var pending []*tessera.Entry
	for lo := first; lo <= last; lo += uint64(im.cfg.Parallel) {
		hi := min(lo+uint64(im.cfg.Parallel), last+1)
		bundles := make([][][]byte, hi-lo)
		g, gctx := errgroup.WithContext(ctx)
		for idx := lo; idx < hi; idx++ {
			g.Go(func() error {
				var err error
				bundles[idx-lo], err = im.fetchBundle(gctx, idx)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for k, entries := range bundles {
			idx := lo + uint64(k)
			skip := uint64(0)
			if idx == first {
				skip = from % layout.EntryBundleWidth
			}
			for _, e := range entries[skip:] {
				pending = append(pending, tessera.NewEntry(e))
			}
			if (idx-first+1)%uint64(im.cfg.CommitBundles) == 0 || idx == last {
				if err := im.commit(seq, pending); err != nil {
					return err
				}
				pending = pending[:0]
			}
		}
	}
	return nil
}

func (im *importer) commit(seq *sequencer, entries []*tessera.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	b := &batch{entries: entries, done: make(chan struct{})}
	if err := seq.commit([]*batch{b}); err != nil {
		return fmt.Errorf("import: committing entries up to %d: %w", seq.size, err)
	}
	for i, r := range b.results {
		if r.IsDup {
			return fmt.Errorf("import: entry %d was not appended", seq.size-uint64(len(entries))+uint64(i))
		}
	}
	im.done = seq.size
	if im.cfg.Progress != nil {
		im.cfg.Progress(im.snapshot(false))
	}
	return nil
}

// fetchBundle returns the entries of bundle idx at the width the source's size gives it, after
// checking their leaf hashes against the source's level-0 tile.
func (im *importer) fetchBundle(ctx context.Context, idx uint64) ([][]byte, error) {
	p := layout.PartialTileSize(0, idx, im.size)
	raw, err := im.cfg.Source.ReadEntryBundle(ctx, idx, p)
	if err != nil {
		return nil, fmt.Errorf("import: fetching entry bundle %d: %w", idx, err)
	}
	if raw, err = tiles.TrimBundle(raw, p); err != nil {
		return nil, fmt.Errorf("import: entry bundle %d: %w", idx, err)
	}
	tile, err := im.cfg.Source.ReadTile(ctx, 0, idx, p)
	if err != nil {
		return nil, fmt.Errorf("import: fetching tile 0/%d: %w", idx, err)
	}
	if tile, err = tiles.TrimTile(tile, p); err != nil {
		return nil, fmt.Errorf("import: tile 0/%d: %w", idx, err)
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("import: parsing entry bundle %d: %w", idx, err)
	}
	width := int(p)
	if p == 0 {
		width = layout.EntryBundleWidth
	}
	if len(eb.Entries) != width || len(tile) != width*hashSize {
		return nil, fmt.Errorf("import: entry bundle %d has %d entries and its tile %d hashes, want %d", idx, len(eb.Entries), len(tile)/hashSize, width)
	}
	for i, e := range eb.Entries {
		if h := rfc6962.DefaultHasher.HashLeaf(e); !bytes.Equal(h, tile[i*hashSize:(i+1)*hashSize]) {
			return nil, fmt.Errorf("import: entry %d hashes to %x, the source's level-0 tile says %x", idx*layout.EntryBundleWidth+uint64(i), h, tile[i*hashSize:(i+1)*hashSize])
		}
	}
	return eb.Entries, nil
}

// checkUpperTiles compares every tile above level 0 the source serves for its size with the one
// this database computed from the entries.
func (im *importer) checkUpperTiles(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(im.cfg.Parallel)
	for level := uint64(1); im.size>>(layout.TileHeight*level) > 0; level++ {
		nodes := im.size >> (layout.TileHeight * level)
		for idx := uint64(0); idx*layout.TileWidth < nodes; idx++ {
			g.Go(func() error {
				p := layout.PartialTileSize(level, idx, im.size)
				theirs, err := im.cfg.Source.ReadTile(gctx, level, idx, p)
				if err != nil {
					return fmt.Errorf("import: fetching tile %d/%d: %w", level, idx, err)
				}
				if theirs, err = tiles.TrimTile(theirs, p); err != nil {
					return fmt.Errorf("import: tile %d/%d: %w", level, idx, err)
				}
				ours, err := im.s.ReadTile(gctx, level, idx, p)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				if !bytes.Equal(theirs, ours) {
					return fmt.Errorf("import: the source's tile %d/%d differs from the one its entries give", level, idx)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

func (im *importer) snapshot(done bool) ImportProgress {
	return ImportProgress{Entries: im.done, Start: im.start, Total: im.size, Elapsed: time.Since(im.begun), Done: done}
}
