package log

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/rekor"
)

// signPAE signs an envelope's PAE the way DSSE signers do.
func (s *testSigner) signPAE(t testing.TB, payloadType string, payload []byte) []byte {
	t.Helper()
	msg := pae(payloadType, payload)
	if k, ok := s.priv.(ed25519.PrivateKey); ok {
		return ed25519.Sign(k, msg)
	}
	d := s.digest(msg)
	sig, err := s.priv.Sign(rand.Reader, d, s.hash)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func dsseRequest(t testing.TB, payload []byte, signers ...*testSigner) *rekorpb.CreateEntryRequest {
	t.Helper()
	const pt = "application/vnd.in-toto+json"
	env := &dssepb.Envelope{Payload: payload, PayloadType: pt}
	var vs []*rekorpb.Verifier
	for _, s := range signers {
		env.Signatures = append(env.Signatures, &dssepb.Signature{Sig: s.signPAE(t, pt, payload)})
		vs = append(vs, s.pkixVerifier(t))
	}
	return &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_DsseRequestV002{
		DsseRequestV002: &rekorpb.DSSERequestV002{Envelope: env, Verifiers: vs},
	}}
}

func regenerateDSSE(t *testing.T) {
	l := &Log{keys: newKeyCache(1 << 20)}
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	ed := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ED25519)
	rsa := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256)
	for name, req := range map[string]*rekorpb.CreateEntryRequest{
		"ecdsa_p256":         dsseRequest(t, []byte(`{"_type":"https://in-toto.io/Statement/v1","quire":"p256"}`), p256),
		"ed25519_and_rsa":    dsseRequest(t, []byte(`{"_type":"https://in-toto.io/Statement/v1","quire":"two"}`), ed, rsa),
		"ed25519_pure_alone": dsseRequest(t, []byte(`{"_type":"https://in-toto.io/Statement/v1","quire":"ed"}`), ed),
	} {
		_, leaf, err := l.Validate(req)
		if err != nil {
			t.Fatal(err)
		}
		writeVector(t, dsseVectors, name, req, leaf)
	}
}

func TestDSSE(t *testing.T) {
	l := &Log{keys: newKeyCache(1 << 20)}
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	other := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	ed := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ED25519)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)

	t.Run("an envelope signed by its verifiers is accepted and records the payload hash", func(t *testing.T) {
		kind, body, err := l.Validate(dsseRequest(t, payload, p256, ed))
		if err != nil {
			t.Fatal(err)
		}
		info, err := rekor.ParseEntry(body)
		if err != nil {
			t.Fatal(err)
		}
		if kind != rekor.KindDSSE || info.Kind != rekor.KindDSSE || info.DigestAlgorithm != commonv1.HashAlgorithm_SHA2_256 {
			t.Fatalf("kind %q, parsed %+v", kind, info)
		}
	})
	t.Run("signatures are recorded once each, sorted by their bytes", func(t *testing.T) {
		req := dsseRequest(t, payload, p256, ed, other)
		env := req.GetDsseRequestV002().GetEnvelope()
		env.Signatures = append(env.Signatures, env.Signatures[1])
		_, body, err := l.Validate(req)
		if err != nil {
			t.Fatal(err)
		}
		e := &rekorpb.Entry{}
		if err := protojson.Unmarshal(body, e); err != nil {
			t.Fatal(err)
		}
		sigs := e.GetSpec().GetDsseV002().GetSignatures()
		if len(sigs) != 3 {
			t.Fatalf("leaf has %d signatures, want 3", len(sigs))
		}
		for i := 1; i < len(sigs); i++ {
			if bytes.Compare(sigs[i-1].GetContent(), sigs[i].GetContent()) >= 0 {
				t.Fatalf("signatures %d and %d are out of order", i-1, i)
			}
		}
	})
	t.Run("the same envelope always gives the same leaf", func(t *testing.T) {
		req := dsseRequest(t, payload, p256, ed)
		_, a, err := l.Validate(req)
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := l.Validate(req)
		if err != nil || string(a) != string(b) {
			t.Fatalf("leaves differ: %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		mod   func(*rekorpb.DSSERequestV002)
		field string
	}{
		{"a changed payload fails", func(d *rekorpb.DSSERequestV002) { d.Envelope.Payload = []byte("{}") }, "dsseRequestV002.verifiers[0]"},
		{"a changed payload type fails", func(d *rekorpb.DSSERequestV002) { d.Envelope.PayloadType = "text/plain" }, "dsseRequestV002.verifiers[0]"},
		{"a signature by a key not given fails", func(d *rekorpb.DSSERequestV002) { d.Verifiers[0] = other.pkixVerifier(t) }, "dsseRequestV002.verifiers[0]"},
		{"a signature no verifier checks fails", func(d *rekorpb.DSSERequestV002) {
			d.Envelope.Signatures = append(d.Envelope.Signatures, &dssepb.Signature{Sig: other.signPAE(t, d.Envelope.PayloadType, d.Envelope.Payload)})
		}, "dsseRequestV002.envelope.signatures[1]"},
		{"a missing envelope is named", func(d *rekorpb.DSSERequestV002) { d.Envelope = nil }, "dsseRequestV002.envelope"},
		{"missing verifiers are named", func(d *rekorpb.DSSERequestV002) { d.Verifiers = nil }, "dsseRequestV002.verifiers"},
		{"an envelope without signatures is named", func(d *rekorpb.DSSERequestV002) { d.Envelope.Signatures = nil }, "dsseRequestV002.envelope.signatures"},
		{"an empty signature is named", func(d *rekorpb.DSSERequestV002) { d.Envelope.Signatures[0].Sig = nil }, "dsseRequestV002.envelope.signatures[0].sig"},
		{"a key that is not the keyDetails' key is named", func(d *rekorpb.DSSERequestV002) {
			d.Verifiers[0].KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		}, "dsseRequestV002.verifiers[0].keyDetails"},
		{"more than ten verifiers are refused", func(d *rekorpb.DSSERequestV002) {
			for len(d.Verifiers) <= maxDSSEVerifiers {
				d.Verifiers = append(d.Verifiers, d.Verifiers[0])
			}
		}, "dsseRequestV002.verifiers"},
		{"more than ten signatures are refused", func(d *rekorpb.DSSERequestV002) {
			for len(d.Envelope.Signatures) <= maxDSSESignatures {
				d.Envelope.Signatures = append(d.Envelope.Signatures, d.Envelope.Signatures[0])
			}
		}, "dsseRequestV002.envelope.signatures"},
		{"garbage key bytes are named", func(d *rekorpb.DSSERequestV002) {
			d.Verifiers[0].Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: []byte("junk")}}
		}, "dsseRequestV002.verifiers[0].publicKey.rawBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := dsseRequest(t, payload, p256)
			tc.mod(req.GetDsseRequestV002())
			_, _, err := l.Validate(req)
			var ie *InvalidRequestError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate() = %v, want *InvalidRequestError", err)
			}
			if ie.Field != tc.field {
				t.Fatalf("error names %q (%v), want %q", ie.Field, err, tc.field)
			}
		})
	}
}
