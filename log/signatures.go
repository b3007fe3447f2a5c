package log

// Request signatures: the check every CreateEntryRequest passes before anything is appended. The
// key details and their hashes are api/rekor's table; this file names the failing request field,
// bounds what a verifier may be, and keeps the keys that signed.

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"sync"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/log/admission"
)

// Bounds on the parts of a verifier, far above any real one and far below what would let a
// request pin memory or CPU: nothing larger is parsed.
const (
	// MaxPublicKeyBytes bounds a PKIX public key. The largest accepted, RSA-4096, is 550 bytes of
	// DER.
	MaxPublicKeyBytes = 4 << 10
	// MaxCertificateBytes bounds an X.509 certificate. Fulcio's leaf certificates are 0.7–1.7 KB
	// of DER (a GitHub Actions one, with every workflow claim as an extension, is the largest);
	// 16 KiB leaves room for ten times that, and a hashedrekord leaf with it stays under
	// MaxLeafBytes.
	MaxCertificateBytes = 16 << 10
	// MaxSignatureBytes bounds a signature. The largest accepted, RSA-4096 PKCS#1 v1.5, is 512
	// bytes.
	MaxSignatureBytes = 4 << 10
)

// keyCost is what one cached key costs beyond its PKIX DER: the map entry, the interface, the
// parsed integers.
const keyCost = 512

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

// checkSignatureSize refuses a signature larger than any accepted algorithm makes.
func checkSignatureSize(field string, sig []byte) error {
	if len(sig) > MaxSignatureBytes {
		return invalid(field, "%d bytes; no accepted algorithm makes a signature over %d bytes", len(sig), MaxSignatureBytes)
	}
	return nil
}

// messageDigests hashes one message once per hash function, however many verifier and signature
// pairs are tried against it: a DSSE PAE can be megabytes, and up to ten verifiers and ten
// signatures would otherwise hash it a hundred times.
type messageDigests struct {
	msg []byte
	sum map[crypto.Hash][]byte
}

func newMessageDigests(msg []byte) *messageDigests {
	return &messageDigests{msg: msg, sum: make(map[crypto.Hash][]byte, 1)}
}

func (m *messageDigests) digest(h crypto.Hash) []byte {
	d, ok := m.sum[h]
	if !ok {
		hh := h.New()
		hh.Write(m.msg)
		d = hh.Sum(nil)
		m.sum[h] = d
	}
	return d
}

// verifyMessage checks sig over m's message (a DSSE PAE), with the digest a says.
func verifyMessage(a rekor.Algorithm, pub crypto.PublicKey, m *messageDigests, sig []byte) error {
	if k, ok := pub.(ed25519.PublicKey); ok {
		// rekor-tiles checks DSSE signatures of Ed25519 keys as pure Ed25519 whatever the
		// keyDetails say, so that is always accepted; Ed25519ph over SHA-512(PAE) is accepted
		// too when the keyDetails ask for it. Pure Ed25519 hashes the key and signature with the
		// message, so that hash cannot be shared.
		if ed25519.Verify(k, m.msg, sig) {
			return nil
		}
		if !a.Prehashed {
			return errors.New("Ed25519 signature does not verify")
		}
	}
	return a.VerifyDigest(pub, m.digest(a.Hash), sig)
}

// verifierKey is the key of a request's verifier, and where it goes in the cache once a
// signature has verified with it.
type verifierKey struct {
	pub  crypto.PublicKey
	id   keyID
	cost int64
	// signer names who signs with the key, for rate limits (admission.KeySigner,
	// admission.CertificateSigner).
	signer string
	// cert is the parsed certificate of a certificate verifier, until it is admitted; nil for a
	// key from the cache, which holds only admitted keys.
	cert *x509.Certificate
	// isCert says the verifier is a certificate rather than a bare public key.
	isCert bool
	// cached says the key came from the cache, so remember has nothing to add.
	cached bool
	// indexKeys are the search keys of the signer (see EntryKeys), kept with the key so that
	// no write parses its certificate twice.
	indexKeys [][]byte
}

// keyCache remembers the keys that verified a signature, by the SHA-256 of their DER: signers reuse
// one key or certificate for many entries, and parsing (point decompression, RSA checks,
// certificate decoding, and the certificate's chain to a trusted CA) costs a sizeable part of a
// verification. Only keys that verified (and passed admission) are kept, so refused requests cost
// nothing after they are answered, and a cached certificate needs no second chain check; the
// cache is bounded in bytes.
type keyCache struct {
	mu    sync.RWMutex
	keys  map[keyID]cachedKey
	bytes int64
	max   int64
}

// keyID files a verifier in the cache: the SHA-256 of its DER, and whether that DER is a
// certificate, so that a blob that parses as both a certificate and a key is never confused.
type keyID struct {
	sum    [sha256.Size]byte
	isCert bool
}

type cachedKey struct {
	pub       crypto.PublicKey
	cost      int64
	signer    string
	indexKeys [][]byte
}

func newKeyCache(maxBytes int64) *keyCache {
	return &keyCache{keys: make(map[keyID]cachedKey), max: maxBytes}
}

// publicKey returns the key in v, from the cache or parsed from its PKIX public key or X.509
// certificate DER, which must be within MaxPublicKeyBytes or MaxCertificateBytes. prefix is the
// verifier's field path for errors. The key is not cached: call remember once it has verified.
func (c *keyCache) publicKey(prefix string, v *rekorpb.Verifier) (*verifierKey, error) {
	var raw []byte
	var isCert bool
	var field string
	var limit int
	switch {
	case v.GetPublicKey() != nil:
		raw, field, limit = v.GetPublicKey().GetRawBytes(), prefix+".publicKey.rawBytes", MaxPublicKeyBytes
	case v.GetX509Certificate() != nil:
		raw, field, limit, isCert = v.GetX509Certificate().GetRawBytes(), prefix+".x509Certificate.rawBytes", MaxCertificateBytes, true
	default:
		return nil, invalid(prefix, "missing publicKey or x509Certificate")
	}
	if len(raw) == 0 {
		return nil, invalid(field, "missing")
	}
	if len(raw) > limit {
		return nil, invalid(field, "%d bytes, more than the %d bytes any real one needs", len(raw), limit)
	}
	// Every write looks its key up here; sha256.Sum256 hashes on the stack, where a streaming
	// hasher for the type byte and the DER was a heap allocation per write.
	k := &verifierKey{isCert: isCert, id: keyID{sum: sha256.Sum256(raw), isCert: isCert}}
	c.mu.RLock()
	hit, ok := c.keys[k.id]
	c.mu.RUnlock()
	if ok {
		k.pub, k.cost, k.signer, k.indexKeys, k.cached = hit.pub, hit.cost, hit.signer, hit.indexKeys, true
		return k, nil
	}
	var spki []byte
	if isCert {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, invalid(field, "not a DER X.509 certificate: %w", err)
		}
		// ParseCertificate accepts a key algorithm it does not know and leaves PublicKey nil.
		if cert.PublicKey == nil {
			return nil, invalid(field, "certificate key algorithm %s is not supported", cert.PublicKeyAlgorithm)
		}
		k.pub, spki, k.cert, k.signer = cert.PublicKey, cert.RawSubjectPublicKeyInfo, cert, admission.CertificateSigner(cert)
		k.indexKeys = certificateIndexKeys(rekor.CertificateIdentityOf(cert))
	} else {
		var err error
		if k.pub, err = x509.ParsePKIXPublicKey(raw); err != nil {
			return nil, invalid(field, "not a DER PKIX public key: %w", err)
		}
		spki, k.signer = raw, admission.KeySigner(raw)
		k.indexKeys = publicKeyIndexKeys(raw)
	}
	// Ed25519 keys alias the DER they were parsed from: a cached one must not keep the request's
	// buffer (a whole certificate) alive, nor change if the caller reuses it.
	if ed, ok := k.pub.(ed25519.PublicKey); ok {
		k.pub = ed25519.PublicKey(bytes.Clone(ed))
	}
	k.cost = int64(len(spki)+len(k.signer)+keysBytes(k.indexKeys)) + keyCost
	return k, nil
}

// remember caches k, a key that has just verified a signature and passed admission, evicting others to stay within the
// cache's byte budget. A working set larger than the cache only costs reparsing.
func (c *keyCache) remember(k *verifierKey) {
	// Nearly every write's key is a hit; taking the write lock for it anyway made every write
	// wait for, and wake, the others reading the cache.
	if k.cached {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[k.id]; ok || k.cost > c.max {
		return
	}
	for id, e := range c.keys {
		if c.bytes+k.cost <= c.max {
			break
		}
		delete(c.keys, id)
		c.bytes -= e.cost
	}
	c.keys[k.id] = cachedKey{pub: k.pub, cost: k.cost, signer: k.signer, indexKeys: k.indexKeys}
	c.bytes += k.cost
}
