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
		_, next, err := bundleNext(b, off, n)
		if err != nil {
			return nil, err
		}
		off = next
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
		if off == len(b) {
			return nil, fmt.Errorf("entry bundle holds %d entries, want entry %d", n, i)
		}
		start, end, err := bundleNext(b, off, n)
		if err != nil {
			return nil, err
		}
		if n == i {
			return b[start:end:end], nil
		}
		off = end
	}
}

// BundleOffsets returns where each entry of entry bundle b starts, and its end: entry k is
// b[offs[k]+2:offs[k+1]], after its 2-byte length prefix. Finding one entry walks the lengths of
// all before it, a chain of dependent reads across the bundle; callers that read many entries of
// one bundle walk it once with this.
func BundleOffsets(b []byte) ([]uint32, error) {
	offs := make([]uint32, 1, layout.EntryBundleWidth+1)
	for n, off := 0, 0; off < len(b); n++ {
		if n == layout.EntryBundleWidth {
			return nil, fmt.Errorf("entry bundle holds more than %d entries", layout.EntryBundleWidth)
		}
		_, end, err := bundleNext(b, off, n)
		if err != nil {
			return nil, err
		}
		offs = append(offs, uint32(end))
		off = end
	}
	return offs, nil
}

// bundleNext returns the bounds of entry n of bundle b, whose length prefix is at off.
func bundleNext(b []byte, off, n int) (start, end int, err error) {
	if len(b)-off < 2 {
		return 0, 0, fmt.Errorf("entry %d of the bundle has a truncated length", n)
	}
	start = off + 2
	end = start + int(binary.BigEndian.Uint16(b[off:]))
	if end > len(b) {
		return 0, 0, fmt.Errorf("entry %d of the bundle is %d bytes, past the bundle's end", n, end-start)
	}
	return start, end, nil
}
