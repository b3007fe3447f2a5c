// Package tiles is the C2SP tlog-tiles format (https://c2sp.org/tlog-tiles) as both sides of
// Quire use it: the resource paths (ParsePath, Resource.Path), partial widths, cutting a hash
// tile or an entry bundle to a partial width (TrimTile, TrimBundle), and reading a resource from
// a Tessera log reader with its shape checked (Read).
//
// The server's HTTP and gRPC reads, the Pebble storage driver, the log's proofs and the mirror
// client all go through these, so a partial tile is cut in one way everywhere. The package
// imports only the standard library and Tessera's api/layout, as Tessera's own drivers share
// api/layout. TestParsePathRejects shows that each resource has exactly one URL; TestTrimTile,
// TestTrimBundle and TestRead show that a partial resource is the prefix of every wider one and
// that a short full one never passes for complete.
package tiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/transparency-dev/tessera/api/layout"
)

// Fetcher reads the resources of a tlog-tiles log, local or remote: Tessera's
// client.HTTPFetcher and client.FileFetcher are ones, and so is every tessera.LogReader.
// ReadCheckpoint, ReadTile and ReadEntryBundle return the resource, or an error wrapping
// fs.ErrNotExist when it does not exist.
type Fetcher interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// Reader is the read side of a log that Read uses; every tessera.LogReader is one. Asked for a
// partial width, its ReadTile and ReadEntryBundle may answer with a wider version (Tessera's
// drivers answer with the full one once it exists).
type Reader interface {
	Fetcher
	// IntegratedSize is the size of the tree the reader holds tiles for, at least that of the
	// latest checkpoint.
	IntegratedSize(ctx context.Context) (uint64, error)
}

// Read returns the exact bytes of res that a tlog-tiles server serves.
//
// A driver may delete a partial tile or bundle once a wider one exists (Tessera's POSIX driver
// garbage-collects them), yet a client of an older checkpoint still asks for it. Its first W
// hashes or entries never change once written (tlog-tiles "Partial Tiles"), so Read then reads
// the full version, or else the partial one of the integrated tree if that is wider, and trims
// it with TrimTile or TrimBundle.
//
// Read checks the shape of what it returns: a full tile or bundle is cached for a year, so a
// short one from storage must never leave as if it were complete. A resource that does not exist
// gives an error wrapping fs.ErrNotExist; a resource of the wrong shape, an error that does not.
func Read(ctx context.Context, r Reader, res Resource) ([]byte, error) {
	var (
		read func(w uint8) ([]byte, error)
		trim func(b []byte, w uint8) ([]byte, error)
	)
	switch res.Kind {
	case Checkpoint:
		cp, err := r.ReadCheckpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint: %w", err)
		}
		return cp, nil
	case HashTile:
		read = func(w uint8) ([]byte, error) { return r.ReadTile(ctx, res.Level, res.Index, w) }
		trim = TrimTile
	case EntryBundle:
		read = func(w uint8) ([]byte, error) { return r.ReadEntryBundle(ctx, res.Index, w) }
		trim = TrimBundle
	default:
		return nil, fmt.Errorf("reading %v: unknown kind", res.Kind)
	}
	b, err := readAtLeast(ctx, r, res, read)
	if err == nil {
		b, err = trim(b, res.Width)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", res.Path(), err)
	}
	return b, nil
}

// readAtLeast reads res at its own width with read, or else at a wider one (see Read).
func readAtLeast(ctx context.Context, r Reader, res Resource, read func(w uint8) ([]byte, error)) ([]byte, error) {
	b, err := read(res.Width)
	if !res.Partial() || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	b, err = read(0)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	size, err := r.IntegratedSize(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading integrated size: %w", err)
	}
	w := layout.PartialTileSize(res.Level, res.Index, size)
	if w <= res.Width {
		return nil, fmt.Errorf("no full or wider partial version (integrated width %d): %w", w, fs.ErrNotExist)
	}
	return read(w)
}

// ReadEntry returns the data of entry index in the tree of size entries, from its entry bundle
// (read with Read, so at the width that tree gives it).
func ReadEntry(ctx context.Context, r Reader, index, size uint64) ([]byte, error) {
	bi := index / layout.EntryBundleWidth
	raw, err := Read(ctx, r, Resource{Kind: EntryBundle, Index: bi, Width: layout.PartialTileSize(0, bi, size)})
	if err != nil {
		return nil, err
	}
	e, err := BundleEntry(raw, int(index%layout.EntryBundleWidth))
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", bi, err)
	}
	return e, nil
}
