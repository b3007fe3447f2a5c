package client

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	commonpb "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// verifyWithStdlib checks a hashedrekord request the way a log must, using only the standard
// library: parse the PKIX key from the verifier, then verify the signature over the digest.
func verifyWithStdlib(hr *pb.HashedRekordRequestV002) error {
	v := hr.GetSignature().GetVerifier()
	var pub crypto.PublicKey
	switch {
	case v.GetPublicKey() != nil:
		k, err := x509.ParsePKIXPublicKey(v.GetPublicKey().GetRawBytes())
		if err != nil {
			return fmt.Errorf("parsing public key: %w", err)
		}
		pub = k
	case v.GetX509Certificate() != nil:
		cert, err := x509.ParseCertificate(v.GetX509Certificate().GetRawBytes())
		if err != nil {
			return fmt.Errorf("parsing certificate: %w", err)
		}
		pub = cert.PublicKey
	default:
		return errors.New("no verifier")
	}
	sig, digest := hr.GetSignature().GetContent(), hr.GetDigest()
	switch v.GetKeyDetails() {
	case commonpb.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, commonpb.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, commonpb.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
	case commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256, commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("key details say RSA, key is not")
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig); err != nil {
			return fmt.Errorf("RSA signature does not verify: %w", err)
		}
	case commonpb.PublicKeyDetails_PKIX_ED25519_PH:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return errors.New("key details say Ed25519ph, key is not Ed25519")
		}
		if err := ed25519.VerifyWithOptions(k, digest, sig, &ed25519.Options{Hash: crypto.SHA512}); err != nil {
			return fmt.Errorf("Ed25519ph signature does not verify: %w", err)
		}
	default:
		return fmt.Errorf("unexpected key details %s", v.GetKeyDetails())
	}
	return nil
}

// roundTrip encodes req as the client sends it and decodes it as a strict gateway would
// (unknown fields rejected).
func roundTrip(t *testing.T, req *pb.CreateEntryRequest) *pb.HashedRekordRequestV002 {
	t.Helper()
	body, err := MarshalCreateEntryRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	var got pb.CreateEntryRequest
	if err := protojson.Unmarshal(body, &got); err != nil {
		t.Fatalf("server-side decoding of %s: %v", body, err)
	}
	return got.GetHashedRekordRequestV002()
}

func TestNewHashedRekordRequest(t *testing.T) {
	artifact := []byte("an artifact worth logging\n")
	tests := []struct {
		keyType     KeyType
		wantDetails commonpb.PublicKeyDetails
		wantHash    crypto.Hash
	}{
		{KeyECDSAP256, commonpb.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, crypto.SHA256},
		{KeyECDSAP384, commonpb.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, crypto.SHA384},
		{KeyECDSAP521, commonpb.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512, crypto.SHA512},
		{KeyRSA2048, commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, crypto.SHA256},
		{KeyEd25519ph, commonpb.PublicKeyDetails_PKIX_ED25519_PH, crypto.SHA512},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("a %s request verifies with the standard library", tc.keyType), func(t *testing.T) {
			signer, err := GenerateKey(tc.keyType)
			if err != nil {
				t.Fatal(err)
			}
			alg, err := AlgorithmFor(signer.Public())
			if err != nil {
				t.Fatal(err)
			}
			if alg.KeyDetails != tc.wantDetails || alg.Hash != tc.wantHash {
				t.Fatalf("AlgorithmFor = %s/%s, want %s/%s", alg.KeyDetails, alg.Hash, tc.wantDetails, tc.wantHash)
			}
			digest, err := alg.Digest(bytes.NewReader(artifact))
			if err != nil {
				t.Fatal(err)
			}
			h := tc.wantHash.New()
			h.Write(artifact)
			if !bytes.Equal(digest, h.Sum(nil)) {
				t.Fatalf("Digest is not the %s of the artifact", tc.wantHash)
			}
			req, err := NewHashedRekordRequest(signer, digest)
			if err != nil {
				t.Fatal(err)
			}
			hr := roundTrip(t, req)
			if got := hr.GetSignature().GetVerifier().GetKeyDetails(); got != tc.wantDetails {
				t.Errorf("key details %s, want %s", got, tc.wantDetails)
			}
			if !bytes.Equal(hr.GetDigest(), digest) {
				t.Errorf("digest changed in transit")
			}
			if err := verifyWithStdlib(hr); err != nil {
				t.Fatalf("signature: %v", err)
			}
			// The same signature must not verify for another digest, or the check above proves nothing.
			other := bytes.Clone(digest)
			other[0] ^= 1
			hr.Digest = other
			if err := verifyWithStdlib(hr); err == nil {
				t.Fatal("signature verified over an altered digest")
			}
		})
	}
}

func TestNewHashedRekordRequestRejectsBadInput(t *testing.T) {
	p256, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		signer  crypto.Signer
		digest  []byte
		wantErr string
	}{
		{"a SHA-512 digest for a P-256 key is refused", p256, make([]byte, 64), "needs 32"},
		{"an empty digest is refused", p256, nil, "needs 32"},
		{"an RSA 1024 key is refused", rsa1024, make([]byte, 32), "unsupported RSA key size 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHashedRekordRequest(tc.signer, tc.digest)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestWithCertificateNamesTheSignerByCertificate(t *testing.T) {
	signer, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	req, err := NewHashedRekordRequest(signer, digest[:], WithCertificate(der))
	if err != nil {
		t.Fatal(err)
	}
	hr := roundTrip(t, req)
	if hr.GetSignature().GetVerifier().GetPublicKey() != nil {
		t.Fatal("verifier holds a public key, want only the certificate")
	}
	if !bytes.Equal(hr.GetSignature().GetVerifier().GetX509Certificate().GetRawBytes(), der) {
		t.Fatal("certificate not carried as given")
	}
	if err := verifyWithStdlib(hr); err != nil {
		t.Fatal(err)
	}
}

func TestRecordedRequestAcceptedByRekorTilesVerifies(t *testing.T) {
	raw, err := os.ReadFile("testdata/rekor-tiles-v2.3.0/request.json")
	if err != nil {
		t.Fatal(err)
	}
	var req pb.CreateEntryRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	hr := req.GetHashedRekordRequestV002()
	if err := verifyWithStdlib(hr); err != nil {
		t.Fatalf("the request rekor-tiles accepted does not verify: %v", err)
	}
}

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in      string
		want    KeyType
		wantErr bool
	}{
		{"ecdsa-p256", KeyECDSAP256, false},
		{"ECDSA-P384", KeyECDSAP384, false},
		{"ed25519ph", KeyEd25519ph, false},
		{"rsa-4096", KeyRSA4096, false},
		{"ed25519", "", true},
		{"", "", true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q parses as %q", tc.in, tc.want), func(t *testing.T) {
			got, err := ParseKeyType(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseKeyType(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

func FuzzParseKeyType(f *testing.F) {
	for _, kt := range KeyTypes() {
		f.Add(string(kt))
	}
	f.Add("ECDSA-P256 ")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		kt, err := ParseKeyType(s)
		if err != nil {
			if kt != "" || !strings.Contains(err.Error(), "unknown key type") {
				t.Fatalf("ParseKeyType(%q) = %q, %v", s, kt, err)
			}
			return
		}
		if !strings.EqualFold(s, string(kt)) {
			t.Fatalf("ParseKeyType(%q) = %q", s, kt)
		}
	})
}
