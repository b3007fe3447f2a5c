package rekor

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// TestHashedRekordBodyIsCanonicalForAnyInput checks the exported leaf builder against protojson +
// JCS both for inputs the log accepts (the hand-written path) and for inputs it would refuse (the
// general path), so verifiers rebuilding a body from a hostile bundle get the canonical form too.
func TestHashedRekordBodyIsCanonicalForAnyInput(t *testing.T) {
	pk := func(raw []byte, kd commonv1.PublicKeyDetails) *rekorpb.Signature {
		return &rekorpb.Signature{Content: []byte("sig"), Verifier: &rekorpb.Verifier{
			Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: raw}}, KeyDetails: kd}}
	}
	digest := bytes.Repeat([]byte{7}, 32)
	p256 := commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
	sha256Alg := commonv1.HashAlgorithm_SHA2_256
	tests := []struct {
		name   string
		digest []byte
		alg    commonv1.HashAlgorithm
		sig    *rekorpb.Signature
		fast   bool
	}{
		{"a request the log accepts takes the hand-written path", digest, sha256Alg, pk([]byte("key"), p256), true},
		{"a certificate verifier takes the hand-written path", digest, sha256Alg, &rekorpb.Signature{Content: []byte("s"), Verifier: &rekorpb.Verifier{
			Verifier: &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: []byte("cert")}}, KeyDetails: p256}}, true},
		{"an empty digest is omitted as protojson omits it", nil, sha256Alg, pk([]byte("key"), p256), false},
		{"unspecified key details are omitted", digest, sha256Alg, pk([]byte("key"), 0), false},
		{"an unnamed hash algorithm is written as a number", digest, commonv1.HashAlgorithm(999), pk([]byte("key"), p256), false},
		{"an empty key is written as an empty object", digest, sha256Alg, pk(nil, p256), false},
		{"a missing verifier is omitted", digest, sha256Alg, &rekorpb.Signature{Content: []byte("sig")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fastBodyFits(tc.digest, tc.alg, tc.sig); got != tc.fast {
				t.Errorf("fastBodyFits = %v, want %v", got, tc.fast)
			}
			got, err := HashedRekordBody(tc.digest, tc.alg, tc.sig)
			if err != nil {
				t.Fatal(err)
			}
			want, err := CanonicalEntry(&rekorpb.Entry{Kind: KindHashedRekord, ApiVersion: APIVersion, Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
				Data: &commonv1.HashOutput{Algorithm: tc.alg, Digest: tc.digest}, Signature: tc.sig}}}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("HashedRekordBody\n%s\nprotojson + JCS\n%s", got, want)
			}
		})
	}
}

// TestVerifyDigestEnforcesThePairing checks the exported hashedrekord check other packages use: the
// key must be the one the key details name, the digest must have their hash's length, and the
// signature must verify.
func TestVerifyDigestEnforcesThePairing(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("an artifact"))
	ecSig, err := ecdsa.SignASN1(rand.Reader, ec, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	d512 := crypto.SHA512.New()
	d512.Write([]byte("an artifact"))
	digest512 := d512.Sum(nil)
	edSig, err := edPriv.Sign(rand.Reader, digest512, &ed25519.Options{Hash: crypto.SHA512})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     crypto.PublicKey
		details commonv1.PublicKeyDetails
		digest  []byte
		sig     []byte
		wantErr string
	}{
		{"a P-256 signature with matching details verifies", &ec.PublicKey, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, digest[:], ecSig, ""},
		{"an Ed25519ph signature verifies", edPub, commonv1.PublicKeyDetails_PKIX_ED25519_PH, digest512, edSig, ""},
		{"a P-256 key under P-384 details is refused", &ec.PublicKey, commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, digest[:], ecSig, "do not match the key"},
		{"pure Ed25519 details are refused for hashedrekord", edPub, commonv1.PublicKeyDetails_PKIX_ED25519, digest512, edSig, "not accepted for hashedrekord"},
		{"a short digest is refused", &ec.PublicKey, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, digest[:31], ecSig, "needs 32"},
		{"a signature over another digest is refused", &ec.PublicKey, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, make([]byte, 32), ecSig, "does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyDigest(tc.pub, tc.details, tc.digest, tc.sig)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("VerifyDigest: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("VerifyDigest error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	for _, k := range []crypto.PublicKey{&ec.PublicKey, edPub} {
		details, h, err := KeyDetailsFor(k)
		if err != nil {
			t.Fatal(err)
		}
		if want, err := HashForKeyDetails(details); err != nil || want != h {
			t.Errorf("KeyDetailsFor gives %s/%s, HashForKeyDetails %s (%v)", details, h, want, err)
		}
		alg, err := HashAlgorithmFor(h)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := HashFor(alg); err != nil || back != h {
			t.Errorf("HashFor(HashAlgorithmFor(%s)) = %s, %v", h, back, err)
		}
	}
}
