package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/server"
)

// logKey gives a test log the signed-note key pair skey, vkey instead of a new one.
func logKey(skey, vkey string) logOption {
	return func(l *testLog) { l.skey, l.vkey = skey, vkey }
}

// rawAnswer is an HTTP answer as a client sees it on the wire, Date aside.
type rawAnswer struct {
	status  int
	header  http.Header
	chunked bool
	body    []byte
}

// send posts body to path with extra headers; chunked sends it without a Content-Length.
func (l *testLog) send(t *testing.T, path string, body []byte, header http.Header, chunked bool) rawAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rd := bytes.NewReader(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if chunked {
		req.ContentLength, req.Body, req.GetBody = -1, io.NopCloser(rd), nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Del("Date")
	return rawAnswer{status: resp.StatusCode, header: resp.Header, chunked: len(resp.TransferEncoding) > 0, body: b}
}

// TestEntriesHandlerAnswersAsTheGateway sends the same requests, in the same order, to two logs
// with the same key, one answering writes with entriesHandler and one through grpc-gateway, and
// wants the same status, headers, framing and bytes from both: the entries, their proofs and
// their checkpoints (Ed25519 signatures are deterministic) as well as every refusal.
func TestEntriesHandlerAnswersAsTheGateway(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	direct := startLog(t, logKey(skey, vkey))
	gateway := startLog(t, logKey(skey, vkey), withServerConfig(server.WritesThroughGateway))

	k, other := newSigner(t), newSigner(t)
	first := signArtifact(t, k, []byte("first"))
	forged := signArtifact(t, k, []byte("forged"))
	forged.sig = signArtifact(t, other, []byte("forged")).sig
	snake := strings.NewReplacer("hashedRekordRequestV002", "hashed_rekord_request_v002", "rawBytes", "raw_bytes",
		"publicKey", "public_key", "keyDetails", "key_details").Replace(string(signArtifact(t, k, []byte("snake")).json()))

	tests := []struct {
		name    string
		path    string
		body    []byte
		header  http.Header
		chunked bool
	}{
		{name: "a hashedrekord with a public key is logged", body: first.json()},
		{name: "a hashedrekord with a certificate is logged", body: hashedRekordWithCert(t, k, []byte("cert"), 600)},
		{name: "a request in snake_case is logged", body: []byte(snake), header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}},
		{name: "a DSSE request is logged", body: dsseWithCerts(t, []byte(`{"_type":"x"}`), 600, k)},
		{name: "a request sent chunked is logged", body: signArtifact(t, k, []byte("chunked")).json(), chunked: true},
		{name: "a request with a gRPC timeout is logged", body: signArtifact(t, k, []byte("timeout")).json(), header: http.Header{"Grpc-Timeout": {"20S"}}},
		{name: "a request accepting trailers is logged", body: signArtifact(t, k, []byte("trailers")).json(), header: http.Header{"Te": {"trailers"}}},
		{name: "a request with gRPC metadata is logged", body: signArtifact(t, k, []byte("metadata")).json(), header: http.Header{"Grpc-Metadata-Who": {"me"}}},
		{name: "a duplicate is refused with 409 and its index", body: first.json()},
		{name: "a forged signature is refused", body: forged.json()},
		{name: "an unknown field is refused", body: []byte(strings.Replace(string(first.json()), `"digest"`, `"bogus":1,"digest"`, 1))},
		{name: "malformed JSON is refused", body: []byte(`{"hashedRekordRequestV002":`)},
		{name: "data after the object is refused", body: append(first.json(), " {}"...)},
		{name: "an empty object is refused", body: []byte(`{}`)},
		{name: "an empty body is refused", body: []byte{}},
		{name: "null is refused", body: []byte(`null`)},
		{name: "a declared body over the limit is refused", body: bytes.Repeat([]byte(" "), 65<<10)},
		{name: "a chunked body over the limit is refused", body: bytes.Repeat([]byte(" "), 65<<10), chunked: true},
		{name: "an invalid gRPC timeout is refused", body: first.json(), header: http.Header{"Grpc-Timeout": {"soon"}}},
		{name: "an escaped path is routed as the gateway routes it", path: "/api/v2/log/%65ntries", body: signArtifact(t, k, []byte("escaped")).json()},
	}
	created := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/api/v2/log/entries"
			}
			want := gateway.send(t, path, tc.body, tc.header, tc.chunked)
			got := direct.send(t, path, tc.body, tc.header, tc.chunked)
			if got.status == http.StatusCreated {
				created++
			}
			if got.status != want.status {
				t.Errorf("status %d, the gateway's %d", got.status, want.status)
			}
			if got.chunked != want.chunked {
				t.Errorf("chunked %v, the gateway's %v", got.chunked, want.chunked)
			}
			if !equalHeaders(got.header, want.header) {
				t.Errorf("headers\n%v\nthe gateway's\n%v", got.header, want.header)
			}
			if !bytes.Equal(got.body, want.body) {
				t.Errorf("body\n%s\nthe gateway's\n%s", got.body, want.body)
			}
		})
	}
	// Answers alike could also come from two logs that both failed to log; the next entry's index
	// says how many the direct one logged.
	if created < 9 {
		t.Errorf("%d rows were logged, want 9", created)
	}
	if a := direct.post(signArtifact(t, k, []byte("last")).json()); a.status != http.StatusCreated ||
		decodeEntry(t, a.body).GetLogIndex() != int64(created) {
		t.Errorf("after %d entries the next got %d %s", created, a.status, a.body)
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || strings.Join(v, "\x00") != strings.Join(w, "\x00") {
			return false
		}
	}
	return true
}
