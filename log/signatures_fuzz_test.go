package log

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// FuzzVerifierKey feeds arbitrary DER to the verifier-key parser behind both write request kinds
// (keyCache.publicKey). Errors must be *InvalidRequestError naming the field; an accepted blob must
// give the same key from the cache as from a fresh parse, whatever the cache has seen before (every
// accepted key is remembered, as a verified one would be), the cache must stay within its byte
// budget, and the key-details check must decide on it without panicking.
func FuzzVerifierKey(f *testing.F) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	edDER, err := x509.MarshalPKIXPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fuzz"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<32, 0),
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ecDER, false, int32(commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256))
	f.Add(edDER, false, int32(commonv1.PublicKeyDetails_PKIX_ED25519_PH))
	f.Add(edDER, false, int32(commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384))
	f.Add(certDER, true, int32(commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256))
	f.Add(certDER, false, int32(commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256))
	f.Add([]byte{0x30, 0x00}, true, int32(0))

	// A cache of about two keys shared across inputs, so a hit from an earlier input is checked
	// against a fresh parse of this one, and evictions happen.
	shared := newKeyCache(2 * (keyCost + 600))
	f.Fuzz(func(t *testing.T, der []byte, isCert bool, details int32) {
		v := &rekorpb.Verifier{KeyDetails: commonv1.PublicKeyDetails(details)}
		if isCert {
			v.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: der}}
		} else {
			v.Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}}
		}
		fresh, ferr := newKeyCache(1<<20).publicKey("verifier", v)
		cached, cerr := shared.publicKey("verifier", v)
		if (ferr == nil) != (cerr == nil) {
			t.Fatalf("fresh parse error %v, cached parse error %v", ferr, cerr)
		}
		if ferr != nil {
			var ie *InvalidRequestError
			if !errors.As(ferr, &ie) || ie.Field == "" {
				t.Fatalf("error %T %v is not an *InvalidRequestError with a field", ferr, ferr)
			}
			return
		}
		eq, ok := fresh.pub.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(cached.pub) || fresh.id != cached.id {
			t.Fatalf("cache returned %T, fresh parse %T, not equal", cached.pub, fresh.pub)
		}
		shared.remember(cached)
		if shared.bytes > shared.max {
			t.Fatalf("cache holds %d bytes, budget %d", shared.bytes, shared.max)
		}
		if a, err := lookupAlgorithm("verifier.keyDetails", v.KeyDetails, true); err == nil {
			if err := a.CheckKey(fresh.pub); err != nil && err.Error() == "" {
				t.Fatal("a key refused for its key details gets no reason")
			}
		}
	})
}
