package log

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// algorithm is what one PublicKeyDetails value means for verification: the
// key it demands and the digest it signs.
type algorithm struct {
	details  commonv1.PublicKeyDetails
	hash     crypto.Hash
	hashAlg  commonv1.HashAlgorithm
	keyMatch func(crypto.PublicKey) error
	// prehashed is false only for pure Ed25519, which signs the message itself
	// and so cannot sign a hashedrekord digest.
	prehashed bool
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

// algorithms lists the key details this log accepts: the default client
// signing algorithms of rekor-tiles v2.3.0 (internal/algorithmregistry).
// Unlike rekor-tiles, which only checks that the key and the hash of the
// keyDetails are some permitted pair, the key must be the very key the
// keyDetails names, so the logged keyDetails never misdescribes its key.
var algorithms = map[commonv1.PublicKeyDetails]algorithm{
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256: {hash: crypto.SHA256, hashAlg: commonv1.HashAlgorithm_SHA2_256, keyMatch: rsaBits(2048), prehashed: true},
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256: {hash: crypto.SHA256, hashAlg: commonv1.HashAlgorithm_SHA2_256, keyMatch: rsaBits(3072), prehashed: true},
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256: {hash: crypto.SHA256, hashAlg: commonv1.HashAlgorithm_SHA2_256, keyMatch: rsaBits(4096), prehashed: true},
	commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256:       {hash: crypto.SHA256, hashAlg: commonv1.HashAlgorithm_SHA2_256, keyMatch: ecCurve(elliptic.P256()), prehashed: true},
	commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384:       {hash: crypto.SHA384, hashAlg: commonv1.HashAlgorithm_SHA2_384, keyMatch: ecCurve(elliptic.P384()), prehashed: true},
	commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512:       {hash: crypto.SHA512, hashAlg: commonv1.HashAlgorithm_SHA2_512, keyMatch: ecCurve(elliptic.P521()), prehashed: true},
	commonv1.PublicKeyDetails_PKIX_ED25519_PH:               {hash: crypto.SHA512, hashAlg: commonv1.HashAlgorithm_SHA2_512, keyMatch: isEd25519, prehashed: true},
	// Pure Ed25519 signs whole messages, so it is accepted for DSSE envelopes
	// only (older cosign signs DSSE with it); see lookupAlgorithm.
	commonv1.PublicKeyDetails_PKIX_ED25519: {hash: crypto.SHA512, hashAlg: commonv1.HashAlgorithm_SHA2_512, keyMatch: isEd25519},
}

func init() {
	for d, a := range algorithms {
		a.details = d
		algorithms[d] = a
	}
}

// lookupAlgorithm returns the algorithm for keyDetails, refusing pure Ed25519
// unless the caller signs whole messages (DSSE).
func lookupAlgorithm(field string, d commonv1.PublicKeyDetails, messages bool) (algorithm, error) {
	a, ok := algorithms[d]
	if !ok || (!a.prehashed && !messages) {
		return algorithm{}, invalid(field, "unsupported key details %s: want one of PKIX_RSA_PKCS1V15_{2048,3072,4096}_SHA256, PKIX_ECDSA_P{256_SHA_256,384_SHA_384,521_SHA_512}, PKIX_ED25519_PH", d)
	}
	return a, nil
}

// hashedRekordAlgorithm is the algorithm a hashedrekord with keyDetails d
// signs with: any prehashed one in the table.
func hashedRekordAlgorithm(d commonv1.PublicKeyDetails) (algorithm, error) {
	a, ok := algorithms[d]
	if !ok || !a.prehashed {
		return algorithm{}, fmt.Errorf("key details %s are not accepted for hashedrekord", d)
	}
	return a, nil
}

// HashForKeyDetails is the hash a hashedrekord signer with these key details
// must compute the artifact digest with. Pure Ed25519 is refused: it cannot
// sign a precomputed digest.
func HashForKeyDetails(details commonv1.PublicKeyDetails) (crypto.Hash, error) {
	a, err := hashedRekordAlgorithm(details)
	if err != nil {
		return 0, err
	}
	return a.hash, nil
}

// HashAlgorithmFor is the protobuf-specs HashAlgorithm a digest of hash h is
// recorded as (hashedrekord data.algorithm, a bundle's messageDigest).
func HashAlgorithmFor(h crypto.Hash) (commonv1.HashAlgorithm, error) {
	for _, a := range algorithms {
		if a.hash == h {
			return a.hashAlg, nil
		}
	}
	return commonv1.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED, fmt.Errorf("unsupported digest hash %s", h)
}

// HashFor is the hash a protobuf-specs HashAlgorithm names.
func HashFor(alg commonv1.HashAlgorithm) (crypto.Hash, error) {
	for _, a := range algorithms {
		if a.hashAlg == alg {
			return a.hash, nil
		}
	}
	return 0, fmt.Errorf("unsupported digest algorithm %s", alg)
}

// KeyDetailsFor is what a hashedrekord signer with pub declares: the key
// details naming that exact key and the hash its digests use. Each accepted
// key matches exactly one prehashed entry of the table, so the answer does
// not depend on the map's order.
func KeyDetailsFor(pub crypto.PublicKey) (commonv1.PublicKeyDetails, crypto.Hash, error) {
	for d, a := range algorithms {
		if a.prehashed && a.keyMatch(pub) == nil {
			return d, a.hash, nil
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

// VerifyDigest checks a hashedrekord signature: details must be accepted for
// hashedrekord and name pub exactly, digest must have the length of their
// hash, and sig must verify over digest with pub. It is the check the log
// makes before appending, without naming request fields.
func VerifyDigest(pub crypto.PublicKey, details commonv1.PublicKeyDetails, digest, sig []byte) error {
	a, err := hashedRekordAlgorithm(details)
	if err != nil {
		return err
	}
	if err := a.keyMatch(pub); err != nil {
		return fmt.Errorf("key details %s do not match the key: %w", details, err)
	}
	if len(digest) != a.hash.Size() {
		return fmt.Errorf("digest is %d bytes, %s needs %d", len(digest), a.hash, a.hash.Size())
	}
	return a.verifyDigest(pub, digest, sig)
}

// verifyDigest checks sig over an already computed digest (hashedrekord).
func (a algorithm) verifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, a.hash, digest, sig); err != nil {
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

// verifyMessage checks sig over msg (DSSE PAE), hashing it first as the
// algorithm says.
func (a algorithm) verifyMessage(pub crypto.PublicKey, msg, sig []byte) error {
	if k, ok := pub.(ed25519.PublicKey); ok {
		// rekor-tiles checks DSSE signatures of Ed25519 keys as pure Ed25519
		// whatever the keyDetails say, so that is always accepted; Ed25519ph
		// over SHA-512(PAE) is accepted too when the keyDetails ask for it.
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
		if !a.prehashed {
			return errors.New("Ed25519 signature does not verify")
		}
	}
	var digest []byte
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		digest = d[:]
	default:
		d := sha512.Sum512(msg)
		digest = d[:]
	}
	return a.verifyDigest(pub, digest, sig)
}

// keyCache remembers parsed verifiers by their DER bytes: signers reuse one
// key or certificate for many entries, and parsing (point decompression, RSA
// checks, certificate decoding) costs a sizeable part of a verification.
type keyCache struct {
	mu   sync.RWMutex
	keys map[string]crypto.PublicKey
	max  int
}

func newKeyCache(max int) *keyCache {
	return &keyCache{keys: make(map[string]crypto.PublicKey), max: max}
}

// publicKey returns the key in v, parsing the PKIX public key or X.509
// certificate DER. prefix is the verifier's field path for errors.
func (c *keyCache) publicKey(prefix string, v *rekorpb.Verifier) (crypto.PublicKey, error) {
	var raw []byte
	var isCert bool
	var field string
	switch {
	case v.GetPublicKey() != nil:
		raw, field = v.GetPublicKey().GetRawBytes(), prefix+".publicKey.rawBytes"
	case v.GetX509Certificate() != nil:
		raw, field, isCert = v.GetX509Certificate().GetRawBytes(), prefix+".x509Certificate.rawBytes", true
	default:
		return nil, invalid(prefix, "missing publicKey or x509Certificate")
	}
	if len(raw) == 0 {
		return nil, invalid(field, "missing")
	}
	// Certificates and keys share the map; the type byte keeps a DER blob that
	// parses as both from being confused.
	ck := string(append([]byte{boolByte(isCert)}, raw...))
	c.mu.RLock()
	k, ok := c.keys[ck]
	c.mu.RUnlock()
	if ok {
		return k, nil
	}
	// The parsers may return keys that alias their input (Ed25519 keys do), and
	// a cached key must not change if the caller reuses its buffer.
	raw = bytes.Clone(raw)
	if isCert {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, invalid(field, "not a DER X.509 certificate: %w", err)
		}
		// ParseCertificate accepts a key algorithm it does not know and leaves PublicKey nil.
		if cert.PublicKey == nil {
			return nil, invalid(field, "certificate key algorithm %s is not supported", cert.PublicKeyAlgorithm)
		}
		k = cert.PublicKey
	} else {
		var err error
		if k, err = x509.ParsePKIXPublicKey(raw); err != nil {
			return nil, invalid(field, "not a DER PKIX public key: %w", err)
		}
	}
	c.mu.Lock()
	if len(c.keys) >= c.max {
		// Dropping everything is crude but bounded and cheap; a working set
		// larger than the cache only costs reparsing.
		clear(c.keys)
	}
	c.keys[ck] = k
	c.mu.Unlock()
	return k, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
