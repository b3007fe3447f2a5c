// Package notekey reads and writes the text form of C2SP signed-note keys
// (https://c2sp.org/signed-note): verifier keys "name+hex(keyID)+base64(type || key)" and signer
// keys "PRIVATE+KEY+name+hex(keyID)+base64(type || key)". It is the one place Quire splits such
// keys into their fields, for the callers that need more than golang.org/x/mod/sumdb/note and
// transparency-dev/formats expose: the public half of a signer key, the raw key behind a verifier
// key, the untruncated key hash. It checks the layout only; whether the key ID matches the key
// depends on the signature type, and note.NewVerifier, note.NewSigner or formats' constructors
// check that. CosignatureTime reads the timestamp a witness puts in a cosignature/v1 signature.
//
// Errors never repeat the key text: a signer key is a secret and must not reach a log.
package notekey

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Signature types of keys Quire uses (C2SP signed-note, "Signature types").
const (
	// TypeEd25519 is a plain Ed25519 note key: checkpoints signed by a log.
	TypeEd25519 = 0x01
	// TypeECDSA is an ECDSA key as transparency-dev/witness and transparency-dev/formats implement
	// it (C2SP signed-note 0x02): the key is its DER SPKI encoding, the signature an ASN.1 ECDSA
	// signature over the SHA-256 of the note text, and the key ID SHA-256(DER)[:4], with no name in
	// it. It is how a log signing with an ECDSA P-256 key, as rekor-tiles can, names its key.
	TypeECDSA = 0x02
	// TypeCosignatureV1 is an Ed25519 cosignature/v1 key (C2SP tlog-cosignature): witnesses.
	TypeCosignatureV1 = 0x04
)

const signerPrefix = "PRIVATE+KEY+"

// Key is a signed-note key split into its fields.
type Key struct {
	// Name is the key name: a log's origin, a witness's name.
	Name string
	// ID is the 4-byte key ID as written in the key.
	ID uint32
	// Type is the signature type, the first byte of the encoded key.
	Type byte
	// Material is the encoded key after its type byte: the public key of a verifier key, the
	// private key (an Ed25519 seed for the types above) of a signer key.
	Material []byte
}

// ParseVerifier splits a verifier key. Surrounding space is ignored.
func ParseVerifier(vkey string) (Key, error) {
	k, err := parse(strings.TrimSpace(vkey))
	if err != nil {
		return Key{}, fmt.Errorf("malformed verifier key: %w", err)
	}
	return k, nil
}

// ParseSigner splits a signer key. Surrounding space is ignored.
func ParseSigner(skey string) (Key, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(skey), signerPrefix)
	if !ok {
		return Key{}, errors.New("malformed signer key: it does not start with " + signerPrefix)
	}
	k, err := parse(rest)
	if err != nil {
		return Key{}, fmt.Errorf("malformed signer key: %w", err)
	}
	return k, nil
}

// parse splits "name+hex(keyID)+base64(type || key)".
func parse(s string) (Key, error) {
	name, rest, ok := strings.Cut(s, "+")
	if !ok || name == "" {
		return Key{}, errors.New("no name")
	}
	id, b64, ok := strings.Cut(rest, "+")
	if !ok || len(id) != 8 {
		return Key{}, errors.New("no 8-digit key ID")
	}
	n, err := strconv.ParseUint(id, 16, 32)
	if err != nil {
		return Key{}, errors.New("key ID is not hexadecimal")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < 2 {
		return Key{}, errors.New("key is not base64 of a signature type and a key")
	}
	return Key{Name: name, ID: uint32(n), Type: raw[0], Material: raw[1:]}, nil
}

// VerifierKey is k written as a verifier key.
func (k Key) VerifierKey() string {
	return fmt.Sprintf("%s+%08x+%s", k.Name, k.ID, base64.StdEncoding.EncodeToString(append([]byte{k.Type}, k.Material...)))
}

// SignerKey is k written as a signer key.
func (k Key) SignerKey() string {
	return signerPrefix + k.VerifierKey()
}

// ECDSAVerifierKey is the verifier key of type TypeECDSA named name for the public key whose DER
// SPKI encoding is der: its key ID is SHA-256(der)[:4], as that type defines.
func ECDSAVerifierKey(name string, der []byte) string {
	h := sha256.Sum256(der)
	return Key{Name: name, ID: binary.BigEndian.Uint32(h[:]), Type: TypeECDSA, Material: der}.VerifierKey()
}
