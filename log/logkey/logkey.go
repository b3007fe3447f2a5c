// Package logkey loads the key a log signs its checkpoints with, in each form an operator may hold
// it: a C2SP signed-note Ed25519 signer key (what `quire keygen` writes by default), a PEM private
// key (PKCS#8 Ed25519 or ECDSA P-256, optionally password-protected: the file rekor-tiles' POSIX
// server takes with --signer-filepath), or a key held by a KMS, named by a sigstore/sigstore URI
// (awskms://, gcpkms://, azurekms://, hashivault://; the binary links the providers it offers).
//
// It signs checkpoints exactly as rekor-tiles v2.3.0 does (pkg/note NewNoteSigner over a
// sigstore/sigstore signer): an Ed25519 key signs the note text (RFC 8032) under the C2SP
// signed-note key ID of type 0x01; an ECDSA P-256 key signs the SHA-256 of the note text (ASN.1
// DER signature) under the key ID SHA-256(DER SPKI)[:4]. The log ID in answers (logId.keyId) is
// api/rekor's LogKeyID, the value rekor-tiles puts there, so a trusted root made for a rekor-tiles
// deployment verifies Quire's answers and the other way round. The verifier key Quire publishes
// for the key is the C2SP signed-note form, type 0x01 or, for ECDSA, type 0x02 as
// transparency-dev/formats reads it (and so Tessera's fsck and quire-witness).
// TestSignaturesVerifyWithRekorTiles checks signatures and IDs against rekor-tiles' own code.
package logkey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/youmark/pkcs8"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/notekey"
	"github.com/quirelog/quire/api/rekor"
)

// Key is a log's checkpoint key. Signer is nil for a key loaded from its public half only.
type Key struct {
	// Origin is the log's origin: the key name in checkpoints.
	Origin string
	// Signer signs checkpoints; nil when only the public key is known.
	Signer note.Signer
	// Verifier checks checkpoints signed by the key.
	Verifier note.Verifier
	// VerifierKey is the C2SP signed-note verifier key: type 0x01 (Ed25519) or 0x02 (ECDSA P-256).
	VerifierKey string
	// Public is the public key: ed25519.PublicKey or *ecdsa.PublicKey (P-256).
	Public crypto.PublicKey
	// LogID is logId.keyId in the log's answers and in trusted roots.
	LogID []byte
}

// ErrMalformedNoteKey never includes the key text: a private key must not reach logs through an
// error.
var ErrMalformedNoteKey = errors.New("not a note signer key (PRIVATE+KEY+name+hash+base64)")

// IsPEM says whether a key file holds PEM (rather than a signed-note key).
func IsPEM(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN "))
}

// FromNoteSigner parses a C2SP signed-note Ed25519 signer key ("PRIVATE+KEY+name+hash+base64");
// its name is the origin.
func FromNoteSigner(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, ErrMalformedNoteKey
	}
	// note.NewSigner has checked the layout, the algorithm and that the hash matches the key.
	k, err := notekey.ParseSigner(skey)
	if err != nil || k.Type != notekey.TypeEd25519 || len(k.Material) != ed25519.SeedSize {
		return nil, ErrMalformedNoteKey
	}
	pub := ed25519.NewKeyFromSeed(k.Material).Public().(ed25519.PublicKey)
	key, err := public(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	key.Signer = signer
	return key, nil
}

// FromPEM loads a PEM private key (PKCS#8, encrypted PKCS#8 with password, or the other forms
// sigstore/sigstore's cryptoutils reads, as rekor-tiles does) for the log named origin. Errors
// never include the key.
func FromPEM(ctx context.Context, data, password []byte, origin string) (*Key, error) {
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, cryptoutils.StaticPasswordFunc(password))
	if err != nil && len(password) == 0 && bytes.Contains(data, []byte("ENCRYPTED")) {
		return nil, fmt.Errorf("reading PEM private key: it is encrypted and no password was given: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading PEM private key: %w", err)
	}
	sv, err := signature.LoadDefaultSignerVerifier(priv)
	if err != nil {
		return nil, fmt.Errorf("PEM private key cannot sign: %w", err)
	}
	return FromSigner(ctx, sv, origin)
}

// FromKMS loads the key at a sigstore/sigstore KMS URI (awskms://…, gcpkms://…, azurekms://…,
// hashivault://…, or any provider registered with kms.AddProvider) for the log named origin, as
// rekor-tiles does with --signer-kmskey and its default --signer-kmshash sha256: the only hash the
// signed-note ECDSA type verifies with. Credentials come from each provider's usual environment.
func FromKMS(ctx context.Context, uri, origin string) (*Key, error) {
	// Some providers keep the context they were made with for their client: the log signs with
	// it while it shuts down, after the caller's context is cancelled.
	sv, err := kms.Get(context.WithoutCancel(ctx), uri, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("opening KMS key %s: %w", uri, err)
	}
	return FromSigner(ctx, sv, origin)
}

// FromSigner makes the checkpoint key of a sigstore/sigstore signer, the way rekor-tiles turns its
// signer into a note signer. Signing uses a context detached from ctx's cancellation: a log signs
// its last checkpoints while it shuts down. It signs one probe message and verifies it with the
// published verifier key, so a key that would sign checkpoints nobody can verify is refused at once.
func FromSigner(ctx context.Context, sv signature.Signer, origin string) (*Key, error) {
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading the signer's public key: %w", err)
	}
	key, err := public(origin, pub)
	if err != nil {
		return nil, err
	}
	signCtx := context.WithoutCancel(ctx)
	key.Signer = &noteSigner{
		name: origin,
		hash: binary.BigEndian.Uint32(key.LogID),
		sign: func(msg []byte) ([]byte, error) {
			return sv.SignMessage(bytes.NewReader(msg), options.WithContext(signCtx))
		},
	}
	if err := key.check(); err != nil {
		return nil, err
	}
	return key, nil
}

// FromVerifierKey is the public half of a log key from its signed-note verifier key.
func FromVerifierKey(vkey string) (*Key, error) {
	v, pub, err := rekor.ParseVerifierKey(vkey)
	if err != nil {
		return nil, err
	}
	return public(v.Name(), pub)
}

// FromPublicPEM is the public half of a log key named origin from a PEM (PKIX) public key, the
// form a trusted root holds it in.
func FromPublicPEM(data []byte, origin string) (*Key, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("reading PEM public key: %w", err)
	}
	return public(origin, pub)
}

// public builds the public half of a key named origin.
func public(origin string, pub crypto.PublicKey) (*Key, error) {
	if origin == "" || strings.ContainsAny(origin, "+ \t\r\n") {
		return nil, fmt.Errorf("origin %q is not a key name (non-empty, no spaces or '+')", origin)
	}
	vkey, err := rekor.VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	v, _, err := rekor.ParseVerifierKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("building verifier: %w", err)
	}
	id, err := rekor.LogKeyID(origin, pub)
	if err != nil {
		return nil, err
	}
	return &Key{Origin: origin, Verifier: v, VerifierKey: vkey, Public: pub, LogID: id}, nil
}

// probe is the message FromSigner signs to check a key before the log uses it.
var probe = []byte("quire checkpoint key check\n")

func (k *Key) check() error {
	sig, err := k.Signer.Sign(probe)
	if err != nil {
		return fmt.Errorf("signing with the checkpoint key: %w", err)
	}
	if !k.Verifier.Verify(probe, sig) {
		return errors.New("the checkpoint key's signature does not verify with its verifier key: is the KMS key ECDSA P-256 with SHA-256, or Ed25519?")
	}
	return nil
}

// noteSigner is a note.Signer over a sigstore signer; its key hash is the first four bytes of the
// log ID, which for both key types is the C2SP signed-note key ID.
type noteSigner struct {
	name string
	hash uint32
	sign func([]byte) ([]byte, error)
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return s.sign(msg) }

// Algorithms GeneratePEM makes.
const (
	Ed25519   = "ed25519"
	ECDSAP256 = "ecdsa-p256"
)

// GeneratePEM makes a new private key of algorithm alg (Ed25519 or ECDSAP256) and returns it as a
// PKCS#8 PEM, encrypted (PBES2, AES-256-CBC, PBKDF2) when password is not empty, and its public key
// as a PKIX PEM.
func GeneratePEM(alg string, password []byte) (privPEM, pubPEM []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("key algorithm %q: want %s or %s", alg, Ed25519, ECDSAP256)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generating %s key: %w", alg, err)
	}
	der, err := pkcs8.MarshalPrivateKey(priv, password, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding private key: %w", err)
	}
	blockType := "PRIVATE KEY"
	if len(password) > 0 {
		blockType = "ENCRYPTED PRIVATE KEY"
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}
