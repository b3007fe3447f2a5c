package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/server"
)

// rawExchange sends the raw request bytes on a new connection and reads one answer for each of
// methods, the methods of the requests raw holds, as a client that pipelines them would.
func rawExchange(t *testing.T, base, raw string, methods ...string) []*http.Response {
	t.Helper()
	c := sendRaw(t, base, raw)
	defer c.Close()
	br := bufio.NewReader(c)
	var out []*http.Response
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("reading answer %d to %q: %v", len(out)+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

// sendRaw sends raw on a new connection, which has 20 seconds to answer.
func sendRaw(t *testing.T, base, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

func bodyOf(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// TestLaneAnswersAsNetHTTPDoes asks each read the lane answers twice: as is, and with something
// that sends it to net/http without changing what it asks for (an If-Modified-Since, which a
// resource without Last-Modified ignores, or a query parameter the gateway ignores). The answers
// must be the same, headers and bytes, and only the first of each pair may come from the lane. A
// bundle the lane served twice it sends again from its file cache.
func TestLaneAnswersAsNetHTTPDoes(t *testing.T) {
	l := startLog(t)
	addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 600, "lane")
	const ims = "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
	tests := []struct {
		name, target, headers, viaHTTP string
		// fromFile says the lane sends the answer from its file cache.
		fromFile bool
	}{
		{"a full tile", "/tile/0/000", "", "", false},
		{"a full tile under /api/v2", "/api/v2/tile/0/001", "", "", false},
		{"a full tile's headers", "/tile/0/000", "", "HEAD", false},
		{"a full bundle", "/tile/entries/000", "", "", false},
		{"a full bundle's headers", "/tile/entries/000", "", "HEAD", false},
		{"a full bundle asked for again, which the lane now keeps as a file", "/api/v2/tile/entries/000", "", "", false},
		{"a full bundle from its file", "/api/v2/tile/entries/000", "", "", true},
		{"a full bundle gzipped, compressed on this first request", "/tile/entries/001", "Accept-Encoding: gzip\r\n", "", false},
		{"a full bundle gzipped again, kept as a file now", "/tile/entries/001", "Accept-Encoding: gzip\r\n", "", false},
		{"a full bundle gzipped, from its file", "/tile/entries/001", "Accept-Encoding: deflate, gzip;q=0.5\r\n", "", true},
		{"a full bundle to a client refusing gzip, from its file", "/tile/entries/000", "Accept-Encoding: gzip;q=0\r\n", "", true},
		{"a full bundle from its file to a client closing the connection", "/tile/entries/000", "Connection: close\r\n", "", true},
		{"a full tile to a client closing the connection, kept as a file now", "/tile/0/000", "Connection: close\r\n", "", false},
		{"a full tile from its file", "/tile/0/000", "", "", true},
		{"an inclusion proof to the latest checkpoint", "/quire/v1/proof/inclusion?index=5", "", "", false},
		{"an inclusion proof to a named size", "/quire/v1/proof/inclusion?index=300&tree_size=600", "", "", false},
		{"an inclusion proof with camelCase", "/quire/v1/proof/inclusion?treeSize=600&index=599", "", "", false},
		{"an inclusion proof from a tile whose proofs the lane has answered", "/quire/v1/proof/inclusion?index=6", "", "", false},
		{"an inclusion proof to a past size", "/quire/v1/proof/inclusion?index=301&tree_size=513", "", "", false},
		{"an inclusion proof in a tree of one full tile", "/quire/v1/proof/inclusion?index=255&tree_size=256", "", "", false},
		{"an entry", "/quire/v1/entries/7", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is answered by the lane as by net/http", func(t *testing.T) {
			method := "GET"
			if tt.viaHTTP != "" {
				method = tt.viaHTTP
			}
			before, files := server.LaneAnswered(l.srv), server.LaneSentFiles(l.srv)
			lane := rawExchange(t, l.baseURL, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", method, tt.target, tt.headers), method)[0]
			if got := server.LaneAnswered(l.srv) - before; got != 1 {
				t.Fatalf("the lane answered %d requests, want 1", got)
			}
			if sent := server.LaneSentFiles(l.srv) - files; (sent == 1) != tt.fromFile || sent > 1 {
				t.Fatalf("the lane sent %d answers from files; want one: %v", sent, tt.fromFile)
			}
			forced, extra := tt.target, ims
			if strings.HasPrefix(tt.target, "/quire/") {
				sep := "?"
				if strings.Contains(forced, "?") {
					sep = "&"
				}
				forced, extra = forced+sep+"unused=1", ""
			}
			before = server.LaneAnswered(l.srv)
			std := rawExchange(t, l.baseURL, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%s%s\r\n", method, forced, tt.headers, extra), method)[0]
			if got := server.LaneAnswered(l.srv) - before; got != 0 {
				t.Fatalf("the lane answered %d requests meant for net/http", got)
			}
			if lane.StatusCode != http.StatusOK || std.StatusCode != http.StatusOK {
				t.Fatalf("status %d from the lane, %d from net/http", lane.StatusCode, std.StatusCode)
			}
			if a, b := bodyOf(lane), bodyOf(std); !bytes.Equal(a, b) {
				t.Errorf("bodies differ: %d bytes from the lane, %d from net/http", len(a), len(b))
			}
			if want := int64(len(bodyOf(lane))); method == "GET" && lane.ContentLength != want {
				t.Errorf("Content-Length %d from the lane, want %d", lane.ContentLength, want)
			}
			// net/http sends a gzip body chunked when it answers through http.ServeContent.
			for _, h := range []http.Header{lane.Header, std.Header} {
				if _, err := http.ParseTime(h.Get("Date")); err != nil {
					t.Errorf("Date %q: %v", h.Get("Date"), err)
				}
				h.Del("Date")
				h.Del("Content-Length")
			}
			if fmt.Sprint(lane.Header) != fmt.Sprint(std.Header) {
				t.Errorf("headers differ:\nlane     %v\nnet/http %v", lane.Header, std.Header)
			}
			if lane.Close != std.Close {
				t.Errorf("close %v from the lane, %v from net/http", lane.Close, std.Close)
			}
		})
	}
}

// TestLaneHandsOffWhatItDoesNotAnswer sends requests the lane must leave to net/http, each after
// a tile read on the same connection so the hand-off happens mid-connection, and checks that
// net/http answers them as it does alone.
func TestLaneHandsOffWhatItDoesNotAnswer(t *testing.T) {
	l := startLog(t)
	addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 600, "hand-off")
	tile := "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name   string
		raw    string
		status int
		// closes says net/http ends the connection after its answer.
		closes bool
	}{
		{"a partial tile", "GET /tile/0/002.p/88 HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"the checkpoint", "GET /checkpoint HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"a tile beyond the tree", "GET /tile/0/009 HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"a non-canonical tile path", "GET /tile/0/x000/000 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"a dot segment", "GET /tile/0/../0/000 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"an escaped path", "GET /tile/0/%30%30%30 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"a tile with a query", "GET /tile/0/000?x HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"POST of a tile", "POST /tile/0/000 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, false},
		{"a GET with a body", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 200, false},
		{"a Range request", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-31\r\n\r\n", 206, false},
		{"a revalidation with another ETag", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n", 200, false},
		{"a request without Host", "GET /tile/0/000 HTTP/1.1\r\n\r\n", 400, true},
		{"a request with two Hosts", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, true},
		{"a header block larger than the lane's buffer", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 6000) + "\r\n\r\n", 200, false},
		{"an upgrade", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 200, false},
		{"a proof past the tree", "GET /quire/v1/proof/inclusion?index=600&tree_size=600 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"a proof by leaf hash", "GET /quire/v1/proof/inclusion?leaf_hash=00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"a proof with a signed index", "GET /quire/v1/proof/inclusion?index=%2B5 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"an entry past the tree", "GET /quire/v1/entries/600 HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"HEAD of an entry", "HEAD /quire/v1/entries/6 HTTP/1.1\r\nHost: x\r\n\r\n", 405, false},
		{"health", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"a tile read with bare LF line ends", "GET /tile/0/000 HTTP/1.1\nHost: x\n\n", 200, false},
		{"a tile read ending its headers with LF CR LF", "GET /tile/0/000 HTTP/1.1\r\nHost: x\n\r\n", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is net/http's", func(t *testing.T) {
			before := server.LaneAnswered(l.srv)
			method, _, _ := strings.Cut(tt.raw, " ")
			methods := []string{"GET", method, "GET"}
			if tt.closes {
				methods = methods[:2]
			}
			resps := rawExchange(t, l.baseURL, tile+tt.raw+tile, methods...)
			if got := server.LaneAnswered(l.srv) - before; got != 1 {
				t.Errorf("the lane answered %d requests, want only the first", got)
			}
			if resps[1].StatusCode != tt.status {
				t.Errorf("status %d, want %d (%s)", resps[1].StatusCode, tt.status, bodyOf(resps[1]))
			}
			if tt.closes {
				return
			}
			if resps[0].StatusCode != 200 || resps[2].StatusCode != 200 || !bytes.Equal(bodyOf(resps[0]), bodyOf(resps[2])) {
				t.Errorf("the tile reads around it: %d and %d, same bytes %v", resps[0].StatusCode, resps[2].StatusCode, bytes.Equal(bodyOf(resps[0]), bodyOf(resps[2])))
			}
		})
	}
	// Requests alone on their connection, so that nothing after them completes a header block.
	tag := rawExchange(t, l.baseURL, tile, "GET")[0].Header.Get("Etag")
	for _, tt := range []struct {
		name, raw string
		status    int
		size      int
	}{
		{"an HTTP/1.0 request", "GET /tile/0/000 HTTP/1.0\r\n\r\n", 200, 8192},
		{"a revalidation with the tile's own ETag, which gets 304,", "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + tag + "\r\n\r\n", http.StatusNotModified, 0},
		{"a request with bare LF line ends", "GET /tile/0/000 HTTP/1.1\nHost: x\n\n", 200, 8192},
	} {
		t.Run(tt.name+" is net/http's at once", func(t *testing.T) {
			before := server.LaneAnswered(l.srv)
			resp := rawExchange(t, l.baseURL, tt.raw, "GET")[0]
			if resp.StatusCode != tt.status || len(bodyOf(resp)) != tt.size || server.LaneAnswered(l.srv) != before {
				t.Errorf("status %d, %d bytes, lane answered %d", resp.StatusCode, len(bodyOf(resp)), server.LaneAnswered(l.srv)-before)
			}
		})
	}
	t.Run("pipelined tile reads are all the lane's", func(t *testing.T) {
		before := server.LaneAnswered(l.srv)
		resps := rawExchange(t, l.baseURL, strings.Repeat(tile, 20), slices.Repeat([]string{"GET"}, 20)...)
		if got := server.LaneAnswered(l.srv) - before; got != 20 {
			t.Errorf("the lane answered %d of 20", got)
		}
		for i, r := range resps {
			if r.StatusCode != 200 || len(bodyOf(r)) != 8192 {
				t.Fatalf("answer %d: status %d, %d bytes", i, r.StatusCode, len(bodyOf(r)))
			}
		}
	})
}

// TestLaneClosesIdleConnectionsOnShutdown keeps a connection the lane holds open across a
// shutdown: the shutdown must end it rather than wait for it.
func TestLaneClosesIdleConnectionsOnShutdown(t *testing.T) {
	l := startLog(t)
	addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 256, "shutdown")
	c, err := net.Dial("tcp", strings.TrimPrefix(l.baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("tile read: %v, %v", resp, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		l.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown still waits for an idle connection after 20s")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the idle connection read %d bytes, %v; want EOF", n, err)
	}
}

// TestLaneCanBeTurnedOff reads a full tile from servers whose configuration keeps the lane off:
// net/http answers, with the same bytes.
func TestLaneCanBeTurnedOff(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*server.Config)
	}{
		{"DisableFastLane", func(c *server.Config) { c.DisableFastLane = true }},
		{"LogRequests, whose logger the lane would bypass", func(c *server.Config) { c.LogRequests = true }},
	} {
		t.Run(tt.name+" leaves every request to net/http", func(t *testing.T) {
			l := startLog(t, withServerConfig(tt.set))
			addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 256, "off")
			resp := rawExchange(t, l.baseURL, "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\n\r\n", "GET")[0]
			if resp.StatusCode != 200 || len(bodyOf(resp)) != 8192 {
				t.Fatalf("status %d, %d bytes", resp.StatusCode, len(bodyOf(resp)))
			}
			if n := server.LaneAnswered(l.srv); n != 0 {
				t.Errorf("the lane answered %d requests", n)
			}
		})
	}
}

// TestLaneGivesASilentConnectionWhatNetHTTPGives opens connections that send nothing, with the
// lane on and off: both must be closed after ReadHeaderTimeout, not IdleTimeout, so that idle
// sockets cannot pin memory for longer in the lane than in net/http.
func TestLaneGivesASilentConnectionWhatNetHTTPGives(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("with the lane off %v, a silent connection is closed", off), func(t *testing.T) {
			l := startLog(t, withServerConfig(func(c *server.Config) {
				c.DisableFastLane = off
				c.ReadHeaderTimeout = 200 * time.Millisecond
				c.IdleTimeout = time.Hour
			}))
			c, err := net.Dial("tcp", strings.TrimPrefix(l.baseURL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Far beyond ReadHeaderTimeout, far below IdleTimeout.
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("the server did not close a connection that sent nothing: %v", err)
			}
		})
	}
}

// TestLaneCountsRequestsAsNetHTTPDoes reads through the lane and through net/http and checks both
// land in the same metric series.
func TestLaneCountsRequestsAsNetHTTPDoes(t *testing.T) {
	l := startLog(t)
	addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 256, "metrics")
	before := server.LaneAnswered(l.srv)
	rawExchange(t, l.baseURL, "GET /tile/0/000 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /tile/entries/000 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /quire/v1/entries/3 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /quire/v1/proof/inclusion?index=3 HTTP/1.1\r\nHost: x\r\n\r\n"+
		// The same four through net/http.
		"GET /tile/0/000?x HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /tile/entries/000?x HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /quire/v1/entries/3?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /quire/v1/proof/inclusion?index=3&x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		slices.Repeat([]string{"GET"}, 8)...)
	if got := server.LaneAnswered(l.srv) - before; got != 4 {
		t.Fatalf("the lane answered %d requests, want 4", got)
	}
	rec := httptest.NewRecorder()
	l.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, route := range []string{"tile", "entry_bundle", "quire_v1_entry", "quire_v1_inclusion_proof"} {
		want := fmt.Sprintf(`quire_http_requests_total{code="200",method="GET",route=%q} 2`, route)
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestLaneSendsBundlesFromStorageWithoutItsFiles reads one bundle as its file cache fills and
// after the cache is closed: the lane sends the same bytes from storage twice (keeping it as a file
// the second time), from its file, then from storage again.
func TestLaneSendsBundlesFromStorageWithoutItsFiles(t *testing.T) {
	l := startLog(t)
	addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 300, "files")
	get := "GET /tile/entries/000 HTTP/1.1\r\nHost: x\r\n\r\n"
	var bodies [][]byte
	for i, wantFile := range []bool{false, false, true, false} {
		if i == 3 {
			if err := l.files.Close(); err != nil {
				t.Fatal(err)
			}
		}
		files := server.LaneSentFiles(l.srv)
		resp := rawExchange(t, l.baseURL, get, "GET")[0]
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("read %d: status %d", i+1, resp.StatusCode)
		}
		if sent := server.LaneSentFiles(l.srv) - files; (sent == 1) != wantFile {
			t.Fatalf("read %d: %d answers from files, want one: %v", i+1, sent, wantFile)
		}
		bodies = append(bodies, bodyOf(resp))
	}
	for i, b := range bodies {
		if !bytes.Equal(b, bodies[0]) || len(b) == 0 {
			t.Fatalf("read %d gave %d bytes, read 1 %d: want the same bundle", i+1, len(b), len(bodies[0]))
		}
	}
}
