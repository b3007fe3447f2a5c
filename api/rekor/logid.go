package rekor

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/notekey"
)

// KeyID returns the log ID of a signed-note verifier key: the untruncated SHA-256 of key name ||
// "\n" || signature type || public key, the hash whose first four bytes are the C2SP signed-note
// key ID. rekor-tiles puts the same value in logId.keyId (pkg/note KeyHash), and so does Quire.
func KeyID(vkey string) ([]byte, error) {
	k, err := notekey.ParseVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return keyHash(k.Name, append([]byte{k.Type}, k.Material...)), nil
}

// Ed25519KeyID is KeyID of the Ed25519 note key pub named origin, for callers that hold the key
// rather than its verifier key text (a trusted root's PKIX key, a checkpoint's verifier).
func Ed25519KeyID(origin string, pub ed25519.PublicKey) []byte {
	return keyHash(origin, append([]byte{notekey.TypeEd25519}, pub...))
}

// keyHash is the C2SP signed-note key hash SHA-256(name || "\n" || typed key) before its
// truncation to a 4-byte key ID.
func keyHash(name string, typedKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(typedKey)
	return h.Sum(nil)
}

// ParseEd25519VerifierKey parses a log's C2SP signed-note Ed25519 verifier key
// (name+hash+base64(0x01 || key)), surrounding space allowed, and returns its verifier (whose name
// is the log origin) and public key. The key hash must match the key. Errors never repeat the key
// text.
func ParseEd25519VerifierKey(vkey string) (note.Verifier, ed25519.PublicKey, error) {
	vkey = strings.TrimSpace(vkey)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("not a name+hash+key verifier key: %w", err)
	}
	// note.NewVerifier has checked the layout and that the hash matches the key.
	k, err := notekey.ParseVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	if k.Type != notekey.TypeEd25519 || len(k.Material) != ed25519.PublicKeySize {
		return nil, nil, errors.New("not an Ed25519 (type 0x01) verifier key")
	}
	return v, ed25519.PublicKey(k.Material), nil
}
