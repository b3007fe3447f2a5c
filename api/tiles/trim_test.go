package tiles

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api"
)

// hashes returns a tile of n distinct hashes.
func hashes(n int) []byte {
	t := make([]byte, n*hashSize)
	for i := range n {
		t[i*hashSize] = byte(i)
		t[i*hashSize+1] = byte(i >> 8)
	}
	return t
}

// bundle encodes n entries of varied lengths per tlog-tiles "Log Entries".
func bundle(n int) []byte {
	var b []byte
	for i := range n {
		e := bytes.Repeat([]byte{byte(i)}, i%7)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

func TestTrimTile(t *testing.T) {
	tests := []struct {
		name  string
		tile  []byte
		width uint8
		want  []byte
		err   string
	}{
		{"a partial tile of its own width is itself", hashes(10), 10, hashes(10), ""},
		{"a wider partial tile is cut to the first hashes", hashes(10), 4, hashes(10)[:4*hashSize], ""},
		{"a full tile is cut to a partial width", hashes(256), 5, hashes(256)[:5*hashSize], ""},
		{"a full tile read as full is itself", hashes(256), 0, hashes(256), ""},
		{"the widest partial is all but the last hash of the full tile", hashes(256), 255, hashes(256)[:255*hashSize], ""},
		{"a partial tile read as full is refused", hashes(255), 0, nil, "want at least 256"},
		{"a tile narrower than the width is refused", hashes(3), 4, nil, "want at least 4"},
		{"an empty tile is refused", nil, 1, nil, "holds 0 hashes"},
		{"a tile of part of a hash is refused", hashes(4)[:4*hashSize-1], 1, nil, "whole number"},
		{"a tile of more than 256 hashes is refused", hashes(257), 0, nil, "more than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TrimTile(tt.tile, tt.width)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("TrimTile(%d hashes, %d) = %d bytes, %v; want an error mentioning %q", len(tt.tile)/hashSize, tt.width, len(got), err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("TrimTile(%d hashes, %d) = %d bytes, %v; want %d bytes", len(tt.tile)/hashSize, tt.width, len(got), err, len(tt.want))
			}
		})
	}
}

func TestTrimBundle(t *testing.T) {
	three := []byte{0, 1, 'a', 0, 2, 'b', 'c', 0, 0}
	tests := []struct {
		name   string
		bundle []byte
		width  uint8
		want   []byte
		err    string
	}{
		{"a bundle is cut after its first entry", three, 1, three[:3], ""},
		{"a bundle is cut after its second entry", three, 2, three[:7], ""},
		{"a bundle of its own width is itself, empty last entry included", three, 3, three, ""},
		{"a full bundle is cut to a partial width", bundle(256), 7, bundle(7), ""},
		{"a full bundle read as full is itself", bundle(256), 0, bundle(256), ""},
		{"a bundle cannot grow", three, 4, nil, "holds 3 entries, want at least 4"},
		{"a partial bundle read as full is refused", bundle(255), 0, nil, "want at least 256"},
		{"an empty bundle is refused", nil, 1, nil, "holds 0 entries"},
		{"an entry overrunning the bundle is refused", []byte{0, 9, 'x'}, 1, nil, "past the bundle's end"},
		{"a malformed entry after the cut is refused", append(bytes.Clone(three), 0), 1, nil, "truncated length"},
		{"a bundle of 257 entries is refused", bundle(257), 0, nil, "more than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TrimBundle(tt.bundle, tt.width)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("TrimBundle(%x, %d) = %x, %v; want an error mentioning %q", tt.bundle, tt.width, got, err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("TrimBundle(%x, %d) = %x, %v; want %x", tt.bundle, tt.width, got, err, tt.want)
			}
		})
	}
}

// FuzzTrimTile checks that TrimTile never panics and returns only a prefix of exactly the width
// asked for, cut from a tile of whole hashes no wider than 256.
func FuzzTrimTile(f *testing.F) {
	f.Add(hashes(3), uint8(2))
	f.Add(hashes(256), uint8(0))
	f.Add(hashes(255), uint8(0))
	f.Add([]byte{1, 2, 3}, uint8(1))
	f.Fuzz(func(t *testing.T, tile []byte, w uint8) {
		got, err := TrimTile(tile, w)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(tile, got) || len(got) != width(w)*hashSize {
			t.Fatalf("TrimTile(%d bytes, %d) = %d bytes, not the %d-hash prefix", len(tile), w, len(got), width(w))
		}
		if len(tile)%hashSize != 0 || len(tile) > 256*hashSize {
			t.Fatalf("TrimTile accepted a tile of %d bytes", len(tile))
		}
	})
}

// FuzzTrimBundle checks that TrimBundle never panics and returns only a prefix that parses as a
// bundle of exactly the width asked for, cut from a well-formed bundle of at most 256 entries.
func FuzzTrimBundle(f *testing.F) {
	f.Add([]byte{0, 1, 'a', 0, 2, 'b', 'c'}, uint8(2))
	f.Add([]byte{0, 1, 'a', 0, 0}, uint8(2))
	f.Add([]byte{0xff, 0xff}, uint8(1))
	f.Add(bundle(256), uint8(0))
	f.Add(bundle(256), uint8(200))
	f.Fuzz(func(t *testing.T, b []byte, w uint8) {
		got, err := TrimBundle(b, w)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, got) {
			t.Fatalf("TrimBundle(%x, %d) = %x, not a prefix", b, w, got)
		}
		var cut, whole api.EntryBundle
		if err := cut.UnmarshalText(got); err != nil || len(cut.Entries) != width(w) {
			t.Fatalf("TrimBundle(%x, %d) parses to %d entries (%v), want %d", b, w, len(cut.Entries), err, width(w))
		}
		if err := whole.UnmarshalText(b); err != nil || len(whole.Entries) > 256 {
			t.Fatalf("TrimBundle accepted a bundle of %d entries (%v)", len(whole.Entries), err)
		}
	})
}

func TestBundleEntry(t *testing.T) {
	three := []byte{0, 1, 'a', 0, 2, 'b', 'c', 0, 0}
	tests := []struct {
		name   string
		bundle []byte
		i      int
		want   []byte
		err    string
	}{
		{"the first entry is found", three, 0, []byte("a"), ""},
		{"a middle entry is found", three, 1, []byte("bc"), ""},
		{"an empty last entry is found", three, 2, []byte{}, ""},
		{"the last entry of a full bundle is found", bundle(256), 255, bytes.Repeat([]byte{255}, 255%7), ""},
		{"an entry past the bundle's end is refused", three, 3, nil, "holds 3 entries, want entry 3"},
		{"an entry past 256 is refused", bundle(256), 256, nil, "outside a bundle"},
		{"a negative entry is refused", three, -1, nil, "outside a bundle"},
		{"an entry overrunning the bundle is refused", []byte{0, 1, 'a', 0, 9, 'x'}, 1, nil, "past the bundle's end"},
		{"a truncated length before the entry is refused", []byte{0, 1, 'a', 0}, 1, nil, "truncated length"},
		{"a malformed bundle after the entry does not matter", append(bytes.Clone(three), 0), 1, []byte("bc"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BundleEntry(tt.bundle, tt.i)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("BundleEntry(%x, %d) = %x, %v; want an error mentioning %q", tt.bundle, tt.i, got, err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("BundleEntry(%x, %d) = %x, %v; want %x", tt.bundle, tt.i, got, err, tt.want)
			}
		})
	}
}

// FuzzBundleEntry checks that BundleEntry never panics and finds the entry Tessera's own parser
// finds in any bundle that parser accepts.
func FuzzBundleEntry(f *testing.F) {
	f.Add([]byte{0, 1, 'a', 0, 2, 'b', 'c'}, 1)
	f.Add([]byte{0xff, 0xff}, 0)
	f.Add(bundle(256), 255)
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		got, err := BundleEntry(b, i)
		var whole api.EntryBundle
		if whole.UnmarshalText(b) != nil || i < 0 || i >= len(whole.Entries) {
			return
		}
		if err != nil || !bytes.Equal(got, whole.Entries[i]) {
			t.Fatalf("BundleEntry(%x, %d) = %x, %v; want %x", b, i, got, err, whole.Entries[i])
		}
	})
}

// FuzzBundleOffsets checks that BundleOffsets never panics, refuses what Tessera's own parser
// refuses (or a bundle of more than 256 entries), and otherwise cuts every entry that parser
// finds.
func FuzzBundleOffsets(f *testing.F) {
	f.Add([]byte{0, 1, 'a', 0, 2, 'b', 'c'})
	f.Add([]byte{0, 1})
	f.Add([]byte{})
	f.Add(bundle(256))
	f.Add(append(bundle(256), 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		offs, err := BundleOffsets(b)
		var whole api.EntryBundle
		if whole.UnmarshalText(b) != nil || len(whole.Entries) > 256 {
			if err == nil {
				t.Fatalf("BundleOffsets(%x) = %v, want an error", b, offs)
			}
			return
		}
		if err != nil || len(offs) != len(whole.Entries)+1 {
			t.Fatalf("BundleOffsets(%x) = %v, %v; want %d entries", b, offs, err, len(whole.Entries))
		}
		for k, e := range whole.Entries {
			if got := b[offs[k]+2 : offs[k+1]]; !bytes.Equal(got, e) {
				t.Fatalf("BundleOffsets(%x): entry %d is %x, want %x", b, k, got, e)
			}
		}
	})
}
