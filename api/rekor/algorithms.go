package rekor

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // registers crypto.SHA256 for Hash.New
	_ "crypto/sha512" // registers crypto.SHA384 and crypto.SHA512
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// digestAlgorithm is one artifact digest algorithm in its three spellings: the protobuf-specs
// HashAlgorithm a body records, the Go hash that computes it, and the name of its "name:HEX" text
// form (as OCI and in-toto digests are written).
type digestAlgorithm struct {
	alg  commonv1.HashAlgorithm
	hash crypto.Hash
	name string
}

// digestAlgorithms are the artifact digests Quire records and searches: the hashes of the key
// details below. This is the one table of them.
var digestAlgorithms = []digestAlgorithm{
	{commonv1.HashAlgorithm_SHA2_256, crypto.SHA256, "sha256"},
	{commonv1.HashAlgorithm_SHA2_384, crypto.SHA384, "sha384"},
	{commonv1.HashAlgorithm_SHA2_512, crypto.SHA512, "sha512"},
}

// digestFor is the row of the digest table for alg.
func digestFor(alg commonv1.HashAlgorithm) (digestAlgorithm, error) {
	for _, d := range digestAlgorithms {
		if d.alg == alg {
			return d, nil
		}
	}
	return digestAlgorithm{}, fmt.Errorf("unsupported digest algorithm %s", alg)
}

// HashFor is the hash a protobuf-specs HashAlgorithm names.
func HashFor(alg commonv1.HashAlgorithm) (crypto.Hash, error) {
	d, err := digestFor(alg)
	return d.hash, err
}

// HashAlgorithmFor is the protobuf-specs HashAlgorithm a digest of hash h is recorded as
// (hashedrekord data.algorithm, a bundle's messageDigest).
func HashAlgorithmFor(h crypto.Hash) (commonv1.HashAlgorithm, error) {
	for _, d := range digestAlgorithms {
		if d.hash == h {
			return d.alg, nil
		}
	}
	return commonv1.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED, fmt.Errorf("unsupported digest hash %s", h)
}

// checkDigest says whether digest is a digest of algorithm alg, and returns alg's row.
func checkDigest(alg commonv1.HashAlgorithm, digest []byte) (digestAlgorithm, error) {
	d, err := digestFor(alg)
	if err != nil {
		return d, err
	}
	if len(digest) != d.hash.Size() {
		return d, fmt.Errorf("%s digest has %d bytes, want %d", alg, len(digest), d.hash.Size())
	}
	return d, nil
}

// FormatDigest writes a digest as "sha256:HEX" (or sha384, sha512) in lowercase hex, the form
// ParseDigest reads.
func FormatDigest(alg commonv1.HashAlgorithm, digest []byte) (string, error) {
	b, err := AppendDigest(nil, alg, digest)
	return string(b), err
}

// AppendDigest appends FormatDigest's text to dst: a search index builds a key from it for every
// entry, and one allocation serves where the string and its conversion took three.
func AppendDigest(dst []byte, alg commonv1.HashAlgorithm, digest []byte) ([]byte, error) {
	d, err := checkDigest(alg, digest)
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, len(d.name)+1+hex.EncodedLen(len(digest)))
	dst = append(dst, d.name...)
	dst = append(dst, ':')
	return hex.AppendEncode(dst, digest), nil
}

// ParseDigest reads a digest written "sha256:HEX" (or sha384, sha512; hex in either case) and
// returns its algorithm and bytes. Errors say what is wrong with the text without repeating more
// than the algorithm name.
func ParseDigest(s string) (commonv1.HashAlgorithm, []byte, error) {
	name, hexDigest, ok := strings.Cut(s, ":")
	if !ok {
		return 0, nil, errors.New("not ALGORITHM:HEX")
	}
	var d *digestAlgorithm
	for i := range digestAlgorithms {
		if digestAlgorithms[i].name == name {
			d = &digestAlgorithms[i]
		}
	}
	if d == nil {
		return 0, nil, fmt.Errorf("unsupported algorithm %q: want sha256, sha384 or sha512", name)
	}
	if want := 2 * d.hash.Size(); len(hexDigest) != want {
		return 0, nil, fmt.Errorf("%s digest has %d hex digits, want %d", name, len(hexDigest), want)
	}
	digest, err := hex.DecodeString(hexDigest)
	if err != nil {
		return 0, nil, fmt.Errorf("%s digest is not hexadecimal", name)
	}
	return d.alg, digest, nil
}

// Algorithm is what one PublicKeyDetails value means for a signature: the key it demands and the
// hash it signs with.
type Algorithm struct {
	Details commonv1.PublicKeyDetails
	// Name is the algorithm's name in sigstore/sigstore's signature algorithm registry, the one
	// rekor-tiles' --client-signing-algorithms takes ("ecdsa-sha2-256-nistp256", "ed25519-ph").
	Name string
	// Hash is the hash of the artifact digest (hashedrekord) or of the message (DSSE).
	Hash crypto.Hash
	// Prehashed is false only for pure Ed25519, which signs the message itself and so cannot sign
	// a hashedrekord digest.
	Prehashed bool

	keyMatch func(crypto.PublicKey) error
}

// keyAlgorithms lists the key details Quire accepts: the default client signing algorithms of
// rekor-tiles v2.3.0 (internal/algorithmregistry), and pure Ed25519 for DSSE. Unlike rekor-tiles,
// which only checks that the key and the hash of the keyDetails are some permitted pair, the key
// must be the very key the keyDetails names, so logged keyDetails never misdescribe their key.
var keyAlgorithms = map[commonv1.PublicKeyDetails]Algorithm{
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256: {Name: "rsa-sign-pkcs1-2048-sha256", Hash: crypto.SHA256, Prehashed: true, keyMatch: rsaBits(2048)},
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256: {Name: "rsa-sign-pkcs1-3072-sha256", Hash: crypto.SHA256, Prehashed: true, keyMatch: rsaBits(3072)},
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256: {Name: "rsa-sign-pkcs1-4096-sha256", Hash: crypto.SHA256, Prehashed: true, keyMatch: rsaBits(4096)},
	commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256:       {Name: "ecdsa-sha2-256-nistp256", Hash: crypto.SHA256, Prehashed: true, keyMatch: ecCurve(elliptic.P256())},
	commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384:       {Name: "ecdsa-sha2-384-nistp384", Hash: crypto.SHA384, Prehashed: true, keyMatch: ecCurve(elliptic.P384())},
	commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512:       {Name: "ecdsa-sha2-512-nistp521", Hash: crypto.SHA512, Prehashed: true, keyMatch: ecCurve(elliptic.P521())},
	commonv1.PublicKeyDetails_PKIX_ED25519_PH:               {Name: "ed25519-ph", Hash: crypto.SHA512, Prehashed: true, keyMatch: isEd25519},
	// Pure Ed25519 signs whole messages, so only DSSE envelopes (which older cosign signs with
	// it) can use it.
	commonv1.PublicKeyDetails_PKIX_ED25519: {Name: "ed25519", Hash: crypto.SHA512, keyMatch: isEd25519},
}

func init() {
	for d, a := range keyAlgorithms {
		a.Details = d
		keyAlgorithms[d] = a
	}
}

// AlgorithmFor returns the algorithm of key details d, if Quire accepts them at all (pure Ed25519
// included: callers that sign digests must check Prehashed).
func AlgorithmFor(d commonv1.PublicKeyDetails) (Algorithm, bool) {
	a, ok := keyAlgorithms[d]
	return a, ok
}

// ClientSigningAlgorithms are the names of every algorithm in the table, sorted: the default of
// rekor-tiles v2.3.0's --client-signing-algorithms (internal/cli/flags.go), which allows the same
// eight.
func ClientSigningAlgorithms() []string {
	names := make([]string, 0, len(keyAlgorithms))
	for _, a := range keyAlgorithms {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return names
}

// ParseAlgorithmName returns the key details of the algorithm named name in sigstore/sigstore's
// registry (Algorithm.Name). A name the registry has but Quire does not accept (RSA-PSS, ECDSA
// with a hash other than its curve's) is refused with the list of accepted names.
func ParseAlgorithmName(name string) (commonv1.PublicKeyDetails, error) {
	for d, a := range keyAlgorithms {
		if a.Name == name {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown or unsupported signing algorithm %q: want one of %s", name, strings.Join(ClientSigningAlgorithms(), ", "))
}

// hashedRekordAlgorithm is the algorithm a hashedrekord with key details d signs with: any
// prehashed one in the table.
func hashedRekordAlgorithm(d commonv1.PublicKeyDetails) (Algorithm, error) {
	a, ok := keyAlgorithms[d]
	if !ok || !a.Prehashed {
		return Algorithm{}, fmt.Errorf("key details %s are not accepted for hashedrekord", d)
	}
	return a, nil
}

// HashAlgorithm is how a digest of a.Hash is recorded (hashedrekord data.algorithm).
func (a Algorithm) HashAlgorithm() commonv1.HashAlgorithm {
	alg, err := HashAlgorithmFor(a.Hash)
	if err != nil {
		panic("key algorithm table names a hash missing from the digest table: " + err.Error())
	}
	return alg
}

// CheckKey says whether pub is the key a.Details names, and if not, what it is instead.
func (a Algorithm) CheckKey(pub crypto.PublicKey) error { return a.keyMatch(pub) }

// VerifyDigest checks sig over an already computed digest with pub. It does not check that pub
// is a's key (CheckKey does) nor the digest's length.
func (a Algorithm) VerifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, a.Hash, digest, sig); err != nil {
			return fmt.Errorf("RSA signature does not verify: %w", err)
		}
	case ed25519.PublicKey:
		if err := ed25519.VerifyWithOptions(k, digest, sig, &ed25519.Options{Hash: crypto.SHA512}); err != nil {
			return fmt.Errorf("Ed25519ph signature does not verify: %w", err)
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// HashForKeyDetails is the hash a hashedrekord signer with these key details must compute the
// artifact digest with. Pure Ed25519 is refused: it cannot sign a precomputed digest.
func HashForKeyDetails(details commonv1.PublicKeyDetails) (crypto.Hash, error) {
	a, err := hashedRekordAlgorithm(details)
	if err != nil {
		return 0, err
	}
	return a.Hash, nil
}

// KeyDetailsFor is what a hashedrekord signer with pub declares: the key details naming that
// exact key and the hash its digests use. Each accepted key matches exactly one prehashed entry of
// the table, so the answer does not depend on the map's order.
func KeyDetailsFor(pub crypto.PublicKey) (commonv1.PublicKeyDetails, crypto.Hash, error) {
	for d, a := range keyAlgorithms {
		if a.Prehashed && a.keyMatch(pub) == nil {
			return d, a.Hash, nil
		}
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return 0, 0, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return 0, 0, fmt.Errorf("unsupported RSA key size %d bits", k.Size()*8)
	}
	return 0, 0, fmt.Errorf("unsupported public key type %T", pub)
}

// VerifyDigest checks a hashedrekord signature: details must be accepted for hashedrekord and name
// pub exactly, digest must have the length of their hash, and sig must verify over digest with
// pub. It is the check the log makes before appending, without naming request fields.
func VerifyDigest(pub crypto.PublicKey, details commonv1.PublicKeyDetails, digest, sig []byte) error {
	a, err := hashedRekordAlgorithm(details)
	if err != nil {
		return err
	}
	if err := a.CheckKey(pub); err != nil {
		return fmt.Errorf("key details %s do not match the key: %w", details, err)
	}
	if len(digest) != a.Hash.Size() {
		return fmt.Errorf("digest is %d bytes, %s needs %d", len(digest), a.Hash, a.Hash.Size())
	}
	return a.VerifyDigest(pub, digest, sig)
}

func rsaBits(bits int) func(crypto.PublicKey) error {
	return func(k crypto.PublicKey) error {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("key is %s, want RSA-%d", describeKey(k), bits)
		}
		if got := rk.Size() * 8; got != bits {
			return fmt.Errorf("key is RSA-%d, want RSA-%d", got, bits)
		}
		return nil
	}
}

func ecCurve(c elliptic.Curve) func(crypto.PublicKey) error {
	return func(k crypto.PublicKey) error {
		ek, ok := k.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("key is %s, want ECDSA %s", describeKey(k), c.Params().Name)
		}
		if ek.Curve != c {
			return fmt.Errorf("key is ECDSA %s, want ECDSA %s", ek.Curve.Params().Name, c.Params().Name)
		}
		return nil
	}
}

func isEd25519(k crypto.PublicKey) error {
	if _, ok := k.(ed25519.PublicKey); !ok {
		return fmt.Errorf("key is %s, want Ed25519", describeKey(k))
	}
	return nil
}

func describeKey(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.Size()*8)
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("an unsupported key type (%T)", k)
	}
}
