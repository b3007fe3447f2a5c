package pebble

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/transparency-dev/tessera/api"
)

// tlogBundle encodes entries per tlog-tiles "Log Entries".
func tlogBundle(entries ...string) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// FuzzBundleAtWidth feeds arbitrary stored bundle values and widths to the partial-bundle reader:
// it must not panic, and whatever it returns must be a tlog-tiles bundle of exactly the width
// asked for (or the full bundle), cut at an entry boundary.
func FuzzBundleAtWidth(f *testing.F) {
	three := tlogBundle("a", "", "ccc")
	f.Add(append([]byte{3}, three...), uint8(2))
	f.Add(append([]byte{3}, three...), uint8(0))
	f.Add(append([]byte{3}, three...), uint8(4))
	f.Add(append([]byte{3}, three[:len(three)-1]...), uint8(1))
	f.Add(append([]byte{2}, three...), uint8(1))
	f.Add([]byte{}, uint8(1))
	f.Add([]byte{1, 0xff, 0xff}, uint8(1))
	f.Fuzz(func(t *testing.T, v []byte, p uint8) {
		out, err := bundleAtWidth(v, p)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(v[1:], out) {
			t.Fatalf("bundleAtWidth(%x, %d) = %x, not a prefix of the stored bundle", v, p, out)
		}
		count := int(v[0])
		if count == 0 {
			count = 256
		}
		if count == 256 || int(p) == count {
			return
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(out); err != nil {
			t.Fatalf("bundleAtWidth(%x, %d) = %x, which does not parse: %v", v, p, out, err)
		}
		if len(eb.Entries) != int(p) {
			t.Fatalf("bundleAtWidth(%x, %d) holds %d entries", v, p, len(eb.Entries))
		}
	})
}

// FuzzDecodeTreeState checks that the stored tree state parser refuses what it cannot read and
// round-trips what it accepts.
func FuzzDecodeTreeState(f *testing.F) {
	h := bytes.Repeat([]byte{7}, hashSize)
	f.Add(encodeTreeState(nil, treeState{size: 0, root: h}))
	f.Add(encodeTreeState(nil, treeState{size: 3, root: h, hashes: [][]byte{h, h}}))
	f.Add(encodeTreeState(nil, treeState{size: 3, root: h, hashes: [][]byte{h}}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := decodeTreeState(raw)
		if err != nil {
			return
		}
		if got := encodeTreeState(nil, st); !bytes.Equal(got, raw) {
			t.Fatalf("decode then encode of %x gave %x", raw, got)
		}
	})
}

// FuzzDecodePublished checks the latest-checkpoint record parser the same way.
func FuzzDecodePublished(f *testing.F) {
	f.Add(encodePublished(1700000000000000000, 42, []byte("origin\n42\nroot\n\n— sig\n")))
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		at, size, cp, err := decodePublished(raw)
		if err != nil {
			return
		}
		if got := encodePublished(at, size, cp); !bytes.Equal(got, raw) {
			t.Fatalf("decode then encode of %x gave %x", raw, got)
		}
	})
}

// FuzzDedupKey checks the dedup key parsers: a key of either layout gives back the identity and
// the generation it was made with, and any other bytes (a damaged database's) give a suffix of
// themselves and a generation no higher than their bytes say, never a panic.
func FuzzDedupKey(f *testing.F) {
	f.Add(int64(-1), []byte("0123456789abcdef0123456789abcdef"), []byte("d"))
	f.Add(int64(7), []byte("0123456789abcdef0123456789abcdef"), []byte("g\x00\x01"))
	f.Add(int64(1<<32-1), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, gen int64, identity, raw []byte) {
		gen = max(gen%(1<<32), -1)
		if got := dedupIdentity(dedupKey(nil, gen, identity)); !bytes.Equal(got, identity) {
			t.Fatalf("identity %x in generation %d came back as %x", identity, gen, got)
		}
		if got := dedupKeyGeneration(dedupKey(nil, gen, identity)); got != gen {
			t.Fatalf("a key of generation %d gave generation %d", gen, got)
		}
		if got := dedupIdentity(raw); !bytes.HasSuffix(raw, got) {
			t.Fatalf("key %x gave %x, not a suffix of it", raw, got)
		}
		// The opening scan raises the filter's bound to it, so it must never be above the key.
		if got := dedupKeyGeneration(raw); got != legacyGeneration && (len(raw) < dedupKeyHead || got != int64(binary.BigEndian.Uint32(raw[1:]))) {
			t.Fatalf("key %x gave generation %d", raw, got)
		}
	})
}
