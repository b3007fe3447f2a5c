package tiles

import (
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/tessera/api/layout"
)

// hashSize is the size of one hash in a tile: SHA-256, as tlog-tiles "Merkle Tree" fixes it.
const hashSize = 32

// width returns the number of hashes or entries that a resource of partial width w (0: full)
// holds.
func width(w uint8) int {
	if w == 0 {
		return layout.TileWidth
	}
	return int(w)
}

// TrimTile returns the hash tile of width w (0: full) that tile t begins with. tlog-tiles
// "Partial Tiles" makes the partial tile of width W the first W hashes of the tile, so t may be
// any wider version, the full one included. It refuses a t that is not a whole number of hashes,
// holds more than 256, or holds fewer than the width asked for (256 for a full tile).
func TrimTile(t []byte, w uint8) ([]byte, error) {
	n, want := len(t)/hashSize, width(w)
	switch {
	case len(t)%hashSize != 0:
		return nil, fmt.Errorf("tile of %d bytes is not a whole number of %d-byte hashes", len(t), hashSize)
	case n > layout.TileWidth:
		return nil, fmt.Errorf("tile holds %d hashes, more than %d", n, layout.TileWidth)
	case n < want:
		return nil, fmt.Errorf("tile holds %d hashes, want at least %d", n, want)
	}
	return t[:want*hashSize], nil
}

// TrimBundle returns the entry bundle of width w (0: full) that bundle b begins with: its first
// w entries, byte for byte, each a big-endian uint16 length and that many bytes (tlog-tiles "Log
// Entries"). Like TrimTile it accepts any wider version. It reads all of b first, so a bundle that
// is malformed anywhere, holds more than 256 entries, or fewer than the width asked for (256 for a
// full bundle) is refused rather than cut in the wrong place.
func TrimBundle(b []byte, w uint8) ([]byte, error) {
	want := width(w)
	end, n := len(b), 0
	for off := 0; off < len(b); n++ {
		if n == want {
			end = off
		}
		if n == layout.EntryBundleWidth {
			return nil, fmt.Errorf("entry bundle holds more than %d entries", layout.EntryBundleWidth)
		}
		if len(b)-off < 2 {
			return nil, fmt.Errorf("entry %d of the bundle has a truncated length", n)
		}
		size := int(binary.BigEndian.Uint16(b[off:]))
		off += 2 + size
		if off > len(b) {
			return nil, fmt.Errorf("entry %d of the bundle is %d bytes, past the bundle's end", n, size)
		}
	}
	if n < want {
		return nil, fmt.Errorf("entry bundle holds %d entries, want at least %d", n, want)
	}
	return b[:end], nil
}

// BundleEntry returns entry i (from 0) of entry bundle b, without its length prefix (tlog-tiles
// "Log Entries"). The result shares b's memory. It reads b only as far as entry i, so it finds
// entry i of any version of the bundle at least i+1 entries wide, and refuses a bundle that is
// malformed before entry i's end or shorter than i+1 entries.
func BundleEntry(b []byte, i int) ([]byte, error) {
	if i < 0 || i >= layout.EntryBundleWidth {
		return nil, fmt.Errorf("entry %d is outside a bundle of %d entries", i, layout.EntryBundleWidth)
	}
	off := 0
	for n := 0; ; n++ {
		if len(b)-off < 2 {
			if off == len(b) {
				return nil, fmt.Errorf("entry bundle holds %d entries, want entry %d", n, i)
			}
			return nil, fmt.Errorf("entry %d of the bundle has a truncated length", n)
		}
		size := int(binary.BigEndian.Uint16(b[off:]))
		start := off + 2
		off = start + size
		if off > len(b) {
			return nil, fmt.Errorf("entry %d of the bundle is %d bytes, past the bundle's end", n, size)
		}
		if n == i {
			return b[start:off:off], nil
		}
	}
}
