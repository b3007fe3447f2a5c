package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quirelog/quire/api/server"
)

// Environment of the connection-holding child process (see TestMain and holdConnections).
const (
	envHoldAddr = "QUIRE_TEST_HOLD_CONNS_ADDR"
	envHoldN    = "QUIRE_TEST_HOLD_CONNS_N"
	// envIdleConns overrides how many idle connections TestTenThousandIdleConnections opens.
	envIdleConns = "QUIRE_TEST_IDLE_CONNS"
)

// TestMain lets this test binary double as the child that holds thousands of idle connections:
// the server side alone needs one descriptor per connection, and RLIMIT_NOFILE's hard limit here
// (20,000) cannot hold both ends of 10,000 in one process.
func TestMain(m *testing.M) {
	if addr := os.Getenv(envHoldAddr); addr != "" {
		os.Exit(holdConnections(addr, os.Getenv(envHoldN)))
	}
	os.Exit(m.Run())
}

// holdConnections opens n TCP connections to addr, sends nothing on them, reports "held N" on
// stdout and keeps them open until stdin closes.
func holdConnections(addr, nText string) int {
	n, err := strconv.Atoi(nText)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "bad %s %q\n", envHoldN, nText)
		return 2
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	const dialers = 8
	for w := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += dialers {
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("held %d\n", n)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

// frontEnd is a second server.Server over the harness's log, with its own HTTP listener.
type frontEnd struct {
	url        string
	grpcAddr   string
	metricsURL string // the server's MetricsHandler
	lis        *countingListener
}

// countingListener counts the connections the server has accepted, so that a test can wait until
// clients are really being served rather than merely dialled (the kernel completes a TCP
// handshake before the server accepts it).
type countingListener struct {
	net.Listener
	mu       sync.Mutex
	accepted int
	changed  chan struct{} // closed and replaced on every accepted connection
}

func newCountingListener(l net.Listener) *countingListener {
	return &countingListener{Listener: l, changed: make(chan struct{})}
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted++
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
	return c, err
}

// count is how many connections the server has accepted so far.
func (l *countingListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

// awaitAccepted waits until the server has accepted n connections in all, failing the test if it
// has not within timeout.
func (l *countingListener) awaitAccepted(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	expired := time.After(timeout)
	for {
		l.mu.Lock()
		got, changed := l.accepted, l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-expired:
			t.Fatalf("the server accepted %d connections within %v, want %d", got, timeout, n)
		}
	}
}

// frontEnd serves the harness's log through a second server.Server built from cfg (timeouts and
// limits the harness does not set), on its own random ports, until the test ends.
func (l *testLog) frontEnd(t *testing.T, cfg server.Config) *frontEnd {
	t.Helper()
	cfg.Log, cfg.Reader = l.lg, l.storage
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	tcpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis := newCountingListener(tcpLis)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpLis, grpcLis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("front end shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("front end Serve: %v", err)
		}
	})
	admin := httptest.NewServer(srv.MetricsHandler())
	t.Cleanup(admin.Close)
	return &frontEnd{url: "http://" + httpLis.Addr().String(), grpcAddr: grpcLis.Addr().String(), metricsURL: admin.URL, lis: httpLis}
}

// metric reads one unlabelled sample from a Prometheus text exposition.
func metric(t *testing.T, baseURL, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s (scan error %v)", name, sc.Err())
	return 0
}

// writeAnswer is one writer's outcome in a burst.
type writeAnswer struct {
	status     int
	retryAfter string
	code       int
	latency    time.Duration
	err        error
	entry      signedEntry
}

// TestOverloadPushback: with an outstanding-entry limit of 1, a
// burst of concurrent writers over REST and gRPC all get an answer before their deadline; those
// beyond the limit get 503/Unavailable with Retry-After, the tree holds exactly the accepted
// entries, and every pushed-back entry goes in when retried.
func TestOverloadPushback(t *testing.T) {
	l := startLog(t, pushback(1))
	k := newSigner(t)
	const restWriters, grpcWriters = 64, 32
	deadline := 30 * time.Second
	rekor := rekorpb.NewRekorClient(dialGRPC(t, l))

	answers := make(chan writeAnswer, restWriters+grpcWriters)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range restWriters + grpcWriters {
		e := signArtifact(t, k, []byte(fmt.Sprintf("overload %d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			t0 := time.Now()
			a := writeAnswer{entry: e}
			if i < restWriters {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.baseURL+"/api/v2/log/entries", bytes.NewReader(e.json()))
				if err != nil {
					a.err = err
				} else if resp, err := http.DefaultClient.Do(req); err != nil {
					a.err = err
				} else {
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					a.status, a.retryAfter, a.err = resp.StatusCode, resp.Header.Get("Retry-After"), err
					if a.status != http.StatusCreated {
						if eb, err := decodeErrorBody(body); err == nil {
							a.code = *eb.Code
						}
					}
				}
			} else {
				var hdr metadata.MD
				_, err := rekor.CreateEntry(ctx, e.proto(), grpc.Header(&hdr))
				a.code = int(status.Code(err))
				switch status.Code(err) {
				case codes.OK:
					a.status = http.StatusCreated
				case codes.Unavailable, codes.ResourceExhausted:
					a.status = http.StatusServiceUnavailable
					if v := hdr.Get("retry-after"); len(v) == 1 {
						a.retryAfter = v[0]
					}
				default:
					a.err = err
				}
			}
			a.latency = time.Since(t0)
			answers <- a
		}()
	}
	close(start)
	wg.Wait()
	close(answers)

	var created, pushed []writeAnswer
	var slowestPushback time.Duration
	for a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("a writer got no answer within %v: %v", deadline, a.err)
		case a.status == http.StatusCreated:
			created = append(created, a)
		case a.status == http.StatusServiceUnavailable || a.status == http.StatusTooManyRequests:
			pushed = append(pushed, a)
			if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
				t.Errorf("pushed-back answer has Retry-After %q, want a positive number of seconds", a.retryAfter)
			}
			if a.code != int(codes.Unavailable) && a.code != int(codes.ResourceExhausted) {
				t.Errorf("pushed-back answer has code %d, want Unavailable or ResourceExhausted", a.code)
			}
			slowestPushback = max(slowestPushback, a.latency)
		default:
			t.Errorf("status %d (code %d), want 201, 429 or 503", a.status, a.code)
		}
	}
	t.Logf("burst of %d writers (%d REST, %d gRPC) at pushback 1: %d created, %d pushed back; slowest pushback answer %v",
		restWriters+grpcWriters, restWriters, grpcWriters, len(created), len(pushed), slowestPushback)
	if len(pushed) == 0 || len(created) == 0 {
		t.Fatalf("%d created, %d pushed back: want both", len(created), len(pushed))
	}

	t.Run("the tree holds exactly the accepted entries", func(t *testing.T) {
		st := l.treeState(t)
		if st.size != uint64(len(created)) || st.next != st.size {
			t.Fatalf("tree size %d next %d, want %d accepted entries", st.size, st.next, len(created))
		}
	})

	t.Run("every pushed-back entry goes in when retried after Retry-After", func(t *testing.T) {
		wait, _ := strconv.Atoi(pushed[0].retryAfter)
		time.Sleep(time.Duration(wait) * time.Second)
		for _, p := range pushed {
			a := l.post(p.entry.json())
			if a.status != http.StatusCreated {
				t.Fatalf("retry: status %d: %s", a.status, a.body)
			}
		}
		if st := l.treeState(t); st.size != uint64(len(created)+len(pushed)) {
			t.Errorf("tree size %d after retries, want %d", st.size, len(created)+len(pushed))
		}
	})
}

// rawConn is a hand-driven HTTP/1.1 client connection, for clients too slow for net/http.
type rawConn struct {
	c      net.Conn
	closed chan struct{} // closed when the server ends the connection
	got    bytes.Buffer  // what the server sent before it did; read only after closed
}

func dialRaw(t *testing.T, baseURL string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(baseURL, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{c: c, closed: make(chan struct{})}
	go func() {
		_, _ = io.Copy(&r.got, c)
		close(r.closed)
	}()
	return r
}

// slowOutcome is how the server ended a slow client's connection.
type slowOutcome struct {
	elapsed time.Duration // from the first byte sent to the server closing the connection
	got     string        // what the server sent before it closed
	err     error         // the client could not play its part, or the server never closed
}

// hangOn sends preamble at once, then trickle one byte every interval, and waits at most patience
// for the server to close the connection.
func (r *rawConn) hangOn(preamble, trickle string, interval, patience time.Duration) slowOutcome {
	t0 := time.Now()
	if _, err := r.c.Write([]byte(preamble)); err != nil {
		return slowOutcome{err: fmt.Errorf("writing preamble: %w", err)}
	}
	if !r.trickle(trickle, interval) {
		select {
		case <-r.closed:
		case <-time.After(patience):
			return slowOutcome{err: fmt.Errorf("still connected after %v", time.Since(t0))}
		}
	}
	elapsed := time.Since(t0)
	<-r.closed
	return slowOutcome{elapsed: elapsed, got: r.got.String()}
}

// trickle writes s one byte every interval until the server closes the connection or s runs out;
// it reports whether the server closed it first.
func (r *rawConn) trickle(s string, interval time.Duration) bool {
	for i := range len(s) {
		select {
		case <-r.closed:
			return true
		case <-time.After(interval):
		}
		if _, err := r.c.Write([]byte{s[i]}); err != nil {
			return true
		}
	}
	return false
}

// TestSlowClientsAreDropped is the slow-client part of issues 6 items 3 and 4: with the header,
// read and idle timeouts set, a slowloris client (slow headers, slow body, silence, an idle
// keep-alive) is cut off, gets at most a 4xx, and the server keeps serving others meanwhile.
func TestSlowClientsAreDropped(t *testing.T) {
	l := startLog(t)
	const (
		headerTimeout = 500 * time.Millisecond
		readTimeout   = 1500 * time.Millisecond
		idleTimeout   = time.Second
		// A slow client trickles for at most this long; being dropped well before is the point.
		trickleFor = 20 * time.Second
		interval   = 50 * time.Millisecond
	)
	fe := l.frontEnd(t, server.Config{ReadHeaderTimeout: headerTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout, MaxRequestBody: 64 << 10})
	filler := strings.Repeat("a", int(trickleFor/interval))
	k := newSigner(t)
	body := string(signArtifact(t, k, []byte("slow body")).json())

	tests := []struct {
		name     string
		preamble string // sent at once
		trickle  string // then one byte per interval
		// wantStatus is the answer a cut-off client gets; 0 means a silent close or any 4xx (net/http
		// answers a half-sent request line with 400 and half-sent headers with nothing), whose
		// text is net/http's and not checked.
		wantStatus int
		// wantMessage is text the answer must hold; required with a wantStatus.
		wantMessage string
		limit       time.Duration
	}{
		{name: "a client trickling its request headers is dropped at the header timeout",
			preamble: "POST /api/v2/log/entries HTTP/1.1\r\nHost: quire\r\nX-Slow: ", trickle: filler, limit: headerTimeout},
		{name: "a client trickling its request line is dropped at the header timeout",
			preamble: "GET /checkp", trickle: filler, limit: headerTimeout},
		{name: "a client that connects and sends nothing is dropped at the header timeout",
			limit: headerTimeout},
		{name: "a client trickling its body is cut off at the read timeout with 408",
			preamble: "POST /api/v2/log/entries HTTP/1.1\r\nHost: quire\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n",
			trickle:  body, wantStatus: http.StatusRequestTimeout, wantMessage: "read timeout", limit: readTimeout},
		{name: "an idle keep-alive connection is closed at the idle timeout",
			preamble: "GET /checkpoint HTTP/1.1\r\nHost: quire\r\n\r\n", wantStatus: http.StatusOK, wantMessage: testOrigin, limit: idleTimeout},
	}
	before := l.treeState(t)
	// Every slow client runs at once on its own goroutine (parallel subtests would run only
	// -test.parallel of them at a time) and reports how it was dropped.
	outcomes := make([]chan slowOutcome, len(tests))
	for i, tc := range tests {
		r := dialRaw(t, fe.url)
		outcomes[i] = make(chan slowOutcome, 1)
		go func() { outcomes[i] <- r.hangOn(tc.preamble, tc.trickle, interval, trickleFor) }()
	}
	// The slow clients hang on the server only once it has accepted their connections.
	fe.lis.awaitAccepted(t, len(tests), 30*time.Second)

	t.Run("the server keeps taking writes while slow clients hang on", func(t *testing.T) {
		// Through the same front end the slow clients are holding on to.
		for i := range 3 {
			e := signArtifact(t, k, []byte(fmt.Sprintf("while slow %d", i)))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, fe.url+"/api/v2/log/entries", bytes.NewReader(e.json()))
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				cancel()
				t.Fatalf("POST: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		}
	})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := <-outcomes[i]
			if o.err != nil {
				t.Fatal(o.err)
			}
			// The bound is generous (a noisy machine); what matters is that the server, not
			// the client, ended it, long before the client was done.
			if o.elapsed > tc.limit+5*time.Second {
				t.Errorf("dropped after %v, timeout is %v", o.elapsed, tc.limit)
			}
			switch {
			case tc.wantStatus == 0 && o.got != "" && !strings.HasPrefix(o.got, "HTTP/1.1 4"):
				t.Errorf("expected a silent close or a 4xx, got %q", o.got)
			case tc.wantStatus != 0 && !strings.HasPrefix(o.got, "HTTP/1.1 "+strconv.Itoa(tc.wantStatus)+" "):
				t.Errorf("answer %q, want status %d", o.got, tc.wantStatus)
			case tc.wantStatus != 0 && (tc.wantMessage == "" || !strings.Contains(o.got, tc.wantMessage)):
				t.Errorf("answer %q does not name the problem (%q)", o.got, tc.wantMessage)
			}
			t.Logf("dropped after %v", o.elapsed)
		})
	}
	t.Run("the slow clients added nothing to the tree", func(t *testing.T) {
		if after := l.treeState(t); after.next != before.next+3 || after.size != before.size+3 {
			t.Errorf("size %d next %d, want %d (three writes)", after.size, after.next, before.next+3)
		}
	})
}

// TestDefaultTimeoutsDropASlowlorisClient checks the timeouts `quire serve` gets without flags
// (server.Config's defaults, as the harness uses them): a client trickling headers is dropped at
// DefaultReadHeaderTimeout, and the defaults are all set.
func TestDefaultTimeoutsDropASlowlorisClient(t *testing.T) {
	t.Parallel()
	for name, d := range map[string]time.Duration{
		"DefaultReadHeaderTimeout": server.DefaultReadHeaderTimeout,
		"DefaultReadTimeout":       server.DefaultReadTimeout,
		"DefaultWriteTimeout":      server.DefaultWriteTimeout,
		"DefaultIdleTimeout":       server.DefaultIdleTimeout,
	} {
		if d <= 0 || d > 5*time.Minute {
			t.Errorf("%s is %v: want a bound between 0 and 5 minutes", name, d)
		}
	}
	l := startLog(t)
	r := dialRaw(t, l.baseURL)
	t0 := time.Now()
	if _, err := r.c.Write([]byte("GET /checkpoint HTTP/1.1\r\nHost: quire\r\n")); err != nil {
		t.Fatal(err)
	}
	limit := server.DefaultReadHeaderTimeout + 10*time.Second
	if !r.trickle(strings.Repeat("X", int(limit/(100*time.Millisecond))), 100*time.Millisecond) {
		t.Fatalf("a header trickle lasting %v was never dropped", limit)
	}
	t.Logf("slowloris dropped after %v (DefaultReadHeaderTimeout %v)", time.Since(t0), server.DefaultReadHeaderTimeout)
	if got := time.Since(t0); got < server.DefaultReadHeaderTimeout/2 {
		t.Errorf("dropped after %v, before the header timeout %v: something else cut it", got, server.DefaultReadHeaderTimeout)
	}
}

// raceGoroutineBudget leaves the race detector's 8128-goroutine limit room for the log's own.
const raceGoroutineBudget = 7000

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestTenThousandIdleConnections: 10,000 open idle connections
// (held by a child process) do not stop the server answering a new client, and its heap grows by
// a bounded amount per connection, read from the server's own /metrics.
func TestTenThousandIdleConnections(t *testing.T) {
	n := 10000
	if v := os.Getenv(envIdleConns); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", envIdleConns, v)
		}
	}
	if raceEnabled() && n > raceGoroutineBudget {
		// The race detector dies beyond 8128 live goroutines, and each connection is one.
		t.Logf("race detector on: %d idle connections instead of %d", raceGoroutineBudget, n)
		n = raceGoroutineBudget
	}
	l := startLog(t)
	// A header timeout longer than the test keeps the idle connections open while it measures.
	fe := l.frontEnd(t, server.Config{ReadHeaderTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute})
	url := fe.url

	runtime.GC()
	heapBefore := metric(t, fe.metricsURL, "go_memstats_heap_inuse_bytes")
	goroutinesBefore := metric(t, fe.metricsURL, "go_goroutines")
	acceptedBefore := fe.lis.count()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envHoldAddr+"="+strings.TrimPrefix(url, "http://"), envHoldN+"="+strconv.Itoa(n))
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var childErr bytes.Buffer
	child.Stderr = &childErr
	t0 := time.Now()
	if err := child.Start(); err != nil {
		t.Fatalf("starting the connection holder: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	defer func() {
		stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("connection holder: %v: %s", err, childErr.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("connection holder did not exit within 30s of stdin closing")
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != fmt.Sprintf("held %d\n", n) {
		t.Fatalf("connection holder said %q (%v): %s", line, err, childErr.String())
	}
	opened := time.Since(t0)

	// The connections count only once the server has accepted them, not while they wait in the
	// kernel's backlog.
	fe.lis.awaitAccepted(t, acceptedBefore+n, 60*time.Second)
	goroutines := metric(t, fe.metricsURL, "go_goroutines")

	t.Run("a new client is answered while the connections are open", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/checkpoint", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /checkpoint: %v", err)
		}
		cp, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /checkpoint: status %d, %v", resp.StatusCode, err)
		}
		if _, err := l.openCheckpoint(cp); err != nil {
			t.Fatal(err)
		}
		e := signArtifact(t, newSigner(t), []byte("among ten thousand idle connections"))
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v2/log/entries", bytes.NewReader(e.json()))
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST: status %d: %s", resp.StatusCode, body)
		}
	})

	t.Run("the heap stays bounded", func(t *testing.T) {
		runtime.GC()
		heap := metric(t, fe.metricsURL, "go_memstats_heap_inuse_bytes")
		perConn := (heap - heapBefore) / float64(n)
		t.Logf("%d idle connections opened in %v; goroutines %v -> %v; heap in use %.1f MiB -> %.1f MiB (%.0f bytes per connection)",
			n, opened.Round(time.Millisecond), goroutinesBefore, goroutines, heapBefore/(1<<20), heap/(1<<20), perConn)
		// Generous: an idle net/http connection costs a few KiB of heap (its conn, a 4 KiB read
		// buffer); 64 KiB each would mean the server buffers for clients that sent nothing.
		if perConn > 64<<10 {
			t.Errorf("heap grew by %.0f bytes per idle connection, want under 64 KiB", perConn)
		}
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("the test ran out of its 3 minutes")
	}
}
