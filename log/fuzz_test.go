package log

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/rekor"
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
	l := &Log{keys: newKeyCache(1 << 20)}
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
		canon, err := rekor.CanonicalEntry(e)
		if err != nil || !bytes.Equal(canon, body) {
			t.Fatalf("leaf is not canonical (%v):\n%s\n%s", err, body, canon)
		}
		info, err := rekor.ParseEntry(body)
		if err != nil || info.Kind != kind {
			t.Fatalf("ParseEntry(accepted leaf) = %+v, %v", info, err)
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
