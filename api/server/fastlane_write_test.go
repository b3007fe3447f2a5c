package server_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/server"
)

// wireAnswers sends raw on a new connection, reads n answers and returns each as the bytes on the
// wire, its Date header's value blanked, and whether the server then closed the connection.
func wireAnswers(t *testing.T, base, raw string, n int) (answers []string, closed bool) {
	t.Helper()
	c := sendRaw(t, base, raw)
	defer c.Close()
	var wire bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &wire))
	var last *http.Response
	date := regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)
	// How long a rate-limited client is to wait depends on when, to the millisecond, it asked.
	wait := regexp.MustCompile(`(?s)Content-Length: \d+(\r\n\r\n.*retry after )[0-9hms.]+`)
	for range n {
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodPost})
		if err != nil {
			t.Fatalf("reading answer %d of %d: %v", len(answers)+1, n, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
		end := wire.Len() - br.Buffered()
		a := date.ReplaceAllString(string(wire.Next(end)), "Date: -\r")
		answers = append(answers, wait.ReplaceAllString(a, "Content-Length: -${1}-"))
		// The rest of what was read belongs to the next answer.
		rest := append([]byte(nil), wire.Bytes()...)
		wire.Reset()
		wire.Write(rest)
	}
	// A connection the answer says stays open must answer another request; one it says closes
	// must end.
	if !last.Close {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return answers, true
		}
		resp, err := http.ReadResponse(br, nil)
		return answers, err != nil || resp.StatusCode != http.StatusOK
	}
	_, err := br.Peek(1)
	return answers, errors.Is(err, io.EOF)
}

// TestLaneAnswersWritesAsNetHTTPDoes sends the same writes, in the same order, to two logs with
// the same key, one with the fast lane and one without, and wants the same bytes on the wire from
// both (Date aside): the 201 answers with their entries, proofs and checkpoints (Ed25519
// signatures are deterministic), every refusal, and the same connection closes. Each write meant
// for the lane must be answered by it.
func TestLaneAnswersWritesAsNetHTTPDoes(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	// Small enough that a refused oversized body still fits the lane's buffer, and a budget one
	// request can fill.
	const maxRequest = 3000
	start := func(lane bool) *testLog {
		return startLog(t, logKey(skey, vkey), maxBody(maxRequest),
			limitAddresses(newAddressLimiter(t), netip.MustParsePrefix("127.0.0.0/8")),
			withServerConfig(func(c *server.Config) { c.MaxInFlightBytes, c.DisableFastLane = maxRequest, !lane }))
	}
	lane, std := start(true), start(false)

	k, other := newSigner(t), newSigner(t)
	first := signArtifact(t, k, []byte("first"))
	forged := signArtifact(t, k, []byte("forged"))
	forged.sig = signArtifact(t, other, []byte("forged")).sig
	clients := 0
	post := func(body []byte, headers ...string) string {
		// Each write comes from its own client behind the trusted proxy, so that only the rate
		// limit case meets the limit.
		if !strings.Contains(strings.Join(headers, ""), "X-Forwarded-For") {
			clients++
			headers = append(headers, fmt.Sprintf("X-Forwarded-For: 203.0.113.%d", clients))
		}
		h := strings.Join(append(headers, ""), "\r\n")
		return fmt.Sprintf("POST /api/v2/log/entries HTTP/1.1\r\nHost: log.example\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", h, len(body), body)
	}
	from := func(addr string) string { return "X-Forwarded-For: " + addr }
	limited := func(i int) string {
		return post(signArtifact(t, k, []byte(fmt.Sprint("limited ", i))).json(), from("198.51.100.1"))
	}
	tests := []struct {
		name string
		raw  string
		// answers is how many answers raw gets, one per request (1 if 0).
		answers int
		// chunked says net/http frames the answer in chunks: it is over the 2 KiB net/http holds
		// back to find a body's length.
		chunked bool
	}{
		{name: "a hashedrekord with a public key is logged", raw: post(first.json())},
		{name: "a hashedrekord with a certificate is logged", raw: post(hashedRekordWithCert(t, k, []byte("cert"), 600))},
		{name: "a write whose answer is over 2 KiB is logged, its answer sent chunked", chunked: true,
			raw: post(hashedRekordWithCert(t, k, []byte("long"), 1500))},
		{name: "a DSSE request is logged", raw: post(dsseWithCerts(t, []byte(`{"_type":"x"}`), 300, k))},
		{name: "a write from a client closing the connection is logged", raw: post(signArtifact(t, k, []byte("close")).json(), "Connection: close")},
		{name: "two pipelined writes are logged", answers: 2,
			raw: post(signArtifact(t, k, []byte("pipelined 1")).json()) + post(signArtifact(t, k, []byte("pipelined 2")).json())},
		{name: "a write with other headers a client sends is logged", raw: post(signArtifact(t, k, []byte("headers")).json(),
			"Accept: application/json", "Accept-Encoding: gzip", "User-Agent: quire-test/1", "x-custom: a\tb", "Connection: keep-alive")},
		{name: "a duplicate is refused with 409 and its index", raw: post(first.json())},
		{name: "a forged signature is refused", raw: post(forged.json())},
		{name: "malformed JSON is refused", raw: post([]byte(`{"hashedRekordRequestV002":`))},
		{name: "an unknown field is refused", raw: post([]byte(strings.Replace(string(first.json()), `"digest"`, `"bogus":1,"digest"`, 1)))},
		{name: "an empty body is refused", raw: post(nil)},
		{name: "a body that is not JSON at all is refused", raw: post([]byte("signature=abc"), "Content-Type: application/x-www-form-urlencoded")},
		{name: "a body over the limit is refused with 413 and the connection closed", raw: post(bytes.Repeat([]byte(" "), maxRequest+1))},
		{name: "a client past its rate limit is refused with 429 and Retry-After", answers: 3, raw: limited(0) + limited(1) + limited(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := max(tt.answers, 1)
			before := server.LaneAnswered(lane.srv)
			got, gotClosed := wireAnswers(t, lane.baseURL, tt.raw, n)
			if answered := server.LaneAnswered(lane.srv) - before; answered != int64(n) {
				t.Errorf("the lane answered %d of %d writes", answered, n)
			}
			want, wantClosed := wireAnswers(t, std.baseURL, tt.raw, n)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("answer %d from the lane:\n%s\nfrom net/http:\n%s", i+1, got[i], want[i])
				}
			}
			if chunked := strings.Contains(want[0], "Transfer-Encoding: chunked\r\n"); chunked != tt.chunked {
				t.Errorf("net/http sent the answer chunked: %v, want %v", chunked, tt.chunked)
			}
			if gotClosed != wantClosed {
				t.Errorf("the lane closed the connection: %v; net/http: %v", gotClosed, wantClosed)
			}
		})
	}
	t.Run("a write finding the byte budget full is refused with 503 and Retry-After", func(t *testing.T) {
		// A chunked write (net/http's) declares no length, so it holds the whole budget while it
		// sends its body, which it never finishes.
		for _, l := range []*testLog{lane, std} {
			c, err := net.Dial("tcp", strings.TrimPrefix(l.baseURL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"); err != nil {
				t.Fatal(err)
			}
			admin := httptest.NewServer(l.srv.MetricsHandler())
			defer admin.Close()
			for deadline := time.Now().Add(10 * time.Second); metric(t, admin.URL, "quire_http_requests_in_flight") < 1; {
				if time.Now().After(deadline) {
					t.Fatal("the chunked write never began")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		raw := post(signArtifact(t, k, []byte("budget")).json())
		before := server.LaneAnswered(lane.srv)
		got, _ := wireAnswers(t, lane.baseURL, raw, 1)
		if server.LaneAnswered(lane.srv)-before != 1 {
			t.Errorf("the lane did not answer")
		}
		want, _ := wireAnswers(t, std.baseURL, raw, 1)
		if !strings.HasPrefix(want[0], "HTTP/1.1 503 ") || got[0] != want[0] {
			t.Errorf("answer from the lane:\n%s\nfrom net/http:\n%s", got[0], want[0])
		}
	})
}

// TestLaneWritesAcknowledgedAtShutdownAreKept shuts a log down while writers keep writing through
// the lane, each on its own connection, then reopens it: every write that was answered 201 must be
// in the reopened log at the index its answer gave (the same request is now a duplicate of it).
// Writes caught by the shutdown may get no answer, never a 201 for an entry the log lost.
func TestLaneWritesAcknowledgedAtShutdownAreKept(t *testing.T) {
	l := startLog(t)
	k := newSigner(t)
	const writers, perWriter = 32, 40
	requests := make([][]signedEntry, writers)
	for w := range requests {
		for i := range perWriter {
			requests[w] = append(requests[w], signArtifact(t, k, []byte(fmt.Sprint("shutdown ", w, " ", i))))
		}
	}
	type ack struct {
		entry signedEntry
		index int64
		body  []byte
	}
	acks := make(chan ack, writers*perWriter)
	first := make(chan struct{}, writers*perWriter)
	done := make(chan struct{})
	for w := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			c, err := net.Dial("tcp", strings.TrimPrefix(l.baseURL, "http://"))
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			br := bufio.NewReader(c)
			for _, e := range requests[w] {
				body := e.json()
				if _, err := fmt.Fprintf(c, "POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return
				}
				if resp.StatusCode == http.StatusCreated {
					acks <- ack{entry: e, body: b}
					first <- struct{}{}
				}
				if resp.Close {
					return
				}
			}
		}()
	}
	// Shut down once writes are flowing, so that some are caught in flight.
	<-first
	answered := server.LaneAnswered(l.srv)
	l.stop()
	for range writers {
		<-done
	}
	close(acks)
	if answered == 0 {
		t.Fatal("the lane answered no write before the shutdown")
	}
	var kept []ack
	for a := range acks {
		a.index = decodeEntry(t, a.body).GetLogIndex()
		kept = append(kept, a)
	}
	l.start()
	for _, a := range kept {
		again := l.post(a.entry.json())
		if again.status != http.StatusConflict || again.header.Get("X-Log-Index") != fmt.Sprint(a.index) {
			t.Errorf("a write acknowledged at index %d, sent again after the restart: %d, X-Log-Index %q", a.index, again.status, again.header.Get("X-Log-Index"))
		}
	}
	t.Logf("%d writes acknowledged before the shutdown, all kept", len(kept))
}
