package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"math"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/quirelog/quire/api/client"
	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

func fullProof() *rekorv1.InclusionProof {
	return &rekorv1.InclusionProof{
		LogIndex:   41,
		RootHash:   bytes.Repeat([]byte{0xfb}, 32),
		TreeSize:   1 << 40,
		Hashes:     [][]byte{bytes.Repeat([]byte{1}, 32), {}, {0xff, 0xfe}},
		Checkpoint: &rekorv1.Checkpoint{Envelope: "log.example.org\n42\nq83v\n\n— log.example.org AAAA\n"},
	}
}

func fullEntry() *rekorv1.TransparencyLogEntry {
	return &rekorv1.TransparencyLogEntry{
		LogIndex:          41,
		LogId:             &commonv1.LogId{KeyId: []byte("key id")},
		KindVersion:       &rekorv1.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		IntegratedTime:    1700000000,
		InclusionPromise:  &rekorv1.InclusionPromise{SignedEntryTimestamp: []byte{1, 2, 3}},
		InclusionProof:    fullProof(),
		CanonicalizedBody: []byte(`{"apiVersion":"0.0.2"}`),
	}
}

func TestAnswerJSONIsProtojson(t *testing.T) {
	oddEnvelope := fullProof()
	oddEnvelope.Checkpoint.Envelope = "quote \" backslash \\ controls \x00\x01\x1f\b\f\n\r\t del \x7f line sep \u2028 emoji \U0001F600"
	noCheckpoint := fullProof()
	noCheckpoint.Checkpoint = nil
	extremes := &rekorv1.InclusionProof{LogIndex: math.MinInt64, TreeSize: math.MaxInt64}
	sparse := &rekorv1.TransparencyLogEntry{LogIndex: 7}
	tests := []struct {
		name string
		msg  proto.Message
	}{
		{"a proof with every field", fullProof()},
		{"a proof whose checkpoint needs escaping", oddEnvelope},
		{"a proof without a checkpoint", noCheckpoint},
		{"a proof of extreme sizes and no hashes", extremes},
		{"an empty proof", &rekorv1.InclusionProof{}},
		{"an entry with every field", fullEntry()},
		{"an entry with only an index", sparse},
		{"an empty entry", &rekorv1.TransparencyLogEntry{}},
		{"a quire entry", &quirev1.Entry{TransparencyLogEntry: fullEntry(), LeafHash: bytes.Repeat([]byte{9}, 32)}},
		{"an empty quire entry", &quirev1.Entry{}},
	}
	marshal := protojson.MarshalOptions{EmitUnpopulated: true}
	for _, tt := range tests {
		t.Run(tt.name+" is written as protojson writes it", func(t *testing.T) {
			got, ok := appendAnswerJSON(nil, tt.msg)
			if !ok {
				t.Fatalf("appendAnswerJSON refused %v", tt.msg)
			}
			want, err := marshal.Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			// protojson varies its whitespace on purpose; the rest must be the same bytes.
			var compact bytes.Buffer
			if err := json.Compact(&compact, want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("got  %s\nwant %s", got, compact.Bytes())
			}
			back := tt.msg.ProtoReflect().New().Interface()
			if err := protojson.Unmarshal(got, back); err != nil || !proto.Equal(back, tt.msg) {
				t.Errorf("protojson reads it back as %v (%v), want %v", back, err, tt.msg)
			}
		})
	}
}

// FuzzAnswerJSONEscapesAsProtojson holds appendAnswerJSON's strings to protojson's: any checkpoint
// text is written as the same bytes, or refused where protojson refuses it (invalid UTF-8).
func FuzzAnswerJSONEscapesAsProtojson(f *testing.F) {
	for _, seed := range []string{
		"log.example.org\n42\nq83v\n\n\u2014 log.example.org AAAA\n",
		"quote \" backslash \\ controls \x00\x01\x1f\b\f\n\r\t del \x7f line sep \u2028 emoji \U0001F600",
		"bad \xff utf-8", "",
	} {
		f.Add(seed)
	}
	marshal := protojson.MarshalOptions{EmitUnpopulated: true}
	f.Fuzz(func(t *testing.T, envelope string) {
		p := fullProof()
		p.Checkpoint.Envelope = envelope
		got, ok := appendAnswerJSON(nil, p)
		want, err := marshal.Marshal(p)
		if !ok {
			if err == nil {
				t.Fatalf("appendAnswerJSON refused %q, protojson wrote %s", envelope, want)
			}
			return
		}
		if err != nil {
			t.Fatalf("appendAnswerJSON wrote %q, protojson refused it: %v", envelope, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, compact.Bytes()) {
			t.Fatalf("got  %s\nwant %s", got, compact.Bytes())
		}
	})
}

func TestAnswerJSONLeavesTheRestToProtojson(t *testing.T) {
	bad := fullProof()
	bad.Checkpoint.Envelope = "not UTF-8: \xff"
	tests := []struct {
		name string
		v    any
	}{
		{"a string that is not UTF-8", bad},
		{"an entry holding such a string", &rekorv1.TransparencyLogEntry{KindVersion: &rekorv1.KindVersion{Kind: "\xc3"}}},
		{"another message", &quirev1.ConsistencyProof{First: 1}},
		{"not a message", "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is not written", func(t *testing.T) {
			if got, ok := appendAnswerJSON(nil, tt.v); ok {
				t.Errorf("appendAnswerJSON wrote %s", got)
			}
		})
	}
	t.Run("the gateway marshaler still refuses invalid UTF-8", func(t *testing.T) {
		m := &singleValueJSONPb{}
		if b, err := m.Marshal(bad); err == nil {
			t.Errorf("Marshal wrote %s", b)
		}
	})
}

// TestAnswerJSONFitsItsFirstBuffer holds answerJSONSize, the room appendAnswerJSON takes before it
// writes, to at least the answer's length for a write's answer as the log gives it (a body of
// about a kilobyte, a proof of twenty hashes, a signed checkpoint), since growing the buffer step
// by step was a fifth of the bytes a write allocates.
func TestAnswerJSONFitsItsFirstBuffer(t *testing.T) {
	e := fullEntry()
	e.LogId.KeyId = bytes.Repeat([]byte{7}, 32)
	e.CanonicalizedBody = bytes.Repeat([]byte(`{"apiVersion":"0.0.2","kind":"hashedrekord"}`), 25)
	e.InclusionProof.Hashes = make([][]byte, 20)
	for i := range e.InclusionProof.Hashes {
		e.InclusionProof.Hashes[i] = bytes.Repeat([]byte{byte(i)}, 32)
	}
	e.InclusionProof.Checkpoint.Envelope = "log.example.org\n1234567\n" + strings.Repeat("q83v", 11) + "\n\n\u2014 log.example.org " + strings.Repeat("AAAA", 24) + "\n"
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"a write's answer", e},
		{"an inclusion proof", e.InclusionProof},
		{"an entry with its leaf hash", &quirev1.Entry{TransparencyLogEntry: e, LeafHash: bytes.Repeat([]byte{9}, 32)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := appendAnswerJSON(nil, tc.v)
			if !ok {
				t.Fatal("appendAnswerJSON left the answer to protojson")
			}
			if size := answerJSONSize(tc.v); len(b) > size {
				t.Errorf("answer of %d bytes, room taken first %d", len(b), size)
			}
		})
	}
}

func BenchmarkAnswerJSON(b *testing.B) {
	e := fullEntry()
	b.Run("appendAnswerJSON", func(b *testing.B) {
		for b.Loop() {
			appendAnswerJSON(nil, e)
		}
	})
	b.Run("protojson", func(b *testing.B) {
		m := protojson.MarshalOptions{EmitUnpopulated: true}
		for b.Loop() {
			if _, err := m.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzDecodeHashedRekord holds decodeHashedRekord to protojson: whatever it decodes, protojson
// (with the gateway's options) decodes to an equal message, which keeps none of the body's bytes
// (the fast lane hands the entries handler its connection buffer, which the next request reuses).
func FuzzDecodeHashedRekord(f *testing.F) {
	for _, seed := range []string{
		`{"hashedRekordRequestV002":{"digest":"q83v","signature":{"content":"AAEC","verifier":{"publicKey":{"rawBytes":"BAUG"},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`,
		` { "hashed_rekord_request_v002" : { "signature" : { "verifier" : { "key_details" : "PKIX_ED25519_PH" , "x509_certificate" : { "raw_bytes" : "" } } , "content" : "" } , "digest" : "" } } `,
		`{"hashedRekordRequestV002":{"digest":"q83v","digest":"q83v"}}`,
		`{"hashedRekordRequestV002":{"digest":"q8-v"}}`,
		`{"hashedRekordRequestV002":{"digest":"q83"}}`,
		`{"hashedRekordRequestV002":{"signature":{"verifier":{"keyDetails":3}}}}`,
		`{"hashedRekordRequestV002":{},"dsseRequestV002":{}}`,
		`{"hashedRekordRequestV002":{"digest":"\u0041AAA"}}`,
		`{"hashedRekordRequestV002":{"signature":{"verifier":{"publicKey":{"rawBytes":"AA=="},"x509Certificate":{"rawBytes":"AA=="}}}}}`,
		// Bytes the base64 decoder skips, which no JSON string holds raw, and an escaped quote.
		`{"hashedRekordRequestV002":{"digest":"AAAA` + "\n\r\n\n" + `AAAA"}}`,
		`{"hashedRekordRequestV002":{"digest":"AA\"=","signature":{}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast rekorpb.CreateEntryRequest
		if !decodeHashedRekord(b, &fast) {
			return
		}
		var want rekorpb.CreateEntryRequest
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, &want); err != nil {
			t.Fatalf("decodeHashedRekord accepts %s, protojson refuses it: %v", b, err)
		}
		if !proto.Equal(&fast, &want) {
			t.Fatalf("%s decodes to %v, protojson to %v", b, &fast, &want)
		}
		sent := string(b)
		for i := range b {
			b[i] = 'A'
		}
		if !proto.Equal(&fast, &want) {
			t.Fatalf("%s decodes to %v, which changes with the body's buffer", sent, &fast)
		}
	})
}

func TestDecodedBytesFieldsDoNotOverlap(t *testing.T) {
	req := clientRequest(t)
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var got rekorpb.CreateEntryRequest
	if !decodeHashedRekord(b, &got) {
		t.Fatalf("refused %s", b)
	}
	hr := got.GetHashedRekordRequestV002()
	// Appending to one field, as a caller may, leaves the others as they were.
	for _, f := range [][]byte{hr.Digest, hr.Signature.Content, hr.Signature.Verifier.GetPublicKey().RawBytes} {
		_ = append(f, 0xee, 0xee, 0xee, 0xee)
	}
	if !proto.Equal(&got, req) {
		t.Fatalf("after appending to its fields, the request decoded to %v, want %v", &got, req)
	}
}

// clientRequest is a request as Rekor v2 clients make it: a P-256 key and its signature over a
// SHA-256 digest.
func clientRequest(tb testing.TB) *rekorpb.CreateEntryRequest {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	digest := sha256.Sum256([]byte("artifact"))
	req, err := client.NewHashedRekordRequest(k, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

func TestDecodeHashedRekordTakesWhatClientsSend(t *testing.T) {
	for _, form := range []string{"camel", "snake"} {
		req := clientRequest(t)
		b, err := protojson.MarshalOptions{UseProtoNames: form == "snake"}.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("a "+form+"Case request is decoded without protojson", func(t *testing.T) {
			var got rekorpb.CreateEntryRequest
			if !decodeHashedRekord(b, &got) {
				t.Fatalf("refused %s", b)
			}
			if !proto.Equal(&got, req) {
				t.Errorf("decoded %v, want %v", &got, req)
			}
		})
	}
}

// BenchmarkDecodeHashedRekord decodes the request quirectl bench sends into a new message, as the
// entries handler does.
func BenchmarkDecodeHashedRekord(b *testing.B) {
	body, err := protojson.Marshal(clientRequest(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m := new(rekorpb.CreateEntryRequest)
		if !decodeHashedRekord(body, m) {
			b.Fatalf("refused %s", body)
		}
	}
}
