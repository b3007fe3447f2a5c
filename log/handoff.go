package log

import (
	"bytes"
	"sync/atomic"
)

// Bounds of the key handoff: handoffSlots entries of at most handoffMaxBytes of keys each (slice
// headers included), so with the per-slot overhead about 4.5 MiB, counted in README "Memory". The
// follower reads a few hundred milliseconds behind the writes (its poll interval and the
// checkpoint interval), well within 4,096 entries at the rates the log takes; a hashedrekord with
// a public key hands off about 250 bytes, one with a Fulcio certificate about 500.
const (
	handoffSlots    = 4096
	handoffMaxBytes = 1024
)

// keyHandoff passes the search keys a write computed from its request to the follower, which
// would otherwise compute them again from the logged body: parse the canonical JSON, decode and
// hash the key, and for a certificate parse the whole certificate a second time. It only saves
// work: the follower still reads every entry from the log and takes handed keys only for the
// entry at the same index with the same leaf hash, so an entry the handoff missed (overwritten by
// a write 4,096 entries later, too many keys, a restart) is indexed from its body as before, and
// the keys are the same either way (TestHandedKeysAreEntryKeys).
type keyHandoff struct {
	slots [handoffSlots]atomic.Pointer[handedKeys]
}

// handedKeys are an entry's search keys as EntryKeys returns them; keys[0] is its leaf key.
type handedKeys struct {
	index uint64
	keys  [][]byte
}

// put hands off keys for the entry at index, unless they are over handoffMaxBytes.
func (h *keyHandoff) put(index uint64, keys [][]byte) {
	if len(keys) == 0 || keysBytes(keys) > handoffMaxBytes {
		return
	}
	h.slots[index%handoffSlots].Store(&handedKeys{index: index, keys: keys})
}

// keysBytes is the memory keys hold: their bytes and slice headers.
func keysBytes(keys [][]byte) int {
	n := 0
	for _, k := range keys {
		n += len(k) + 24
	}
	return n
}

// take returns the keys handed off for the entry at index whose leaf hash is leafHash, and
// empties its slot; nil when there are none.
func (h *keyHandoff) take(index uint64, leafHash []byte) [][]byte {
	if h == nil {
		return nil
	}
	s := &h.slots[index%handoffSlots]
	hk := s.Load()
	if hk == nil || hk.index != index {
		return nil
	}
	s.CompareAndSwap(hk, nil)
	if !bytes.Equal(hk.keys[0][len(leafKeyPrefix):], leafHash) {
		return nil
	}
	return hk.keys
}
