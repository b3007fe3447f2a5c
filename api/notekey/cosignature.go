package notekey

import (
	"encoding/binary"
	"time"
)

// cosignatureV1Size is the length of a cosignature/v1 signature: key hash (4 bytes), timestamp (8)
// and Ed25519 signature (64).
const cosignatureV1Size = 4 + 8 + 64

// CosignatureTime reads the time a witness put in a cosignature/v1 signature (C2SP
// tlog-cosignature, "Format": the timestamp is big-endian seconds since the Unix epoch, after the
// key hash). sig is the signature as decoded from its note signature line. ok is false for a
// signature of another length, such as a log's own Ed25519 signature.
func CosignatureTime(sig []byte) (t time.Time, ok bool) {
	if len(sig) != cosignatureV1Size {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(sig[4:12])), 0).UTC(), true
}
