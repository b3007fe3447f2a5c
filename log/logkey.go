package log

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// algEd25519 is the C2SP signed-note signature type of Ed25519 keys
// ("Signature types").
const algEd25519 = 0x01

// KeyID returns the log ID of a signed-note verifier key: the untruncated
// SHA-256 of key name || "\n" || signature type || public key, the hash whose
// first four bytes are the C2SP signed-note key ID. rekor-tiles puts the same
// value in logId.keyId (pkg/note KeyHash).
func KeyID(vkey string) ([]byte, error) {
	name, rest, ok := strings.Cut(vkey, "+")
	if !ok {
		return nil, errors.New("verifier key has no name")
	}
	_, b64, ok := strings.Cut(rest, "+")
	if !ok {
		return nil, errors.New("verifier key has no key hash")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 2 {
		return nil, fmt.Errorf("verifier key is not base64 of a typed key: %w", err)
	}
	return keyHash(name, key), nil
}

// Ed25519KeyID is KeyID of the Ed25519 note key pub named origin, for callers
// that hold the key rather than its verifier key text (a trusted root's
// PKIX key, a checkpoint's verifier).
func Ed25519KeyID(origin string, pub ed25519.PublicKey) []byte {
	return keyHash(origin, append([]byte{algEd25519}, pub...))
}

// keyHash is the C2SP signed-note key hash SHA-256(name || "\n" || typed key)
// before its truncation to a 4-byte key ID.
func keyHash(name string, typedKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(typedKey)
	return h.Sum(nil)
}

// ParseEd25519VerifierKey parses a log's C2SP signed-note Ed25519 verifier key
// (name+hash+base64(0x01 || key)), surrounding space allowed, and returns its
// verifier (whose name is the log origin) and public key. The key hash must
// match the key. Errors never repeat the key text.
func ParseEd25519VerifierKey(vkey string) (note.Verifier, ed25519.PublicKey, error) {
	vkey = strings.TrimSpace(vkey)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("not a name+hash+key verifier key: %w", err)
	}
	// note.NewVerifier has checked the layout and that the hash matches the key.
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algEd25519 {
		return nil, nil, errors.New("not an Ed25519 (type 0x01) verifier key")
	}
	return v, ed25519.PublicKey(raw[1:]), nil
}
