package server

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseLaneRequest holds parseLaneRequest to net/http: whatever request it accepts, net/http
// reads as the same request (method, target, Host, no body), ending at the same byte, and
// tileHandler would see the same Accept-Encoding and Connection.
func FuzzParseLaneRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /tile/0/000 HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /api/v2/tile/entries/x001/234 HTTP/1.1\r\nhost: log.example.org:8080\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
		"GET /quire/v1/proof/inclusion?index=5&tree_size=9 HTTP/1.1\r\nHost: [::1]:3000\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET /quire/v1/entries/42 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /tile/0/000 HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /tile/0/000 HTTP/1.1\nHost: x\n\n",
		"GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
		"GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\tz\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, n, ok := parseLaneRequest(b)
		if !ok {
			return
		}
		r := bytes.NewReader(b)
		br := bufio.NewReader(r)
		hr, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("the lane accepts %q, net/http refuses it: %v", b[:n], err)
		}
		if consumed := len(b) - br.Buffered() - r.Len(); consumed != n {
			t.Fatalf("the lane reads %d bytes of %q, net/http %d", n, b, consumed)
		}
		wantMethod := http.MethodGet
		if req.head {
			wantMethod = http.MethodHead
		}
		switch {
		case hr.Method != wantMethod:
			t.Fatalf("method %q, lane says head=%v", hr.Method, req.head)
		case hr.ContentLength != 0 || len(hr.TransferEncoding) > 0:
			t.Fatalf("net/http sees a body (length %d, %v) the lane does not", hr.ContentLength, hr.TransferEncoding)
		case hr.Host == "":
			t.Fatalf("no Host, yet the lane accepts %q", b[:n])
		case hr.Close != req.close:
			t.Fatalf("close %v, lane says %v", hr.Close, req.close)
		case req.kind == laneTile && acceptsGzip(hr.Header.Get("Accept-Encoding")) != req.gzip:
			t.Fatalf("Accept-Encoding %q, lane says gzip=%v", hr.Header.Get("Accept-Encoding"), req.gzip)
		case hr.URL.RawQuery != "" && req.kind != laneProof:
			t.Fatalf("query %q on a %v read", hr.URL.RawQuery, req.kind)
		case hr.URL.RawPath != "" || strings.Contains(hr.RequestURI, "%"):
			t.Fatalf("escaped target %q", hr.RequestURI)
		}
		switch req.kind {
		case laneTile:
			if got := strings.TrimPrefix(hr.URL.Path, "/api/v2"); got != req.res.Path() || req.res.Partial() {
				t.Fatalf("path %q, lane reads %s", hr.URL.Path, req.res.Path())
			}
		case laneProof:
			q := hr.URL.Query()
			if q.Get("index") == "" || hr.URL.Path != "/quire/v1/proof/inclusion" {
				t.Fatalf("proof read of %q", hr.RequestURI)
			}
		case laneEntry:
			if !strings.HasPrefix(hr.URL.Path, "/quire/v1/entries/") {
				t.Fatalf("entry read of %q", hr.RequestURI)
			}
		default:
			t.Fatalf("kind %v", req.kind)
		}
	})
}
