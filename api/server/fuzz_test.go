package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// checkAnswer holds every answer to the property the API promises for any input: a documented
// status, never a server error, and for the gRPC-backed routes an error body in the Rekor v2 error
// JSON. (tlog-tiles reads answer errors in plain text, as a static file server would.)
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, jsonErrors bool, allowed ...int) {
	t.Helper()
	ok := false
	for _, s := range allowed {
		ok = ok || rec.Code == s
	}
	if !ok {
		t.Fatalf("status %d, want one of %v: %s", rec.Code, allowed, rec.Body)
	}
	if jsonErrors && rec.Code >= 400 {
		if _, err := decodeErrorBody(rec.Body.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzCreateEntryBody posts arbitrary bodies to POST /api/v2/log/entries on a real log.
func FuzzCreateEntryBody(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "requests", "*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed requests in testdata/requests: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	l := startLog(f)
	k := newSigner(f)
	f.Add(signArtifact(f, k, []byte("fuzz seed")).json())
	h := l.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/v2/log/entries", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		checkAnswer(t, rec, true, http.StatusCreated, http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge)
		if rec.Code == http.StatusCreated {
			if err := protojson.Unmarshal(rec.Body.Bytes(), &rekorv1.TransparencyLogEntry{}); err != nil {
				t.Fatalf("201 with a body that is no TransparencyLogEntry: %v", err)
			}
		}
	})
}

// FuzzQuireV1Query sends arbitrary paths and query strings to the quire.v1 and tlog-tiles reads.
func FuzzQuireV1Query(f *testing.F) {
	for _, s := range []string{
		"/quire/v1/entries/0", "/quire/v1/entries/18446744073709551615", "/quire/v1/entries/-1",
		"/quire/v1/proof/inclusion?index=0&tree_size=1", "/quire/v1/proof/inclusion?leaf_hash=" + strings.Repeat("0", 64),
		"/quire/v1/proof/inclusion?index=1&index=2", "/quire/v1/proof/consistency?first=1&second=18446744073709551615",
		"/quire/v1/proof/consistency?first=99999999999999999999999", "/quire/v1/search?digest=sha256:" + strings.Repeat("f", 64),
		"/quire/v1/search?digest=%00", "/quire/v1/checkpoints?size=1", "/quire/v1/checkpoints?size=abc",
		"/tile/0/000", "/tile/0/x001/x234/067.p/8", "/api/v2/tile/entries/000.p/1", "/tile/../../etc/passwd", "/checkpoint",
	} {
		f.Add(s)
	}
	l := startLog(f)
	fillLog(f, l, 3)
	h := l.srv.Handler()
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return // not a request target a client can send
		}
		req, err := http.NewRequest(http.MethodGet, "http://quire.test"+target, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		isTiles := req.URL.Path == "/checkpoint" || strings.HasPrefix(req.URL.Path, "/tile/") || strings.HasPrefix(req.URL.Path, "/api/v2/tile/") || req.URL.Path == "/api/v2/checkpoint"
		checkAnswer(t, rec, !isTiles, http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect)
	})
}
