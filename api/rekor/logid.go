package rekor

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/notekey"
)

// KeyID returns the log ID of a signed-note verifier key, the value rekor-tiles puts in
// logId.keyId (pkg/note KeyHash) and so does Quire. For an Ed25519 key it is the untruncated
// SHA-256 of key name || "\n" || signature type || public key, the hash whose first four bytes are
// the C2SP signed-note key ID; for an ECDSA key (type 0x02) it is the SHA-256 of the DER public
// key, without the name, as rekor-tiles and the 0x02 key ID compute it.
func KeyID(vkey string) ([]byte, error) {
	k, err := notekey.ParseVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if k.Type == notekey.TypeECDSA {
		h := sha256.Sum256(k.Material)
		return h[:], nil
	}
	return keyHash(k.Name, append([]byte{k.Type}, k.Material...)), nil
}

// Ed25519KeyID is KeyID of the Ed25519 note key pub named origin, for callers that hold the key
// rather than its verifier key text (a trusted root's PKIX key, a checkpoint's verifier).
func Ed25519KeyID(origin string, pub ed25519.PublicKey) []byte {
	return keyHash(origin, append([]byte{notekey.TypeEd25519}, pub...))
}

// LogKeyID is KeyID of the checkpoint key pub named origin: an Ed25519 or ECDSA P-256 public key,
// the two kinds of checkpoint key Quire signs with.
func LogKeyID(origin string, pub crypto.PublicKey) ([]byte, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return Ed25519KeyID(origin, k), nil
	case *ecdsa.PublicKey:
		der, err := ecdsaP256DER(k)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(der)
		return h[:], nil
	default:
		return nil, fmt.Errorf("checkpoint key is a %T, want Ed25519 or ECDSA P-256", pub)
	}
}

// VerifierKey is the signed-note verifier key of the checkpoint key pub named origin: type 0x01
// for Ed25519, type 0x02 (DER SPKI) for ECDSA P-256.
func VerifierKey(origin string, pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		vkey, err := note.NewEd25519VerifierKey(origin, k)
		if err != nil {
			return "", fmt.Errorf("encoding Ed25519 verifier key: %w", err)
		}
		return vkey, nil
	case *ecdsa.PublicKey:
		der, err := ecdsaP256DER(k)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(origin, "+ \t\n") || origin == "" {
			return "", fmt.Errorf("origin %q is not a valid key name", origin)
		}
		return notekey.ECDSAVerifierKey(origin, der), nil
	default:
		return "", fmt.Errorf("checkpoint key is a %T, want Ed25519 or ECDSA P-256", pub)
	}
}

// ecdsaP256DER is the DER SPKI encoding of an ECDSA P-256 key. Other curves are refused: the
// signed-note ECDSA type hashes with SHA-256 whatever the curve, while sigstore's signers (and so
// rekor-tiles) hash P-384 with SHA-384, so no verifier would agree with both.
func ecdsaP256DER(k *ecdsa.PublicKey) ([]byte, error) {
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("checkpoint key is ECDSA on %s, want P-256", k.Curve.Params().Name)
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding ECDSA key: %w", err)
	}
	return der, nil
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
	v, pub, err := ParseVerifierKey(vkey)
	if err != nil {
		return nil, nil, err
	}
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, nil, errors.New("not an Ed25519 (type 0x01) verifier key")
	}
	return v, ed, nil
}

// ParseVerifierKey parses a log's checkpoint verifier key, surrounding space allowed: an Ed25519
// key (name+hash+base64(0x01 || key)) or an ECDSA P-256 key (name+hash+base64(0x02 || DER SPKI)),
// and returns its verifier (whose name is the log origin) and public key (ed25519.PublicKey or
// *ecdsa.PublicKey). The key hash must match the key. Errors never repeat the key text.
func ParseVerifierKey(vkey string) (note.Verifier, crypto.PublicKey, error) {
	vkey = strings.TrimSpace(vkey)
	k, err := notekey.ParseVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	switch k.Type {
	case notekey.TypeEd25519:
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, nil, fmt.Errorf("not a name+hash+key verifier key: %w", err)
		}
		// note.NewVerifier has checked that the hash matches the key.
		if len(k.Material) != ed25519.PublicKeySize {
			return nil, nil, errors.New("Ed25519 verifier key of the wrong length")
		}
		return v, ed25519.PublicKey(k.Material), nil
	case notekey.TypeECDSA:
		pub, err := x509.ParsePKIXPublicKey(k.Material)
		if err != nil {
			return nil, nil, errors.New("ECDSA verifier key does not hold a DER public key")
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, nil, errors.New("type 0x02 verifier key is not an ECDSA P-256 key")
		}
		// formats checks the key hash against the DER (its errors may quote the key: not kept).
		v, err := fnote.NewECDSAVerifier(vkey)
		if err != nil {
			return nil, nil, errors.New("ECDSA verifier key: its hash does not match its key")
		}
		return v, ec, nil
	default:
		return nil, nil, fmt.Errorf("verifier key of type 0x%02x, want Ed25519 (0x01) or ECDSA (0x02)", k.Type)
	}
}
