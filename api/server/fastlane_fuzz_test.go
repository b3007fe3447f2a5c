package server

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseLaneRequest holds parseLaneRequest to net/http: whatever request it accepts, net/http
// reads as the same request (method, target, Host, no body or a body of the same length), its
// head ending at the same byte, tileHandler would see the same Accept-Encoding and Connection, and
// a write's handler the same headers.
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
		"POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"POST /api/v2/log/entries HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nx-forwarded-for: 192.0.2.1\r\nX-Forwarded-For: 192.0.2.2 \r\nConnection: close\r\n\r\n",
		"POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
		"POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
		"POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nGrpc-Timeout: 1S\r\nPragma: no-cache\r\n\r\n{}",
		"POST /api/v2/log/%65ntries HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
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
		wantMethod, wantLength := http.MethodGet, 0
		switch {
		case req.head:
			wantMethod = http.MethodHead
		case req.kind == laneWrite:
			wantMethod, wantLength = http.MethodPost, req.length
		}
		switch {
		case hr.Method != wantMethod:
			t.Fatalf("method %q, lane says head=%v, kind %v", hr.Method, req.head, req.kind)
		case hr.ContentLength != int64(wantLength) || len(hr.TransferEncoding) > 0:
			t.Fatalf("net/http sees a body (length %d, %v), the lane one of %d", hr.ContentLength, hr.TransferEncoding, wantLength)
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
		case laneWrite:
			if hr.URL.Path != writePath || hr.RequestURI != writePath {
				t.Fatalf("write to %q", hr.RequestURI)
			}
			if gatewayOnly(hr) {
				t.Fatalf("the lane answers a write only the gateway can: %q", b[:n])
			}
			// The header lines are read with the cache empty, then from what it kept of them, and
			// after a connection's earlier write whose lines partly match.
			var fresh, earlier laneHeaderCache
			laneHeader(make(http.Header), []byte(fuzzEarlierWrite), &earlier)
			for _, c := range []struct {
				name  string
				cache *laneHeaderCache
			}{{"cold", &fresh}, {"warm", &fresh}, {"after another write", &earlier}} {
				h := make(http.Header)
				host := laneHeader(h, req.header, c.cache)
				switch {
				case host != hr.Host:
					t.Fatalf("%s: Host %q, the lane's %q", c.name, hr.Host, host)
				case !reflect.DeepEqual(h, hr.Header):
					t.Fatalf("%s: headers %q, the lane's %q", c.name, hr.Header, h)
				}
			}
		default:
			t.Fatalf("kind %v", req.kind)
		}
	})
}

// fuzzEarlierWrite is the header block of a connection's earlier write, as Go clients send it.
const fuzzEarlierWrite = "Host: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 1200\r\n" +
	"Content-Type: application/json\r\nAccept-Encoding: gzip\r\n"
