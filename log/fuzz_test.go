package log

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

func addFileSeeds(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatalf("no seeds match %s", pattern)
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
}

// FuzzValidate runs the request validator on arbitrary JSON, as the API layer
// hands it over after protojson decoding. Whatever it accepts must have a
// leaf that is its own RFC 8785 canonical form and that the entry parser
// reads back.
func FuzzValidate(f *testing.F) {
	addFileSeeds(f, filepath.Join(hashedRekordVectors, "*.request.json"))
	addFileSeeds(f, filepath.Join(dsseVectors, "*.request.json"))
	f.Add([]byte(`{"hashedRekordRequestV002":{}}`))
	f.Add([]byte(`{"hashed_rekord_request_v002":{"digest":"AAAA","signature":{"content":"AAAA","verifier":{"key_details":"PKIX_ED25519_PH","public_key":{"raw_bytes":"MCowBQYDK2VwAyEA"}}}}}`))
	f.Add([]byte(`{"dsseRequestV002":{"envelope":{"payload":"e30=","payloadType":"x","signatures":[{"sig":"AAAA"}]},"verifiers":[{}]}}`))
	l := &Log{keys: newKeyCache(64)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &rekorpb.CreateEntryRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil {
			return
		}
		kind, body, err := l.Validate(req)
		if err != nil {
			if _, ok := err.(*InvalidRequestError); !ok {
				t.Fatalf("Validate returned %T %v, want *InvalidRequestError", err, err)
			}
			return
		}
		e := &rekorpb.Entry{}
		if err := protojson.Unmarshal(body, e); err != nil {
			t.Fatalf("accepted leaf is not an Entry: %v", err)
		}
		canon, err := canonicalSlow(e)
		if err != nil || !bytes.Equal(canon, body) {
			t.Fatalf("leaf is not canonical (%v):\n%s\n%s", err, body, canon)
		}
		info, err := ParseEntry(body)
		if err != nil || info.Kind != kind {
			t.Fatalf("ParseEntry(accepted leaf) = %+v, %v", info, err)
		}
	})
}

// FuzzHashedRekordLeaf checks the hand-written canonical encoder against
// protojson + JCS for arbitrary field contents.
func FuzzHashedRekordLeaf(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{4}, []byte{5, 6}, int32(5), false)
	f.Add([]byte{}, []byte{0xff, 0xfe}, []byte("\"\\<>&"), int32(9), true)
	f.Fuzz(func(t *testing.T, digest, content, raw []byte, kd int32, cert bool) {
		if len(digest) == 0 || len(content) == 0 || len(raw) == 0 {
			return // validation refuses empty fields, which protojson would omit
		}
		d, ok := algorithms[commonv1.PublicKeyDetails(kd)]
		if !ok {
			return
		}
		v := &rekorpb.Verifier{KeyDetails: d.details}
		if cert {
			v.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: raw}}
		} else {
			v.Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: raw}}
		}
		sig := &rekorpb.Signature{Content: content, Verifier: v}
		fast := hashedRekordLeaf(digest, d.hashAlg, sig)
		slow, err := canonicalSlow(&rekorpb.Entry{
			Kind:       KindHashedRekord,
			ApiVersion: APIVersion,
			Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
				Data:      &commonv1.HashOutput{Algorithm: d.hashAlg, Digest: digest},
				Signature: sig,
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, slow) {
			t.Fatalf("fast leaf differs:\n%s\n%s", fast, slow)
		}
	})
}

// FuzzParseEntry runs the search follower's entry parser on arbitrary leaves.
func FuzzParseEntry(f *testing.F) {
	addFileSeeds(f, filepath.Join(hashedRekordVectors, "*.leaf.json"))
	addFileSeeds(f, filepath.Join(dsseVectors, "*.leaf.json"))
	f.Add([]byte(`{"kind":"hashedrekord","apiVersion":"0.0.2","spec":{}}`))
	f.Add([]byte(`{"kind":"dsse","apiVersion":"0.0.2","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"AA=="}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := ParseEntry(body)
		if err != nil {
			return
		}
		if _, err := digestKey(info.DigestAlgorithm, info.Digest); err != nil {
			t.Fatalf("parsed entry has an unindexable digest: %v", err)
		}
		if info.Kind != KindHashedRekord && info.Kind != KindDSSE {
			t.Fatalf("parsed entry has kind %q", info.Kind)
		}
	})
}

// FuzzParseDigest runs the search parameter parser on arbitrary strings.
func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	f.Add("sha512:xyz")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseDigest(s)
		if err != nil {
			return
		}
		again, err := ParseDigest(string(k))
		if err != nil || !bytes.Equal(again, k) {
			t.Fatalf("ParseDigest is not idempotent on %q: %q, %v", k, again, err)
		}
	})
}
