package log

import (
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func loadVector(t *testing.T, name string) *rekorpb.CreateEntryRequest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(hashedRekordVectors, name+".request.json"))
	if err != nil {
		t.Fatal(err)
	}
	req := &rekorpb.CreateEntryRequest{}
	if err := protojson.Unmarshal(raw, req); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestValidateHashedRekord(t *testing.T) {
	l := &Log{keys: newKeyCache(1 << 20)}
	const hr = "hashedRekordRequestV002"
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	other := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	ed := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ED25519_PH)
	cases := []struct {
		name   string
		vector string // base request; empty: a fresh P-256 request
		mod    func(*rekorpb.HashedRekordRequestV002)
		field  string
		reason string // a fragment the message must contain
		// rekorAccepts marks the requests rekor-tiles v2.3.0 lets through and
		// this log refuses: a key that is not the one keyDetails names but
		// forms some permitted key/hash pair with its hash.
		rekorAccepts bool
		cause        error // an error the refusal must wrap, if set
	}{
		{name: "a request without a spec names the spec", field: "spec", reason: "missing"},
		{name: "a missing digest is named", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Digest = nil }, field: hr + ".digest"},
		{name: "a missing signature is named", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Signature = nil }, field: hr + ".signature"},
		{name: "empty signature content is named", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Signature.Content = nil }, field: hr + ".signature.content"},
		{name: "a missing verifier is named", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Signature.Verifier = nil }, field: hr + ".signature.verifier"},
		{name: "a verifier without key or certificate is named", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Signature.Verifier.Verifier = nil }, field: hr + ".signature.verifier"},
		{name: "empty public key bytes are named", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{}}
		}, field: hr + ".signature.verifier.publicKey.rawBytes"},
		{name: "garbage public key bytes are named", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: []byte{0x30, 1, 2}}}
		}, field: hr + ".signature.verifier.publicKey.rawBytes", reason: "PKIX"},
		{name: "garbage certificate bytes are named", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: []byte("not a cert")}}
		}, field: hr + ".signature.verifier.x509Certificate.rawBytes", reason: "X.509"},
		{name: "unspecified key details are named", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PUBLIC_KEY_DETAILS_UNSPECIFIED
		}, field: hr + ".signature.verifier.keyDetails", reason: "unsupported"},
		{name: "pure Ed25519 cannot sign a digest", vector: "pkix_ed25519_ph", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ED25519
		}, field: hr + ".signature.verifier.keyDetails", reason: "unsupported"},
		{name: "a P-256 key declared as P-384 is a key/hash mismatch", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		}, field: hr + ".signature.verifier.keyDetails", reason: "ECDSA P-256, want ECDSA P-384"},
		{name: "an RSA-2048 key declared as RSA-3072 is a mismatch", vector: "pkix_rsa_pkcs1v15_2048_sha256", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256
		}, field: hr + ".signature.verifier.keyDetails", reason: "RSA-2048, want RSA-3072", rekorAccepts: true},
		{name: "an RSA key declared as ECDSA is a mismatch rekor-tiles would let through", vector: "pkix_rsa_pkcs1v15_2048_sha256", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
		}, field: hr + ".signature.verifier.keyDetails", reason: "RSA-2048, want ECDSA P-256", rekorAccepts: true},
		{name: "an Ed25519 key declared as ECDSA is a mismatch", vector: "pkix_ed25519_ph", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512
		}, field: hr + ".signature.verifier.keyDetails", reason: "Ed25519", rekorAccepts: true},
		{name: "an ECDSA key declared as Ed25519ph is a mismatch", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ED25519_PH
		}, field: hr + ".signature.verifier.keyDetails", reason: "want Ed25519"},
		{name: "a SHA-384 digest for a SHA-256 key has the wrong length", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Digest = make([]byte, 48) }, field: hr + ".digest", reason: "length 48"},
		{name: "a truncated digest has the wrong length", vector: "pkix_ecdsa_p521_sha_512", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Digest = r.Digest[:32] }, field: hr + ".digest", reason: "64-byte"},
		{name: "a changed digest fails the signature", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Digest[0] ^= 1 }, field: hr + ".signature.content", reason: "does not verify"},
		{name: "a changed signature fails", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Signature.Content[10] ^= 1 }, field: hr + ".signature.content"},
		{name: "an RSA signature with a flipped bit fails", vector: "pkix_rsa_pkcs1v15_4096_sha256", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Signature.Content[100] ^= 1 }, field: hr + ".signature.content", cause: rsa.ErrVerification},
		{name: "an Ed25519ph signature over another digest fails", vector: "pkix_ed25519_ph", mod: func(r *rekorpb.HashedRekordRequestV002) { r.Digest[5] ^= 1 }, field: hr + ".signature.content"},
		{name: "a signature by another key fails", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Content = other.signDigest(t, r.Digest)
		}, field: hr + ".signature.content"},
		{name: "a certificate whose key did not sign fails", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier = other.certVerifier(t)
		}, field: hr + ".signature.content"},
		{name: "a certificate of another key type is a mismatch", mod: func(r *rekorpb.HashedRekordRequestV002) {
			r.Signature.Verifier = ed.certVerifier(t)
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
		}, field: hr + ".signature.verifier.keyDetails"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req *rekorpb.CreateEntryRequest
			switch {
			case tc.mod == nil:
				req = &rekorpb.CreateEntryRequest{}
			case tc.vector != "":
				req = loadVector(t, tc.vector)
			default:
				req = p256.request(t, []byte(tc.name), p256.pkixVerifier(t))
			}
			if tc.mod != nil {
				if _, _, err := l.Validate(proto.Clone(req).(*rekorpb.CreateEntryRequest)); err != nil {
					t.Fatalf("the unmodified request fails: %v", err)
				}
				tc.mod(req.GetHashedRekordRequestV002())
			}
			if got := rekorTilesAccepts(t, req); got != tc.rekorAccepts {
				t.Errorf("rekor-tiles accepts the request: %v, want %v", got, tc.rekorAccepts)
			}
			_, _, err := l.Validate(req)
			var ie *InvalidRequestError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate() = %v, want *InvalidRequestError", err)
			}
			if ie.Field != tc.field {
				t.Errorf("error names %q (%v), want %q", ie.Field, err, tc.field)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not wrap %v", err, tc.cause)
			}
			if !strings.Contains(err.Error(), ie.Field) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("message %q lacks the field or %q", err, tc.reason)
			}
		})
	}
	t.Run("a valid request signed with a certificate is accepted", func(t *testing.T) {
		if _, _, err := l.Validate(p256.request(t, []byte("cert"), p256.certVerifier(t))); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseDigest(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a lowercase sha256 digest is accepted", "sha256:" + strings.Repeat("ab", 32), "sha256:" + strings.Repeat("ab", 32)},
		{"uppercase hex is lowercased", "sha256:" + strings.Repeat("AB", 32), "sha256:" + strings.Repeat("ab", 32)},
		{"a sha512 digest is accepted", "sha512:" + strings.Repeat("01", 64), "sha512:" + strings.Repeat("01", 64)},
		{"a missing algorithm is refused", strings.Repeat("ab", 32), ""},
		{"an unknown algorithm is refused", "md5:" + strings.Repeat("ab", 16), ""},
		{"a short digest is refused", "sha256:abcd", ""},
		{"non-hex digits are refused", "sha256:" + strings.Repeat("zz", 32), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDigest(tc.in)
			if tc.want == "" {
				var ie *InvalidRequestError
				if !errors.As(err, &ie) || ie.Field != "digest" {
					t.Fatalf("ParseDigest(%q) = %q, %v; want an invalid digest error", tc.in, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("ParseDigest(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
