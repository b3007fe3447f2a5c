package tiles

import (
	"errors"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Resource
	}{
		{"the checkpoint parses", "/checkpoint", Resource{Kind: Checkpoint}},
		{"a full level 0 tile parses", "/tile/0/000", Resource{Kind: HashTile}},
		{"a multi-group index parses", "/tile/0/x001/x234/067", Resource{Kind: HashTile, Index: 1234067}},
		{"a partial tile parses with its width", "/tile/1/x001/234.p/7", Resource{Kind: HashTile, Level: 1, Index: 1234, Width: 7}},
		{"the widest partial tile parses", "/tile/2/000.p/255", Resource{Kind: HashTile, Level: 2, Width: 255}},
		{"a full entry bundle parses", "/tile/entries/x002/003", Resource{Kind: EntryBundle, Index: 2003}},
		{"a partial entry bundle parses", "/tile/entries/000.p/1", Resource{Kind: EntryBundle, Width: 1}},
		{"the last possible level 0 tile parses", "/tile/0/x072/x057/x594/x037/x927/935", Resource{Kind: HashTile, Index: 1<<56 - 1}},
		{"the only level 7 tile parses", "/tile/7/000.p/1", Resource{Kind: HashTile, Level: 7, Width: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePath(tt.path)
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.path, err)
			}
			if got != tt.want {
				t.Errorf("ParsePath(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
			if got.Path() != tt.path {
				t.Errorf("Path() = %q, want %q", got.Path(), tt.path)
			}
		})
	}
}

func TestParsePathRejects(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		want    error
		message string
	}{
		{"a path outside the namespace is not tiles", "/healthz", ErrNotTiles, "not a tlog-tiles"},
		{"a checkpoint with a suffix is not tiles", "/checkpoint/x", ErrNotTiles, ""},
		{"the bare tile directory is bad", "/tile/", ErrBadPath, "no tile index"},
		{"a level with no index is bad", "/tile/0", ErrBadPath, "no tile index"},
		{"a level with an empty index is bad", "/tile/0/", ErrBadPath, "index"},
		{"traversal out of the tile directory is bad", "/tile/../checkpoint", ErrBadPath, "unexpected character 'c'"},
		{"traversal within the tile directory is bad", "/tile/0/../000", ErrBadPath, "index"},
		{"a percent escape is bad", "/tile/0/%30%30%30", ErrBadPath, "unexpected character '%'"},
		{"a double slash is bad", "/tile/0//000", ErrBadPath, "index"},
		{"a level above 63 is bad", "/tile/64/000", ErrBadPath, "level"},
		{"a level with a leading zero is bad", "/tile/01/000", ErrBadPath, "canonical"},
		{"a level beyond any uint64 tree is bad", "/tile/8/000", ErrBadPath, "beyond 2^64"},
		{"a level 7 tile other than the first is bad", "/tile/7/001", ErrBadPath, "beyond 2^64"},
		{"a level 0 tile past 2^56 is bad", "/tile/0/x072/x057/x594/x037/x927/936", ErrBadPath, "beyond 2^64"},
		{"an index overflowing uint64 is bad", "/tile/0/x018/x446/x744/x073/x709/x551/616", ErrBadPath, ""},
		{"a two-digit group is bad", "/tile/0/01", ErrBadPath, "index"},
		{"an x on the last group is bad", "/tile/0/x001", ErrBadPath, "index"},
		{"a leading zero group is bad", "/tile/0/x000/001", ErrBadPath, "canonical"},
		{"a width of 0 is bad", "/tile/0/000.p/0", ErrBadPath, "width"},
		{"a width of 256 is bad", "/tile/0/000.p/256", ErrBadPath, "width"},
		{"a width with a leading zero is bad", "/tile/0/000.p/07", ErrBadPath, "canonical"},
		{"a dangling partial marker is bad", "/tile/0/000.p", ErrBadPath, ""},
		{"a partial marker with no index is bad", "/tile/0/.p/5", ErrBadPath, ""},
		{"an entries path with no index is bad", "/tile/entries/", ErrBadPath, ""},
		{"a negative index is bad", "/tile/0/-01", ErrBadPath, "unexpected character '-'"},
		{"a NUL byte is bad", "/tile/0/000\x00", ErrBadPath, "unexpected character"},
		{"an overlong path is bad", "/tile/0/" + strings.Repeat("x000/", 20) + "000", ErrBadPath, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePath(tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParsePath(%q) = %+v, %v; want error %v", tt.path, got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("ParsePath(%q) error %q does not mention %q", tt.path, err, tt.message)
			}
		})
	}
}

// FuzzParsePath checks that no input panics, and that every accepted path
// is canonical (it round-trips) and names a tile a uint64 tree can have.
func FuzzParsePath(f *testing.F) {
	for _, seed := range []string{
		"/checkpoint", "/tile/0/000", "/tile/0/x001/x234/067.p/8", "/tile/entries/000.p/1",
		"/tile/63/000", "/tile/0/.p/5", "/tile/0/000.p", "/tile/entries/x.p/1", "/tile/../../etc/passwd",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Also try s under /tile/, where random strings rarely land.
		for _, path := range []string{s, "/tile/" + s} {
			r, err := ParsePath(path)
			if err != nil {
				if !errors.Is(err, ErrNotTiles) && !errors.Is(err, ErrBadPath) {
					t.Fatalf("ParsePath(%q): error %v wraps neither sentinel", path, err)
				}
				continue
			}
			if r.Path() != path {
				t.Fatalf("ParsePath(%q) accepted a non-canonical path (canonical %q)", path, r.Path())
			}
			if r.Kind != Checkpoint && !possible(r.Level, r.Index) {
				t.Fatalf("ParsePath(%q) accepted an impossible tile %+v", path, r)
			}
		}
	})
}

// TestPathIsTesseras checks Path against Tessera's layout package for indices of every group
// count, every width class and the largest values.
func TestPathIsTesseras(t *testing.T) {
	indices := []uint64{0, 1, 9, 10, 99, 100, 999, 1000, 1001, 123456, 999999, 1000000, 1234567890, 1<<56 - 1, 1<<64 - 1}
	for _, n := range indices {
		for _, w := range []uint8{0, 1, 9, 10, 99, 100, 255} {
			for _, level := range []uint64{0, 1, 7, 63} {
				r := Resource{Kind: HashTile, Level: level, Index: n, Width: w}
				if got, want := r.Path(), "/"+layout.TilePath(level, n, w); got != want {
					t.Errorf("tile %d/%d.p/%d: Path() = %q, want %q", level, n, w, got, want)
				}
			}
			r := Resource{Kind: EntryBundle, Index: n, Width: w}
			if got, want := r.Path(), "/"+layout.EntriesPath(n, w); got != want {
				t.Errorf("bundle %d.p/%d: Path() = %q, want %q", n, w, got, want)
			}
		}
	}
}

func BenchmarkParsePath(b *testing.B) {
	for b.Loop() {
		if _, err := ParsePath("/tile/0/x001/x234/067"); err != nil {
			b.Fatal(err)
		}
	}
}
