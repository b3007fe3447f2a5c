package log

// Request signatures: the check every CreateEntryRequest passes before anything is appended. The
// key details and their hashes are api/rekor's table; this file names the failing request field
// and keeps parsed keys.

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"sync"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/rekor"
)

// lookupAlgorithm returns the algorithm of keyDetails d from the one table in api/rekor,
// refusing pure Ed25519 unless the caller signs whole messages (DSSE). field names the request
// field for the error.
func lookupAlgorithm(field string, d commonv1.PublicKeyDetails, messages bool) (rekor.Algorithm, error) {
	a, ok := rekor.AlgorithmFor(d)
	if !ok || (!a.Prehashed && !messages) {
		return rekor.Algorithm{}, invalid(field, "unsupported key details %s: want one of PKIX_RSA_PKCS1V15_{2048,3072,4096}_SHA256, PKIX_ECDSA_P{256_SHA_256,384_SHA_384,521_SHA_512}, PKIX_ED25519_PH", d)
	}
	return a, nil
}

// verifyMessage checks sig over msg (a DSSE PAE), hashing it first as a says.
func verifyMessage(a rekor.Algorithm, pub crypto.PublicKey, msg, sig []byte) error {
	if k, ok := pub.(ed25519.PublicKey); ok {
		// rekor-tiles checks DSSE signatures of Ed25519 keys as pure Ed25519 whatever the
		// keyDetails say, so that is always accepted; Ed25519ph over SHA-512(PAE) is accepted
		// too when the keyDetails ask for it.
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
		if !a.Prehashed {
			return errors.New("Ed25519 signature does not verify")
		}
	}
	h := a.Hash.New()
	h.Write(msg)
	return a.VerifyDigest(pub, h.Sum(nil), sig)
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
