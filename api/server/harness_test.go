package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/server"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/admission"
	"github.com/quirelog/quire/log/status"
	"github.com/quirelog/quire/storage/filecache"
	"github.com/quirelog/quire/storage/index"
	"github.com/quirelog/quire/storage/pebble"
)

const testOrigin = "log.quire.test"

// testLog is a whole Quire log on disk behind a real server on random 127.0.0.1 ports, wired the
// way cmd/quire wires it.
type testLog struct {
	t        testing.TB
	dir      string
	files    *filecache.Cache
	skey     string
	vkey     string
	verifier note.Verifier
	readOnly bool
	pushback uint
	maxBody  int64
	// searchLimit is the log's search page size (the log's default if 0).
	searchLimit int
	// logs receives the server's and the log's messages (discarded if nil).
	logs *logBuffer
	// addressLimit and proxies are the server's AddressLimit and TrustedProxies.
	addressLimit *admission.Limiter
	proxies      []netip.Prefix
	// serverConfig, if set, changes the server's configuration before it is built.
	serverConfig func(*server.Config)

	baseURL  string
	grpcAddr string

	srv      *server.Server
	lg       *quirelog.Log
	idx      *index.DB
	storage  *pebble.Storage
	shutdown func(context.Context) error
	served   chan error
	stopped  bool
}

type logOption func(*testLog)

func readOnly() logOption { return func(l *testLog) { l.readOnly = true } }

func pushback(n uint) logOption { return func(l *testLog) { l.pushback = n } }

// searchLimit sets the log's search page size.
func searchLimit(n int) logOption { return func(l *testLog) { l.searchLimit = n } }

// withServerConfig lets f change the server's configuration before it is built.
func withServerConfig(f func(*server.Config)) logOption {
	return func(l *testLog) { l.serverConfig = f }
}

// captureLogs sends the server's and the log's messages to buf.
func captureLogs(buf *logBuffer) logOption { return func(l *testLog) { l.logs = buf } }

// logBuffer collects log output written from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// maxBody sets the server's request body limit (64 KiB unless given).
func limitAddresses(lim *admission.Limiter, proxies ...netip.Prefix) logOption {
	return func(l *testLog) { l.addressLimit, l.proxies = lim, proxies }
}

func maxBody(n int64) logOption { return func(l *testLog) { l.maxBody = n } }

// startLog creates a log in a new directory and serves it until the test ends.
func startLog(t testing.TB, opts ...logOption) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatalf("generating log key: %v", err)
	}
	l := &testLog{t: t, dir: t.TempDir(), skey: skey, vkey: vkey, pushback: 4096, maxBody: 64 << 10}
	for _, o := range opts {
		o(l)
	}
	if l.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatalf("parsing verifier key: %v", err)
	}
	l.start()
	t.Cleanup(l.stop)
	return l
}

func (l *testLog) start() {
	t := l.t
	t.Helper()
	ctx := context.Background()
	signer, err := note.NewSigner(l.skey)
	if err != nil {
		t.Fatalf("parsing signer key: %v", err)
	}
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(l.dir, "log")})
	if err != nil {
		t.Fatalf("opening pebble storage: %v", err)
	}
	l.storage = drv.(*pebble.Storage)
	appender, shutdown, reader, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(256, 10*time.Millisecond).
		WithCheckpointInterval(50*time.Millisecond).
		WithPushback(l.pushback))
	if err != nil {
		t.Fatalf("starting appender: %v", err)
	}
	l.shutdown = shutdown
	var logOut io.Writer = io.Discard
	if l.logs != nil {
		logOut = l.logs
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	if l.idx, err = index.Open(filepath.Join(l.dir, "index"), nil); err != nil {
		t.Fatalf("opening index: %v", err)
	}
	if l.lg, err = quirelog.New(ctx, quirelog.Config{
		Appender: appender, Reader: reader, Awaiter: l.storage, History: l.storage, Index: l.idx, Health: l.storage,
		VerifierKey: l.vkey, ReadOnly: l.readOnly, FollowInterval: 20 * time.Millisecond, SearchLimit: l.searchLimit,
		Logger: logger,
	}); err != nil {
		t.Fatalf("starting log: %v", err)
	}
	src, err := status.New(status.Config{Log: l.lg, Published: l.storage.Published, Version: "test", ReadOnly: l.readOnly})
	if err != nil {
		t.Fatal(err)
	}
	if l.files, err = filecache.Open(filepath.Join(l.dir, "files"), 64<<20); err != nil {
		t.Fatalf("opening the file cache: %v", err)
	}
	cfg := server.Config{
		Log: l.lg, Reader: reader, MaxRequestBody: l.maxBody, FileCache: l.files,
		Logger:       logger,
		Status:       src,
		AddressLimit: l.addressLimit, TrustedProxies: l.proxies,
	}
	if l.serverConfig != nil {
		l.serverConfig(&cfg)
	}
	if l.srv, err = server.New(cfg); err != nil {
		t.Fatalf("server.New: %v", err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	l.baseURL = "http://" + httpLis.Addr().String()
	l.grpcAddr = grpcLis.Addr().String()
	l.served = make(chan error, 1)
	go func() { l.served <- l.srv.Serve(httpLis, grpcLis) }()
	l.stopped = false
	l.waitForCheckpoint()
}

// waitForCheckpoint waits (boundedly) until the log has published its first checkpoint.
func (l *testLog) waitForCheckpoint() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(l.baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatalf("log at %s did not become healthy within 10s", l.baseURL)
}

// stop shuts down in cmd/quire's order: server, search follower, appender, storage.
func (l *testLog) stop() {
	if l.stopped {
		return
	}
	l.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		l.t.Errorf("server shutdown: %v", err)
	}
	if err := <-l.served; err != nil {
		l.t.Errorf("Serve returned: %v", err)
	}
	if err := l.lg.Close(); err != nil {
		l.t.Errorf("log close: %v", err)
	}
	if err := l.idx.Close(); err != nil {
		l.t.Errorf("index close: %v", err)
	}
	if err := l.shutdown(ctx); err != nil {
		l.t.Errorf("appender shutdown: %v", err)
	}
	if err := l.storage.Close(); err != nil {
		l.t.Errorf("storage close: %v", err)
	}
	if err := l.files.Close(); err != nil {
		l.t.Errorf("file cache close: %v", err)
	}
}

// signedEntry is a really signed hashedrekord v0.0.2 request (ECDSA P-256, SHA-256), naming its
// signer by the key, or by a certificate when certDER is set.
type signedEntry struct {
	digest  []byte
	sig     []byte
	pubDER  []byte
	certDER []byte
}

func newSigner(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating signer: %v", err)
	}
	return k
}

func signArtifact(t testing.TB, k *ecdsa.PrivateKey, artifact []byte) signedEntry {
	t.Helper()
	d := sha256.Sum256(artifact)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatalf("encoding public key: %v", err)
	}
	return signedEntry{digest: d[:], sig: sig, pubDER: der}
}

// json renders the request exactly as a Rekor v2 REST client sends it.
func (e signedEntry) json() []byte {
	b64 := base64.StdEncoding.EncodeToString
	verifier := fmt.Sprintf(`"publicKey":{"rawBytes":%q}`, b64(e.pubDER))
	if e.certDER != nil {
		verifier = fmt.Sprintf(`"x509Certificate":{"rawBytes":%q}`, b64(e.certDER))
	}
	return []byte(fmt.Sprintf(`{"hashedRekordRequestV002":{"digest":%q,"signature":{"content":%q,"verifier":{%s,"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`,
		b64(e.digest), b64(e.sig), verifier))
}

type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (l *testLog) do(method, path string, body []byte) httpAnswer {
	l.t.Helper()
	a, err := l.tryDo(method, path, body)
	if err != nil {
		l.t.Fatal(err)
	}
	return a
}

// tryDo is do for writer goroutines, which must not stop the test themselves.
func (l *testLog) tryDo(method, path string, body []byte) (httpAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, l.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return httpAnswer{}, fmt.Errorf("building request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpAnswer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpAnswer{}, fmt.Errorf("reading answer to %s %s: %w", method, path, err)
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (l *testLog) post(body []byte) httpAnswer {
	l.t.Helper()
	return l.do(http.MethodPost, "/api/v2/log/entries", body)
}

// tryPost is post for writer goroutines.
func (l *testLog) tryPost(body []byte) (httpAnswer, error) {
	return l.tryDo(http.MethodPost, "/api/v2/log/entries", body)
}

// apiErrorBody is the error JSON Rekor v2 clients read: a gRPC status as grpc-gateway writes it.
type apiErrorBody struct {
	Code    *int             `json:"code"`
	Message *string          `json:"message"`
	Details *json.RawMessage `json:"details"`
}

func decodeErrorBody(b []byte) (apiErrorBody, error) {
	var e apiErrorBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("error body %q is not {code,message,details}: %w", b, err)
	}
	if e.Code == nil || e.Message == nil || e.Details == nil || string(*e.Details) != "[]" {
		return e, errors.New("error body lacks code, message or empty details: " + string(b))
	}
	return e, nil
}
