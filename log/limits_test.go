package log

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

func TestVerifierSizesAreBounded(t *testing.T) {
	l := &Log{keys: newKeyCache(1 << 20)}
	const hr = "hashedRekordRequestV002"
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	for _, tc := range []struct {
		name   string
		req    func() *rekorpb.CreateEntryRequest
		field  string // "" when the request is accepted
		reason string
	}{
		{name: "a certificate of a Fulcio certificate's size is accepted", req: func() *rekorpb.CreateEntryRequest {
			return p256.request(t, []byte("fulcio-sized"), p256.paddedCertVerifier(t, 2<<10))
		}},
		{name: "a certificate over 16 KiB is refused however well its key signs", req: func() *rekorpb.CreateEntryRequest {
			return p256.request(t, []byte("padded"), p256.paddedCertVerifier(t, 20<<10))
		}, field: hr + ".signature.verifier.x509Certificate.rawBytes", reason: "16384"},
		{name: "a public key over 4 KiB is refused before it is parsed", req: func() *rekorpb.CreateEntryRequest {
			req := p256.request(t, []byte("big key"), p256.pkixVerifier(t))
			req.GetHashedRekordRequestV002().Signature.Verifier.GetPublicKey().RawBytes = make([]byte, 5<<10)
			return req
		}, field: hr + ".signature.verifier.publicKey.rawBytes", reason: "4096"},
		{name: "a signature over 4 KiB is refused before it is checked", req: func() *rekorpb.CreateEntryRequest {
			req := p256.request(t, []byte("big signature"), p256.pkixVerifier(t))
			req.GetHashedRekordRequestV002().Signature.Content = make([]byte, 5<<10)
			return req
		}, field: hr + ".signature.content", reason: "4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := l.Validate(tc.req())
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want it accepted", err)
				}
				return
			}
			var ie *InvalidRequestError
			if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Validate() = %v, want an invalid %s saying %q", err, tc.field, tc.reason)
			}
		})
	}
}

func TestKeyCache(t *testing.T) {
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	t.Run("a key whose signature does not verify is not kept", func(t *testing.T) {
		l := &Log{keys: newKeyCache(1 << 20)}
		req := p256.request(t, []byte("refused"), p256.paddedCertVerifier(t, 8<<10))
		req.GetHashedRekordRequestV002().Digest[0] ^= 1
		if _, _, err := l.Validate(req); err == nil {
			t.Fatal("a signature over another digest was accepted")
		}
		if n := len(l.keys.keys); n != 0 {
			t.Fatalf("the cache keeps %d keys of refused requests", n)
		}
	})
	t.Run("a key that verified is kept under the SHA-256 of its DER", func(t *testing.T) {
		l := &Log{keys: newKeyCache(1 << 20)}
		v := p256.paddedCertVerifier(t, 8<<10)
		if _, _, err := l.Validate(p256.request(t, []byte("accepted"), v)); err != nil {
			t.Fatal(err)
		}
		if len(l.keys.keys) != 1 {
			t.Fatalf("the cache keeps %d keys, want the one that verified", len(l.keys.keys))
		}
		want := keyID{sum: sha256.Sum256(v.GetX509Certificate().GetRawBytes()), isCert: true}
		for id := range l.keys.keys {
			if id != want {
				t.Fatalf("the certificate is filed under %x (certificate: %t), want its DER's SHA-256 %x as a certificate", id.sum, id.isCert, want.sum)
			}
		}
	})
	t.Run("the cache stays within its budget in bytes however many keys verify", func(t *testing.T) {
		const budget = 8 << 10
		l := &Log{keys: newKeyCache(budget)}
		for i := range 50 {
			s := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
			if _, _, err := l.Validate(s.request(t, fmt.Appendf(nil, "key %d", i), s.pkixVerifier(t))); err != nil {
				t.Fatal(err)
			}
		}
		// Each P-256 key costs more than 512 bytes of the budget.
		if n := len(l.keys.keys); n == 0 || n > budget/512 {
			t.Fatalf("the cache keeps %d keys, want between 1 and %d within %d bytes", n, budget/512, budget)
		}
	})
}

// countingHash counts the bytes written to hashes made by a crypto.Hash's registered constructor.
type countingHash struct {
	hash.Hash
	n *int
}

func (c countingHash) Write(p []byte) (int, error) {
	*c.n += len(p)
	return c.Hash.Write(p)
}

func TestDSSEHashesThePAEOncePerHash(t *testing.T) {
	// The hash functions are registered process-wide, so this test does not run in parallel.
	var hashed int
	crypto.RegisterHash(crypto.SHA512, func() hash.Hash { return countingHash{sha512.New(), &hashed} })
	t.Cleanup(func() { crypto.RegisterHash(crypto.SHA512, sha512.New) })

	l := &Log{keys: newKeyCache(1 << 20)}
	var signers []*testSigner
	for range maxDSSEVerifiers {
		signers = append(signers, newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512))
	}
	payload := make([]byte, 256<<10)
	req := dsseRequest(t, payload, signers...)
	// Signatures in the reverse order of their verifiers, so verifiers are tried against many.
	sigs := req.GetDsseRequestV002().GetEnvelope().GetSignatures()
	for i, j := 0, len(sigs)-1; i < j; i, j = i+1, j-1 {
		sigs[i], sigs[j] = sigs[j], sigs[i]
	}
	hashed = 0
	if _, _, err := l.Validate(req); err != nil {
		t.Fatal(err)
	}
	if pae := len(pae(req.GetDsseRequestV002().GetEnvelope().GetPayloadType(), payload)); hashed != pae {
		t.Fatalf("SHA-512 hashed %d bytes for a %d-byte PAE checked by %d verifiers, want the PAE once", hashed, pae, len(signers))
	}
}
