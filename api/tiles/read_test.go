package tiles_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/quirelog/quire/api/client/testlog"
	"github.com/quirelog/quire/api/tiles"
)

// collected is a Tessera reader that has lost every partial tile and bundle narrower than the
// integrated tree's, as a driver that garbage-collects them has.
type collected struct{ tessera.LogReader }

func (c collected) gone(ctx context.Context, level, index uint64, p uint8) bool {
	size, err := c.IntegratedSize(ctx)
	return err == nil && p != 0 && p != layout.PartialTileSize(level, index, size)
}

func (c collected) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	if c.gone(ctx, level, index, p) {
		return nil, fmt.Errorf("tile %d/%d.p/%d: %w", level, index, p, fs.ErrNotExist)
	}
	return c.LogReader.ReadTile(ctx, level, index, p)
}

func (c collected) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	if c.gone(ctx, 0, index, p) {
		return nil, fmt.Errorf("bundle %d.p/%d: %w", index, p, fs.ErrNotExist)
	}
	return c.LogReader.ReadEntryBundle(ctx, index, p)
}

// shortTiles is a Tessera reader whose tiles lack their last hash, as a storage bug would leave
// them.
type shortTiles struct{ tessera.LogReader }

func (s shortTiles) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	t, err := s.LogReader.ReadTile(ctx, level, index, p)
	if err != nil {
		return nil, err
	}
	return t[:len(t)-32], nil
}

// TestRead reads a real Tessera POSIX log of 300 entries, written in two batches: tile 0/000 and
// bundle 000 are full, 0/001 and bundle 001 are partial of width 44, and 1/000 of width 1.
func TestRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key, err := testlog.NewKey("example.com/quire-tiles-test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := testlog.Open(ctx, t.TempDir(), key)
	if err != nil {
		t.Fatal(err)
	}
	entries := testlog.Entries(0, 300)
	for _, batch := range [][][]byte{entries[:10], entries[10:]} {
		if err := l.Add(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	file := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(l.Dir, filepath.FromSlash(path)))
		if err != nil {
			t.Fatalf("reading the stored file: %v", err)
		}
		return b
	}
	// bundleOf encodes entries [from, to) itself, per tlog-tiles "Log Entries", through
	// Tessera's encoder.
	bundleOf := func(from, to int) []byte {
		var b []byte
		for i := from; i < to; i++ {
			e := tessera.NewEntry(entries[i])
			b = append(b, e.MarshalBundleData(uint64(i))...)
		}
		return b
	}
	tile := func(level, index uint64, w uint8) tiles.Resource {
		return tiles.Resource{Kind: tiles.HashTile, Level: level, Index: index, Width: w}
	}
	entryBundle := func(index uint64, w uint8) tiles.Resource {
		return tiles.Resource{Kind: tiles.EntryBundle, Index: index, Width: w}
	}

	tests := []struct {
		name   string
		reader tiles.Reader
		res    tiles.Resource
		want   func() []byte
		err    string // the error must mention it; "not exist" means it must wrap fs.ErrNotExist
	}{
		{name: "the checkpoint is read as stored", res: tiles.Resource{Kind: tiles.Checkpoint},
			want: func() []byte { return file("checkpoint") }},
		{name: "a full tile is read as stored", res: tile(0, 0, 0),
			want: func() []byte { return file("tile/0/000") }},
		{name: "a current partial tile is read as stored", res: tile(0, 1, 44),
			want: func() []byte { return file("tile/0/001.p/44") }},
		{name: "a level 1 partial tile is read as stored", res: tile(1, 0, 1),
			want: func() []byte { return file("tile/1/000.p/1") }},
		{name: "a partial tile of a full one is the start of the full one", res: tile(0, 0, 5),
			want: func() []byte { return file("tile/0/000")[:5*32] }},
		{name: "a collected partial tile of a full one is the start of the full one", reader: collected{l.Reader()}, res: tile(0, 0, 10),
			want: func() []byte { return file("tile/0/000")[:10*32] }},
		{name: "a collected partial tile is the start of the wider partial one", reader: collected{l.Reader()}, res: tile(0, 1, 10),
			want: func() []byte { return file("tile/0/001.p/44")[:10*32] }},
		{name: "a full bundle holds the first 256 entries", res: entryBundle(0, 0),
			want: func() []byte { return bundleOf(0, 256) }},
		{name: "a current partial bundle holds the last entries", res: entryBundle(1, 44),
			want: func() []byte { return bundleOf(256, 300) }},
		{name: "a collected partial bundle of a full one is its first entries", reader: collected{l.Reader()}, res: entryBundle(0, 10),
			want: func() []byte { return bundleOf(0, 10) }},
		{name: "a collected partial bundle is the start of the wider partial one", reader: collected{l.Reader()}, res: entryBundle(1, 3),
			want: func() []byte { return bundleOf(256, 259) }},
		{name: "a tile beyond the tree does not exist", res: tile(0, 2, 0), err: "not exist"},
		{name: "a full tile of a partial one does not exist", res: tile(0, 1, 0), err: "not exist"},
		{name: "a partial tile wider than the tree does not exist", res: tile(0, 1, 45), err: "not exist"},
		{name: "a partial tile wider than the tree does not exist once partials are collected", reader: collected{l.Reader()}, res: tile(0, 1, 45), err: "not exist"},
		{name: "an upper tile beyond the tree does not exist", res: tile(2, 0, 1), err: "not exist"},
		{name: "a bundle beyond the tree does not exist", res: entryBundle(2, 0), err: "not exist"},
		{name: "a short full tile is an error and not a missing tile", reader: shortTiles{l.Reader()}, res: tile(0, 0, 0), err: "want at least 256"},
		{name: "a short partial tile is an error and not a missing tile", reader: shortTiles{l.Reader()}, res: tile(0, 1, 44), err: "want at least 44"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.reader
			if r == nil {
				r = l.Reader()
			}
			got, err := tiles.Read(ctx, r, tt.res)
			switch {
			case tt.err == "not exist":
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Read(%s) = %d bytes, %v; want fs.ErrNotExist", tt.res.Path(), len(got), err)
				}
			case tt.err != "":
				if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Read(%s) = %d bytes, %v; want an error mentioning %q", tt.res.Path(), len(got), err, tt.err)
				}
			case err != nil:
				t.Fatalf("Read(%s): %v", tt.res.Path(), err)
			case !bytes.Equal(got, tt.want()):
				t.Fatalf("Read(%s) = %d bytes, want %d", tt.res.Path(), len(got), len(tt.want()))
			}
		})
	}
}
