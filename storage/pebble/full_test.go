package pebble

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/quirelog/quire/api/tiles"
)

// view returns a copy of what ViewFull lends out.
func viewFull(s *Storage, res tiles.Resource, coding string) (body, version []byte, err error) {
	err = s.ViewFull(context.Background(), res, coding, func(b, v []byte) error {
		body, version = bytes.Clone(b), bytes.Clone(v)
		return nil
	})
	return body, version, err
}

func TestViewFull(t *testing.T) {
	signer, verifier := testKeys(t)
	cfg := Config{Path: filepath.Join(t.TempDir(), "db")}
	ctx := context.Background()
	l := openTestLog(t, cfg, fastOptions(signer))
	entries := entryData("view", 0, 600)
	l.appendAll(t, entries)
	l.awaitSize(t, verifier, 600)

	tile0 := tiles.Resource{Kind: tiles.HashTile, Level: 0, Index: 1}
	bundle1 := tiles.Resource{Kind: tiles.EntryBundle, Index: 1}
	t.Run("a full tile is the tile ReadTile returns, versioned by its subtree's root", func(t *testing.T) {
		body, version, err := viewFull(l.s, tile0, "")
		if err != nil {
			t.Fatal(err)
		}
		want, err := l.s.ReadTile(ctx, 0, 1, 0)
		if err != nil || !bytes.Equal(body, want) {
			t.Fatalf("ViewFull gave %d bytes, ReadTile %d (%v)", len(body), len(want), err)
		}
		if root := rfc6962Root(t, entries[256:512]); !bytes.Equal(version, root) {
			t.Errorf("version %x, want the root of entries [256, 512) %x", version, root)
		}
	})
	t.Run("a full bundle is the bundle ReadEntryBundle returns, with its tile's version", func(t *testing.T) {
		body, version, err := viewFull(l.s, bundle1, "")
		if err != nil {
			t.Fatal(err)
		}
		want, err := l.s.ReadEntryBundle(ctx, 1, 0)
		if err != nil || !bytes.Equal(body, want) {
			t.Fatalf("ViewFull gave %d bytes, ReadEntryBundle %d (%v)", len(body), len(want), err)
		}
		if _, tv, _ := viewFull(l.s, tile0, ""); !bytes.Equal(version, tv) {
			t.Errorf("bundle version %x, tile version %x", version, tv)
		}
	})
	notFull := []struct {
		name   string
		res    tiles.Resource
		coding string
	}{
		{"the partial right-edge tile", tiles.Resource{Kind: tiles.HashTile, Index: 2}, ""},
		{"the partial right-edge bundle", tiles.Resource{Kind: tiles.EntryBundle, Index: 2}, ""},
		{"a partial width of a full tile", tiles.Resource{Kind: tiles.HashTile, Index: 0, Width: 5}, ""},
		{"a tile beyond the tree", tiles.Resource{Kind: tiles.HashTile, Index: 9}, ""},
		{"a level-1 tile of a tree of 600", tiles.Resource{Kind: tiles.HashTile, Level: 1}, ""},
		{"a bundle's gzip form nobody stored", bundle1, CodingGzip},
		{"a tile's gzip form", tile0, CodingGzip},
		{"an unknown coding", bundle1, "br"},
		{"the checkpoint", tiles.Resource{Kind: tiles.Checkpoint}, ""},
	}
	for _, tt := range notFull {
		t.Run(tt.name+" is not there", func(t *testing.T) {
			called := false
			err := l.s.ViewFull(ctx, tt.res, tt.coding, func(_, _ []byte) error { called = true; return nil })
			if !errors.Is(err, fs.ErrNotExist) || called {
				t.Errorf("ViewFull = %v (fn called: %v), want not found without a call", err, called)
			}
		})
	}
	t.Run("a stored gzip form is what ViewFull lends out, after a restart too", func(t *testing.T) {
		gz := []byte("stand-in for the gzip bytes")
		if err := l.s.PutCoded(ctx, bundle1, CodingGzip, gz); err != nil {
			t.Fatal(err)
		}
		_, version, _ := viewFull(l.s, bundle1, "")
		check := func(s *Storage) {
			t.Helper()
			got, v, err := viewFull(s, bundle1, CodingGzip)
			if err != nil || !bytes.Equal(got, gz) || !bytes.Equal(v, version) {
				t.Errorf("gzip form %q, version %x (%v); want %q, %x", got, v, err, gz, version)
			}
		}
		check(l.s)
		l.close(t)
		l = openTestLog(t, cfg, fastOptions(signer))
		check(l.s)
	})
	t.Run("only full bundles take a stored form", func(t *testing.T) {
		for _, res := range []tiles.Resource{tile0, {Kind: tiles.EntryBundle, Index: 1, Width: 3}} {
			if err := l.s.PutCoded(ctx, res, CodingGzip, []byte("x")); err == nil {
				t.Errorf("PutCoded(%s) succeeded", res.Path())
			}
		}
		if err := l.s.PutCoded(ctx, bundle1, "br", []byte("x")); err == nil {
			t.Error("PutCoded in coding br succeeded")
		}
	})
	t.Run("a bundle that fills after a restart is served full", func(t *testing.T) {
		l.appendAll(t, entryData("view", 600, layout.EntryBundleWidth))
		l.awaitSize(t, verifier, 600+layout.EntryBundleWidth)
		body, _, err := viewFull(l.s, tiles.Resource{Kind: tiles.EntryBundle, Index: 2}, "")
		want, _ := l.s.ReadEntryBundle(ctx, 2, 0)
		if err != nil || !bytes.Equal(body, want) {
			t.Errorf("ViewFull of bundle 2: %d bytes (%v), want %d", len(body), err, len(want))
		}
	})
	l.close(t)
	t.Run("a closed storage lends out nothing", func(t *testing.T) {
		if _, _, err := viewFull(l.s, tile0, ""); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ViewFull after Close = %v, want an error other than not found", err)
		}
	})
	t.Run("a read-only storage keeps a gzip form in memory", func(t *testing.T) {
		d, err := New(ctx, Config{Path: cfg.Path, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		ro := d.(*Storage)
		defer ro.Close()
		bundle0 := tiles.Resource{Kind: tiles.EntryBundle, Index: 0}
		gz := []byte("stand-in for bundle 0's gzip bytes")
		if err := ro.PutCoded(ctx, bundle0, CodingGzip, gz); err != nil {
			t.Fatalf("PutCoded on a read-only storage: %v", err)
		}
		if got, _, err := viewFull(ro, bundle0, CodingGzip); err != nil || !bytes.Equal(got, gz) {
			t.Errorf("gzip form %q (%v), want %q", got, err, gz)
		}
	})
}
