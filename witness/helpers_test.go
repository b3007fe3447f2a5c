package witness

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"
)

// seededRand makes key generation reproducible: each key's seed is
// SHA-256(label), so tests and vectors do not depend on crypto/rand.
func seededRand(label string) io.Reader {
	s := sha256.Sum256([]byte(label))
	return bytes.NewReader(s[:])
}

// testLog is a log with a real Ed25519 note key and a real Merkle tree whose
// leaves are "<prefix>-<i>", so two testLogs with different prefixes fork.
type testLog struct {
	origin string
	signer note.Signer
	vkey   string
	tree   *testonly.Tree
	prefix string
}

func newTestLog(t testing.TB, origin, keyLabel, prefix string, size uint64) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(seededRand(keyLabel), origin)
	if err != nil {
		t.Fatalf("generating log key: %v", err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("parsing log key: %v", err)
	}
	l := &testLog{origin: origin, signer: s, vkey: vkey, tree: testonly.New(rfc6962.DefaultHasher), prefix: prefix}
	l.grow(size)
	return l
}

func (l *testLog) grow(size uint64) {
	for l.tree.Size() < size {
		l.tree.AppendData([]byte(fmt.Sprintf("%s-%d", l.prefix, l.tree.Size())))
	}
}

func (l *testLog) config(t testing.TB) Log {
	t.Helper()
	lg, err := ParseLog(l.origin + " " + l.vkey)
	if err != nil {
		t.Fatalf("ParseLog: %v", err)
	}
	return lg
}

// checkpoint returns the log's signed checkpoint at size, growing the tree to it.
func (l *testLog) checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	l.grow(size)
	signed, err := l.signCheckpoint(size)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// signCheckpoint signs the checkpoint at size of a tree already grown to it; it only reads the
// tree, so concurrent pushers may call it.
func (l *testLog) signCheckpoint(size uint64) ([]byte, error) {
	text := log.Checkpoint{Origin: l.origin, Size: size, Hash: l.tree.HashAt(size)}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint %d: %w", size, err)
	}
	return signed, nil
}

// request builds an add-checkpoint body moving from old to size with a real
// consistency proof from this log's tree.
func (l *testLog) request(t testing.TB, old, size uint64) []byte {
	t.Helper()
	l.grow(size)
	var p [][]byte
	if old > 0 && old <= size {
		var err error
		if p, err = l.tree.ConsistencyProof(old, size); err != nil {
			t.Fatalf("consistency proof %d→%d: %v", old, size, err)
		}
	}
	return (&Request{OldSize: old, Proof: p, Checkpoint: l.checkpoint(t, size)}).Marshal()
}

func newCosigner(t testing.TB, name string) *Cosigner {
	t.Helper()
	skey, _, err := GenerateKey(seededRand("witness "+name), name)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	c, err := NewCosigner(skey, nil)
	if err != nil {
		t.Fatalf("NewCosigner: %v", err)
	}
	return c
}

type fixture struct {
	w   *Witness
	srv *httptest.Server
	cos *Cosigner
	dir string

	mu       sync.Mutex
	statuses map[int]int // answers given, by status; only for counting fixtures
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// counting wraps h so the fixture records every status it answers with.
func (f *fixture) counting(h http.Handler) http.Handler {
	f.statuses = make(map[int]int)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		f.mu.Lock()
		f.statuses[rec.status]++
		f.mu.Unlock()
	})
}

func (f *fixture) answered(status int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statuses[status]
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startWitness opens a witness on dir and serves it on a random 127.0.0.1
// port. limit 0 disables rate limiting.
func startWitness(t testing.TB, dir string, limit rate.Limit, burst int, logs ...Log) *fixture {
	t.Helper()
	return startNamedWitness(t, dir, "witness.example/w1", limit, burst, logs...)
}

func startNamedWitness(t testing.TB, dir, name string, limit rate.Limit, burst int, logs ...Log) *fixture {
	t.Helper()
	if limit == 0 {
		limit = rate.Inf
	}
	cos := newCosigner(t, name)
	w, err := New(Config{Path: dir, Signer: cos, Logs: logs, RateLimit: limit, RateBurst: burst, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("witness.New: %v", err)
	}
	srv := httptest.NewServer(w.Handler())
	f := &fixture{w: w, srv: srv, cos: cos, dir: dir}
	t.Cleanup(f.stop)
	return f
}

func (f *fixture) stop() {
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
	if f.w != nil {
		f.w.Close()
		f.w = nil
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func post(t testing.TB, url string, body []byte) response {
	t.Helper()
	r, err := tryPost(url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryPost is post for pusher goroutines, which must not stop the test themselves.
func tryPost(url string, body []byte) (response, error) {
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		return response{}, fmt.Errorf("POST add-checkpoint: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("reading response: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func get(t testing.TB, url string) response {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// openCosigned verifies a 200 answer the way a log does (tlog-witness: the
// client concatenates it to the checkpoint and opens the note with the
// witness key) and returns the parsed checkpoint.
func openCosigned(t testing.TB, cp []byte, cosig string, v note.Verifier) *log.Checkpoint {
	t.Helper()
	c, err := verifyCosigned(cp, cosig, v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifyCosigned is openCosigned for pusher goroutines.
func verifyCosigned(cp []byte, cosig string, v note.Verifier) (*log.Checkpoint, error) {
	if !strings.HasPrefix(cosig, "— ") || !strings.HasSuffix(cosig, "\n") || strings.Count(cosig, "\n") != 1 {
		return nil, fmt.Errorf("answer is not exactly one signature line: %q", cosig)
	}
	n, err := note.Open(append(append([]byte(nil), cp...), cosig...), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("cosignature does not verify: %w", err)
	}
	if len(n.Sigs) != 1 {
		return nil, fmt.Errorf("got %d verified witness signatures, want 1", len(n.Sigs))
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("parsing cosigned checkpoint: %w", err)
	}
	return &c, nil
}

// reopenOn restarts a witness on a fixed address, so a log's policy (which
// names the URL) still reaches it.
func reopenOn(t testing.TB, addr, dir, name string, logs ...Log) (*fixture, error) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	cos := newCosigner(t, name)
	w, err := New(Config{Path: dir, Signer: cos, Logs: logs, RateLimit: rate.Inf, Logger: quietLogger()})
	if err != nil {
		ln.Close()
		return nil, err
	}
	f := &fixture{w: w, cos: cos, dir: dir}
	srv := httptest.NewUnstartedServer(f.counting(w.Handler()))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	f.srv = srv
	t.Cleanup(f.stop)
	return f, nil
}
