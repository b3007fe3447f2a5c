package rekor

import (
	"bytes"
	"crypto"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore/pkg/signature"
)

func TestDigestText(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		alg     commonv1.HashAlgorithm
		digest  []byte
		wantErr string
	}{
		{"a lowercase sha256 digest is read", "sha256:" + strings.Repeat("ab", 32), commonv1.HashAlgorithm_SHA2_256, bytes.Repeat([]byte{0xab}, 32), ""},
		{"uppercase hex is read", "sha256:" + strings.Repeat("AB", 32), commonv1.HashAlgorithm_SHA2_256, bytes.Repeat([]byte{0xab}, 32), ""},
		{"a sha384 digest is read", "sha384:" + strings.Repeat("01", 48), commonv1.HashAlgorithm_SHA2_384, bytes.Repeat([]byte{1}, 48), ""},
		{"a sha512 digest is read", "sha512:" + strings.Repeat("01", 64), commonv1.HashAlgorithm_SHA2_512, bytes.Repeat([]byte{1}, 64), ""},
		{"a missing algorithm is refused", strings.Repeat("ab", 32), 0, nil, "not ALGORITHM:HEX"},
		{"an unknown algorithm is refused", "md5:" + strings.Repeat("ab", 16), 0, nil, "unsupported algorithm"},
		{"a digest of another length is refused", "sha256:abcd", 0, nil, "has 4 hex digits, want 64"},
		{"non-hex digits are refused", "sha256:" + strings.Repeat("zz", 32), 0, nil, "not hexadecimal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alg, d, err := ParseDigest(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseDigest(%q) = %s %x, %v; want an error containing %q", tc.in, alg, d, err, tc.wantErr)
				}
				return
			}
			if err != nil || alg != tc.alg || !bytes.Equal(d, tc.digest) {
				t.Fatalf("ParseDigest(%q) = %s %x, %v; want %s %x", tc.in, alg, d, err, tc.alg, tc.digest)
			}
			text, err := FormatDigest(alg, d)
			if err != nil || text != strings.ToLower(tc.in) {
				t.Fatalf("FormatDigest = %q, %v; want %q", text, err, strings.ToLower(tc.in))
			}
		})
	}
	t.Run("a digest of the wrong length is not written", func(t *testing.T) {
		if s, err := FormatDigest(commonv1.HashAlgorithm_SHA2_384, make([]byte, 32)); err == nil {
			t.Fatalf("FormatDigest = %q", s)
		}
	})
}

// TestTablesAgree checks that every key details entry names a hash the digest table knows, both
// ways round.
func TestTablesAgree(t *testing.T) {
	for d, a := range keyAlgorithms {
		if a.Details != d {
			t.Errorf("%s is filed as %s", a.Details, d)
		}
		alg, err := HashAlgorithmFor(a.Hash)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if h, err := HashFor(alg); err != nil || h != a.Hash {
			t.Errorf("%s: HashFor(HashAlgorithmFor(%s)) = %s, %v", d, a.Hash, h, err)
		}
	}
	if _, err := HashFor(commonv1.HashAlgorithm_SHA3_256); err == nil {
		t.Error("HashFor accepts SHA3-256, which no key details use")
	}
	if _, err := HashAlgorithmFor(crypto.SHA1); err == nil {
		t.Error("HashAlgorithmFor accepts SHA-1")
	}
}

// FuzzParseDigest checks that whatever ParseDigest reads, FormatDigest writes back to the same
// digest, lowercased.
func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	f.Add("sha512:xyz")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		alg, d, err := ParseDigest(s)
		if err != nil {
			return
		}
		text, err := FormatDigest(alg, d)
		if err != nil || text != strings.ToLower(s) {
			t.Fatalf("FormatDigest(ParseDigest(%q)) = %q, %v", s, text, err)
		}
	})
}

// TestAlgorithmNamesAreSigstores checks every name against sigstore/sigstore's registry, which
// rekor-tiles parses --client-signing-algorithms with, both ways.
func TestAlgorithmNamesAreSigstores(t *testing.T) {
	for d, a := range keyAlgorithms {
		want, err := signature.FormatSignatureAlgorithmFlag(d)
		if err != nil || a.Name != want {
			t.Errorf("%s is named %q, sigstore/sigstore names it %q (%v)", d, a.Name, want, err)
		}
		got, err := ParseAlgorithmName(a.Name)
		if err != nil || got != d {
			t.Errorf("ParseAlgorithmName(%q) = %s, %v; want %s", a.Name, got, err, d)
		}
	}
	if got := len(ClientSigningAlgorithms()); got != 8 {
		t.Errorf("%d default client signing algorithms, rekor-tiles v2.3.0 allows 8", got)
	}
}

func TestParseAlgorithmNameRefusesWhatQuireDoesNotAccept(t *testing.T) {
	for _, name := range []string{"rsa-sign-pss-2048-sha256", "ecdsa-sha2-256-nistp384", "ECDSA-SHA2-256-NISTP256", ""} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseAlgorithmName(name)
			if err == nil || !strings.Contains(err.Error(), "ecdsa-sha2-256-nistp256") {
				t.Errorf("ParseAlgorithmName(%q) = %v, want an error listing the accepted names", name, err)
			}
		})
	}
}
