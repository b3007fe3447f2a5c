package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

// replayServer is a real HTTP server on 127.0.0.1 that answers POST /<fixture>/api/v2/log/entries
// with the recorded response testdata/<fixture>.http, and remembers the last request it got.
type replayServer struct {
	*httptest.Server
	mu       sync.Mutex
	lastBody []byte
	lastReq  *http.Request
}

func newReplayServer(t *testing.T) *replayServer {
	t.Helper()
	rs := &replayServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.lastBody, rs.lastReq = body, r
		rs.mu.Unlock()
		fixture, ok := strings.CutSuffix(r.URL.Path, EntriesPath)
		if !ok || r.Method != http.MethodPost {
			http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		raw, err := os.ReadFile(filepath.Join("testdata", strings.TrimPrefix(fixture, "/")+".http"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusTeapot)
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusTeapot)
			return
		}
		defer resp.Body.Close()
		recorded, _ := io.ReadAll(resp.Body)
		for k, vs := range resp.Header {
			if k == "Content-Length" || k == "Connection" {
				continue
			}
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(recorded)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *replayServer) client(t *testing.T, fixture string) *Client {
	t.Helper()
	c, err := New(rs.URL+"/"+fixture, WithHTTPClient(rs.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func recordedRequest(t *testing.T) *pb.CreateEntryRequest {
	t.Helper()
	raw, err := os.ReadFile("testdata/rekor-tiles-v2.3.0/request.json")
	if err != nil {
		t.Fatal(err)
	}
	var req pb.CreateEntryRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

func TestCreateEntryDecodesARecordedAnswer(t *testing.T) {
	rs := newReplayServer(t)
	req := recordedRequest(t)
	tle, err := rs.client(t, "rekor-tiles-v2.3.0/201-created").CreateEntry(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if tle.GetKindVersion().GetKind() != "hashedrekord" || tle.GetKindVersion().GetVersion() != "0.0.2" {
		t.Errorf("kindVersion = %v", tle.GetKindVersion())
	}
	if tle.GetInclusionProof().GetTreeSize() != 1 || tle.GetLogIndex() != 0 {
		t.Errorf("logIndex %d treeSize %d, want 0 and 1", tle.GetLogIndex(), tle.GetInclusionProof().GetTreeSize())
	}
	if len(tle.GetLogId().GetKeyId()) != sha256.Size {
		t.Errorf("logId.keyId is %d bytes, want 32", len(tle.GetLogId().GetKeyId()))
	}
	if !strings.Contains(tle.GetInclusionProof().GetCheckpoint().GetEnvelope(), "rekor.bench.local\n1\n") {
		t.Errorf("checkpoint envelope %q lacks origin and size", tle.GetInclusionProof().GetCheckpoint().GetEnvelope())
	}
	if !bytes.Contains(tle.GetCanonicalizedBody(), []byte(`"kind":"hashedrekord"`)) {
		t.Errorf("canonicalizedBody %q", tle.GetCanonicalizedBody())
	}

	rs.mu.Lock()
	defer rs.mu.Unlock()
	if got := rs.lastReq.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	var sent pb.CreateEntryRequest
	if err := protojson.Unmarshal(rs.lastBody, &sent); err != nil {
		t.Fatalf("the body sent is not a strict CreateEntryRequest: %v", err)
	}
	if !bytes.Equal(sent.GetHashedRekordRequestV002().GetSignature().GetContent(), req.GetHashedRekordRequestV002().GetSignature().GetContent()) {
		t.Error("the signature sent differs from the request's")
	}
}

func TestErrorsAreDecodedFromRecordedAnswers(t *testing.T) {
	rs := newReplayServer(t)
	body, err := MarshalCreateEntryRequest(recordedRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		fixture        string
		wantStatus     int
		wantCode       codes.Code
		wantMessage    string
		wantDup        bool
		wantIndex      uint64
		wantRetryable  bool
		wantRetryAfter time.Duration // lower bound
	}{
		{"a duplicate gives the index from X-Log-Index", "rekor-tiles-v2.3.0/409-duplicate", 409, codes.AlreadyExists, "already exists", true, 0, false, 0},
		{"a duplicate without the header gives the index from the message", "design/409-no-header", 409, codes.AlreadyExists, "already exists", true, 18446744073709551615, false, 0},
		{"a bad signature is an InvalidArgument 400", "rekor-tiles-v2.3.0/400-bad-signature", 400, codes.InvalidArgument, "invalid hashedrekord request", false, 0, false, 0},
		{"an unknown field names the field", "rekor-tiles-v2.3.0/400-unknown-field", 400, codes.InvalidArgument, `unknown field "bogus"`, false, 0, false, 0},
		{"truncated JSON is a 400", "rekor-tiles-v2.3.0/400-not-json", 400, codes.InvalidArgument, "unexpected EOF", false, 0, false, 0},
		{"rekor-tiles answers an oversized body with 400", "rekor-tiles-v2.3.0/400-body-too-large", 400, codes.InvalidArgument, "request body too large", false, 0, false, 0},
		{"a frozen log's plain-text 405 keeps its text", "rekor-tiles-v2.3.0/405-read-only", 405, codes.Unknown, "This log has been frozen", false, 0, false, 0},
		{"Quire's 413 keeps its message", "design/413-too-large", 413, codes.InvalidArgument, "max-request-body", false, 0, false, 0},
		{"pushback 429 carries Retry-After seconds", "design/429-pushback", 429, codes.ResourceExhausted, "retry", false, 0, true, 2 * time.Second},
		{"pushback 503 carries a Retry-After date", "design/503-pushback-date", 503, codes.Unavailable, "max pushback", false, 0, true, 24 * time.Hour},
		{"a proxy's HTML 502 is retryable", "design/502-proxy-html", 502, codes.Unknown, "502 Bad Gateway", false, 0, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rs.client(t, tc.fixture).PostEntry(context.Background(), body)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want an *APIError", err, err)
			}
			if ae.StatusCode != tc.wantStatus || ae.Code != tc.wantCode {
				t.Errorf("status %d code %s, want %d %s", ae.StatusCode, ae.Code, tc.wantStatus, tc.wantCode)
			}
			if !strings.Contains(ae.Message, tc.wantMessage) {
				t.Errorf("message %q lacks %q", ae.Message, tc.wantMessage)
			}
			if !strings.Contains(err.Error(), tc.wantMessage) {
				t.Errorf("Error() %q lacks %q", err.Error(), tc.wantMessage)
			}
			var de *DuplicateError
			if got := errors.As(err, &de); got != tc.wantDup {
				t.Fatalf("DuplicateError: %v, want %v", got, tc.wantDup)
			}
			if tc.wantDup && (!de.IndexKnown || de.Index != tc.wantIndex) {
				t.Errorf("duplicate index %d (known %v), want %d", de.Index, de.IndexKnown, tc.wantIndex)
			}
			after, retryable := RetryAfter(err)
			if retryable != tc.wantRetryable || after < tc.wantRetryAfter {
				t.Errorf("RetryAfter = %s, %v; want at least %s, %v", after, retryable, tc.wantRetryAfter, tc.wantRetryable)
			}
		})
	}
}

func TestTransportFailuresAreWrappedNotAPIErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PostEntry(context.Background(), []byte("{}"))
	var ae *APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name the URL", err)
	}
}

func TestAnOversizedSuccessAnswerIsRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(bytes.Repeat([]byte("x"), MaxResponseBody+1))
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PostEntry(context.Background(), []byte("{}")); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		want    string
		wantErr bool
	}{
		{"a bare host gets the entries path", "http://127.0.0.1:3000", "http://127.0.0.1:3000/api/v2/log/entries", false},
		{"a trailing slash is not doubled", "https://log.example/", "https://log.example/api/v2/log/entries", false},
		{"a path prefix is kept", "https://example.com/rekor/", "https://example.com/rekor/api/v2/log/entries", false},
		{"a query is dropped", "http://h/?x=1", "http://h/api/v2/log/entries", false},
		{"a missing scheme is refused", "127.0.0.1:3000", "", true},
		{"another scheme is refused", "ftp://h/", "", true},
		{"a missing host is refused", "http:///x", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.base)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New(%q) err = %v", tc.base, err)
			}
			if err == nil && c.EntriesURL() != tc.want {
				t.Fatalf("EntriesURL = %q, want %q", c.EntriesURL(), tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"0", 0, false},
		{"2", 2 * time.Second, false},
		{" 120 ", 2 * time.Minute, false},
		{"Wed, 25 Nov 2026 06:00:30 GMT", 30 * time.Second, false},
		{"Wed, 25 Nov 2026 05:00:00 GMT", 0, false},
		{"-1", 0, true},
		{"1.5", 0, true},
		{"99999999999", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		t.Run("Retry-After "+tc.in+" is understood", func(t *testing.T) {
			got, err := ParseRetryAfter(tc.in, now)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseRetryAfter(%q) = %s, %v; want %s, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzDecodeError(f *testing.F) {
	for _, dir := range []string{"testdata/rekor-tiles-v2.3.0", "testdata/design"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.http"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			raw, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				f.Fatalf("%s: %v", file, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			f.Add(resp.StatusCode, body, resp.Header.Get(LogIndexHeader), resp.Header.Get("Retry-After"))
		}
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, logIndex, retryAfter string) {
		h := http.Header{}
		h.Set(LogIndexHeader, logIndex)
		h.Set("Retry-After", retryAfter)
		err := DecodeError(status, h, body)
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("DecodeError gave %T", err)
		}
		if ae.StatusCode != status || ae.RetryAfter < 0 || ae.Code > codes.Unauthenticated {
			t.Fatalf("status %d code %d retry %s from status %d", ae.StatusCode, ae.Code, ae.RetryAfter, status)
		}
		var de *DuplicateError
		if errors.As(err, &de) != (status == http.StatusConflict) {
			t.Fatalf("status %d: DuplicateError %v", status, errors.As(err, &de))
		}
		_ = err.Error()
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "2", "Wed, 21 Oct 2099 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "-1", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRetryAfter(s, now)
		if err != nil && d != 0 {
			t.Fatalf("error with a delay: %s, %v", d, err)
		}
		if d < 0 {
			t.Fatalf("negative delay %s for %q", d, s)
		}
	})
}
