package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// paddedCert is a real certificate for k grown to about size bytes by an opaque extension, as a
// Fulcio certificate carries OIDC claims.
func paddedCert(t *testing.T, k *ecdsa.PrivateKey, size int) []byte {
	t.Helper()
	pad, err := asn1.Marshal(strings.Repeat("x", max(size-600, 1)))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		Subject:         pkix.Name{CommonName: "padded test signer"},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 99}, Value: pad}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// dssePAE is the DSSE v1 pre-authentication encoding.
func dssePAE(payloadType string, payload []byte) []byte {
	return []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " " + string(payload))
}

// dsseWithCerts is a DSSE request signed by every key, each named by a certificate of certSize.
func dsseWithCerts(t *testing.T, payload []byte, certSize int, keys ...*ecdsa.PrivateKey) []byte {
	t.Helper()
	const pt = "application/vnd.in-toto+json"
	env := &dssepb.Envelope{Payload: payload, PayloadType: pt}
	req := &rekorpb.DSSERequestV002{Envelope: env}
	d := sha256.Sum256(dssePAE(pt, payload))
	for _, k := range keys {
		sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures = append(env.Signatures, &dssepb.Signature{Sig: sig})
		req.Verifiers = append(req.Verifiers, &rekorpb.Verifier{
			KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			Verifier:   &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: paddedCert(t, k, certSize)}},
		})
	}
	body, err := protojson.Marshal(&rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_DsseRequestV002{DsseRequestV002: req}})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// hashedRekordWithCert is a signed hashedrekord request whose signer is named by a certificate of
// certSize.
func hashedRekordWithCert(t *testing.T, k *ecdsa.PrivateKey, artifact []byte, certSize int) []byte {
	t.Helper()
	e := signArtifact(t, k, artifact)
	body, err := protojson.Marshal(&rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: e.digest, Signature: &rekorpb.Signature{
			Content: e.sig,
			Verifier: &rekorpb.Verifier{
				KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				Verifier:   &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: paddedCert(t, k, certSize)}},
			},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestOversizeEntriesAreRefusedWith413(t *testing.T) {
	l := startLog(t, maxBody(1<<20))
	keys := make([]*ecdsa.PrivateKey, 5)
	for i := range keys {
		keys[i] = newSigner(t)
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		says   string
	}{
		{name: "a DSSE entry within the limits is logged",
			body: dsseWithCerts(t, []byte(`{"fits":true}`), 4<<10, keys[:2]...), status: http.StatusCreated},
		{name: "a DSSE entry whose leaf would exceed the 65535 bytes a tile entry holds gets 413 saying so",
			body: dsseWithCerts(t, []byte(`{"fits":false}`), 15<<10, keys...), status: http.StatusRequestEntityTooLarge, says: "65535"},
		{name: "a hashedrekord request over 64 KiB gets 413 however well it is signed",
			body: hashedRekordWithCert(t, keys[0], []byte("huge certificate"), 100<<10), status: http.StatusRequestEntityTooLarge, says: "65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.treeState(t)
			a := l.post(tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status == http.StatusCreated {
				return
			}
			e, err := decodeErrorBody(a.body)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(*e.Message, tc.says) {
				t.Errorf("message %q does not state the limit %s", *e.Message, tc.says)
			}
			if after := l.treeState(t); after.next != before.next {
				t.Errorf("a refused request moved the next index from %d to %d", before.next, after.next)
			}
		})
	}
}

// sentBody is a request body that records whether the client read it to send it.
type sentBody struct{ sent atomic.Bool }

func (b *sentBody) Read(p []byte) (int, error) {
	b.sent.Store(true)
	return copy(p, bytes.Repeat([]byte(" "), len(p))), nil
}

func TestAnOversizeBodyIsRefusedBeforeItIsSent(t *testing.T) {
	l := startLog(t)
	body := &sentBody{}
	req, err := http.NewRequest(http.MethodPost, l.baseURL+"/api/v2/log/entries", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	// The client waits for "100 Continue" long enough that only the server's answer makes it skip
	// the body.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", resp.StatusCode, answer)
	}
	if body.sent.Load() {
		t.Error("the server asked for the body of a request it refused for its declared length")
	}
}
