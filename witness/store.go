package witness

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The witness keeps one Pebble key per log, holding the latest cosigned
// checkpoint: "witness/v1/log/" + hex(SHA-256(origin)) →
// size (8 bytes, big-endian) || root (32 bytes) || signed checkpoint note.
// One key per log means each update is a single synced Set: after a crash the
// record is either the old checkpoint or the new one, and the new one is only
// ever answered after the Set returned.
const stateKeyPrefix = "witness/v1/log/"

// record is the latest cosigned state of one log.
type record struct {
	size uint64
	root []byte
	// checkpoint is the checkpoint with the log signatures the witness
	// verified and the witness's own cosignature, as served to monitors.
	checkpoint []byte
}

func originHash(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:])
}

func stateKey(origin string) []byte {
	return []byte(stateKeyPrefix + originHash(origin))
}

func loadRecord(db *pebble.DB, origin string) (*record, error) {
	v, closer, err := db.Get(stateKey(origin))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of log %q: %w", origin, err)
	}
	defer closer.Close()
	if len(v) < 8+hashSize {
		return nil, fmt.Errorf("state of log %q is %d bytes, too short", origin, len(v))
	}
	return &record{
		size:       binary.BigEndian.Uint64(v),
		root:       append([]byte(nil), v[8:8+hashSize]...),
		checkpoint: append([]byte(nil), v[8+hashSize:]...),
	}, nil
}

// storeRecord writes r and waits for it to be synced to disk: tlog-witness,
// "add-checkpoint": "The witness MUST persist the new checkpoint before
// responding."
func storeRecord(db *pebble.DB, origin string, r *record) error {
	v := make([]byte, 0, 8+hashSize+len(r.checkpoint))
	v = binary.BigEndian.AppendUint64(v, r.size)
	v = append(v, r.root...)
	v = append(v, r.checkpoint...)
	if err := db.Set(stateKey(origin), v, pebble.Sync); err != nil {
		return fmt.Errorf("writing state of log %q: %w", origin, err)
	}
	return nil
}
