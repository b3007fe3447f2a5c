package rekor

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// vectorDirs hold the shared request/leaf vectors; testdata/hashedrekord/README.md says how
// rekor-tiles made the hashedrekord leaves.
var vectorDirs = []string{"../../testdata/hashedrekord", "../../testdata/dsse"}

// leaf is one canonical leaf of the vectors, with the Entry protojson reads from it.
type leaf struct {
	name  string
	body  []byte
	entry *rekorpb.Entry
}

func readLeaves(tb testing.TB) []leaf {
	tb.Helper()
	var leaves []leaf
	for _, dir := range vectorDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), ".leaf.json")
			if !ok {
				continue
			}
			l := leaf{name: name, entry: &rekorpb.Entry{}}
			if l.body, err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				tb.Fatal(err)
			}
			if err := protojson.Unmarshal(l.body, l.entry); err != nil {
				tb.Fatalf("%s: %v", e.Name(), err)
			}
			leaves = append(leaves, l)
		}
	}
	if len(leaves) == 0 {
		tb.Fatalf("no leaves in %v", vectorDirs)
	}
	return leaves
}

// TestHashedRekordBodyMatchesRekorTiles rebuilds every hashedrekord leaf of the vectors from its
// fields and compares it with the bytes rekor-tiles v2.3.0's own code computed.
func TestHashedRekordBodyMatchesRekorTiles(t *testing.T) {
	for _, l := range readLeaves(t) {
		hr := l.entry.GetSpec().GetHashedRekordV002()
		if hr == nil {
			continue
		}
		t.Run(l.name+" gives the body rekor-tiles gives", func(t *testing.T) {
			alg, digest := hr.GetData().GetAlgorithm(), hr.GetData().GetDigest()
			if !fastBodyFits(digest, alg, hr.GetSignature()) {
				t.Error("an entry the log accepts does not take the hand-written path")
			}
			got, err := HashedRekordBody(digest, alg, hr.GetSignature())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, l.body) {
				t.Fatalf("body differs from rekor-tiles':\n got %s\nwant %s", got, l.body)
			}
			// The log keeps the body as it is made, spare capacity and all.
			if cap(got) != len(got) {
				t.Errorf("body of %d bytes in a buffer of %d: not sized exactly", len(got), cap(got))
			}
		})
	}
}

func TestParseEntry(t *testing.T) {
	for _, l := range readLeaves(t) {
		t.Run("the leaf "+l.name+" reads back its kind and digest", func(t *testing.T) {
			info, err := ParseEntry(l.body)
			if err != nil {
				t.Fatal(err)
			}
			want := l.entry.GetSpec().GetHashedRekordV002().GetData()
			if l.entry.GetKind() == KindDSSE {
				want = l.entry.GetSpec().GetDsseV002().GetPayloadHash()
			}
			if info.Kind != l.entry.GetKind() || info.APIVersion != APIVersion || info.DigestAlgorithm != want.GetAlgorithm() || !bytes.Equal(info.Digest, want.GetDigest()) {
				t.Fatalf("ParseEntry = %+v, want %s %s %x", info, l.entry.GetKind(), want.GetAlgorithm(), want.GetDigest())
			}
			if kv := info.KindVersion(); kv.GetKind() != l.entry.GetKind() || kv.GetVersion() != APIVersion {
				t.Fatalf("KindVersion = %v", kv)
			}
		})
	}
	for _, tc := range []struct{ name, body, want string }{
		{"a body that is not JSON is refused", `not json`, "parsing entry JSON"},
		{"another API version is refused", `{"kind":"hashedrekord","apiVersion":"0.0.1","spec":{}}`, "apiVersion"},
		{"an unknown kind is refused", `{"kind":"intoto","apiVersion":"0.0.2","spec":{}}`, "unsupported entry kind"},
		{"a hashedrekord without its spec is refused", `{"kind":"hashedrekord","apiVersion":"0.0.2","spec":{}}`, "missing spec"},
		{"an unknown digest algorithm is refused", `{"kind":"dsse","apiVersion":"0.0.2","spec":{"dsseV002":{"payloadHash":{"algorithm":"MD5","digest":"AA=="}}}}`, "unknown digest algorithm"},
		{"a digest of the wrong length is refused", `{"kind":"dsse","apiVersion":"0.0.2","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"AA=="}}}}`, "has 1 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseEntry([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseEntry = %+v, %v; want an error containing %q", info, err, tc.want)
			}
		})
	}
}

// FuzzParseEntry runs the entry parser on arbitrary bodies: whatever it accepts has a kind Quire
// writes and a digest FormatDigest can write.
func FuzzParseEntry(f *testing.F) {
	for _, l := range readLeaves(f) {
		f.Add(l.body)
	}
	f.Add([]byte(`{"kind":"hashedrekord","apiVersion":"0.0.2","spec":{}}`))
	f.Add([]byte(`{"kind":"dsse","apiVersion":"0.0.2","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"AA=="}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if fast, ok := parseHashedRekordFast(body); ok {
			slow, err := parseEntryJSON(body)
			if err != nil || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%s: the hand-written parser reads %+v, encoding/json %+v (%v)", body, fast, slow, err)
			}
		}
		info, err := ParseEntry(body)
		if err != nil {
			return
		}
		if _, err := FormatDigest(info.DigestAlgorithm, info.Digest); err != nil {
			t.Fatalf("parsed entry has a digest FormatDigest refuses: %v", err)
		}
		if info.Kind != KindHashedRekord && info.Kind != KindDSSE {
			t.Fatalf("parsed entry has kind %q", info.Kind)
		}
	})
}

// FuzzHashedRekordBody checks the hand-written canonical body against protojson + JCS for
// arbitrary field contents.
func FuzzHashedRekordBody(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{4}, []byte{5, 6}, int32(5), false)
	f.Add([]byte{}, []byte{0xff, 0xfe}, []byte("\"\\<>&"), int32(9), true)
	f.Fuzz(func(t *testing.T, digest, content, raw []byte, kd int32, cert bool) {
		a, ok := AlgorithmFor(commonv1.PublicKeyDetails(kd))
		if !ok {
			return
		}
		v := &rekorpb.Verifier{KeyDetails: a.Details}
		if cert {
			v.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: raw}}
		} else {
			v.Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: raw}}
		}
		sig := &rekorpb.Signature{Content: content, Verifier: v}
		got, err := HashedRekordBody(digest, a.HashAlgorithm(), sig)
		if err != nil {
			t.Fatal(err)
		}
		want, err := CanonicalEntry(&rekorpb.Entry{
			Kind:       KindHashedRekord,
			ApiVersion: APIVersion,
			Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
				Data:      &commonv1.HashOutput{Algorithm: a.HashAlgorithm(), Digest: digest},
				Signature: sig,
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("HashedRekordBody differs from protojson + JCS:\n%s\n%s", got, want)
		}
		if fastBodyFits(digest, a.HashAlgorithm(), sig) && cap(got) != len(got) {
			t.Fatalf("hand-written body of %d bytes in a buffer of %d: not sized exactly", len(got), cap(got))
		}
	})
}

// BenchmarkHashedRekordBody compares the hand-written canonical body with protojson + JCS.
func BenchmarkHashedRekordBody(b *testing.B) {
	hr := readLeaves(b)[0].entry.GetSpec().GetHashedRekordV002()
	alg := hr.GetData().GetAlgorithm()
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := HashedRekordBody(hr.GetData().GetDigest(), alg, hr.GetSignature()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson+jcs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, err := CanonicalEntry(&rekorpb.Entry{Kind: KindHashedRekord, ApiVersion: APIVersion, Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
				Data: hr.GetData(), Signature: hr.GetSignature()}}}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParseEntryReadsTheLeavesWithoutEncodingJSON checks that every hashedrekord leaf of the
// rekor-tiles vectors takes the hand-written path, and reads what encoding/json reads.
func TestParseEntryReadsTheLeavesWithoutEncodingJSON(t *testing.T) {
	n := 0
	for _, l := range readLeaves(t) {
		slow, err := parseEntryJSON(l.body)
		if err != nil || slow.Kind != KindHashedRekord {
			continue
		}
		n++
		fast, ok := parseHashedRekordFast(l.body)
		if !ok || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: hand-written %+v (%v), encoding/json %+v", l.body, fast, ok, slow)
		}
	}
	if n == 0 {
		t.Fatal("no hashedrekord leaf among the vectors")
	}
}
