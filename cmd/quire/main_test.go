package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/storage/mysql/mysqltest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// quireBinary builds this command once per test run with `go build`, so the tests run the real binary.
func quireBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "quire-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "quire")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// runQuire runs a short subcommand and returns its exit code, stdout and stderr.
func runQuire(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	// Build first: the timeout is for the command, not for compiling it on a busy machine.
	bin := quireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running quire %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

// serveProc is a running `quire serve` process.
type serveProc struct {
	t          *testing.T
	cmd        *exec.Cmd
	baseURL    string
	grpcAddr   string
	metricsURL string // --metrics-listen, always plain HTTP
	client     *http.Client
	stderr     *syncBuffer
	done       chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var httpAddrRE = regexp.MustCompile(`msg="quire serving" http=(127\.0\.0\.1:\d+) grpc=(127\.0\.0\.1:\d+) metrics=(127\.0\.0\.1:\d+|off)`)

// startServe runs `quire serve` in dir on random ports and waits for it to be healthy.
func startServe(t *testing.T, dir string, args ...string) *serveProc {
	t.Helper()
	return startServeWith(t, dir, nil, nil, args...)
}

// startServeWrapped is startServe with the command run through wrap (a program and its arguments
// that ends by running the rest of its command line, as unshare or sudo do), whose process must
// become quire's (exec) so that stop's signal reaches it.
func startServeWrapped(t *testing.T, dir string, wrap []string, args ...string) *serveProc {
	t.Helper()
	return startServeWith(t, dir, wrap, nil, args...)
}

// startServeEnv is startServe with env added to the test's environment.
func startServeEnv(t *testing.T, dir string, env []string, args ...string) *serveProc {
	t.Helper()
	return startServeWith(t, dir, nil, env, args...)
}

func startServeWith(t *testing.T, dir string, wrap, env []string, args ...string) *serveProc {
	t.Helper()
	args = append([]string{"serve", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, args...)
	argv := append(append(slices.Clone(wrap), quireBinary(t)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	pr, pw := io.Pipe()
	s := &serveProc{t: t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1), client: http.DefaultClient}
	scheme := "http://"
	if slices.Contains(args, "--tls-cert") {
		scheme = "https://"
		s.client = tlsTestClient
	}
	cmd.Stderr = io.MultiWriter(s.stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting quire serve: %v", err)
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	addr := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := httpAddrRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1:]
				sent = true
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("quire serve exited before serving:\n%s", s.stderr)
		}
		s.baseURL, s.grpcAddr, s.metricsURL = scheme+a[0], a[1], "http://"+a[2]
	case <-time.After(30 * time.Second):
		t.Fatalf("quire serve did not report its address within 30s:\n%s", s.stderr)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := s.client.Get(s.baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("quire serve not healthy within 15s:\n%s", s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *serveProc) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("signalling quire serve: %v", err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("quire serve exited with %v:\n%s", err, s.stderr)
		}
	case <-time.After(60 * time.Second):
		s.t.Fatalf("quire serve did not stop within 60s of SIGTERM:\n%s", s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "shut down cleanly") {
		s.t.Errorf("no clean shutdown reported:\n%s", s.stderr)
	}
}

func (s *serveProc) get(path string) (int, []byte) {
	s.t.Helper()
	resp, err := s.client.Get(s.baseURL + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("reading %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// hashedRekord is a really signed request body (ECDSA P-256 over SHA-256) as a REST client sends it.
func hashedRekord(t *testing.T, k *ecdsa.PrivateKey, artifact []byte) []byte {
	t.Helper()
	body, err := signHashedRekord(k, artifact)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// signHashedRekord is hashedRekord for writer goroutines, which must not stop the test themselves.
func signHashedRekord(k *ecdsa.PrivateKey, artifact []byte) ([]byte, error) {
	d := sha256.Sum256(artifact)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		return nil, fmt.Errorf("signing %q: %w", artifact, err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`{"hashedRekordRequestV002":{"digest":%q,"signature":{"content":%q,"verifier":{"publicKey":{"rawBytes":%q},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`,
		b64(d[:]), b64(sig), b64(der))), nil
}

func (s *serveProc) post(body []byte) (int, []byte) {
	s.t.Helper()
	status, answer, err := s.tryPost(body)
	if err != nil {
		s.t.Fatal(err)
	}
	return status, answer
}

// tryPost is post for writer goroutines: it returns the failure instead of stopping the test.
func (s *serveProc) tryPost(body []byte) (int, []byte, error) {
	resp, err := s.client.Post(s.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

func newECDSA(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// readVerifier reads DIR/log.pub, the note verifier key keygen and serve write.
func readVerifier(t *testing.T, dir string) (string, note.Verifier) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, pubFileName))
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(string(b))
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("log.pub is not a note verifier key: %v", err)
	}
	return vkey, v
}

func openCheckpoint(t *testing.T, v note.Verifier, raw []byte) *fmtlog.Checkpoint {
	t.Helper()
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint %q does not verify: %v", raw, err)
	}
	cp := &fmtlog.Checkpoint{}
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestServeWritesAndSurvivesRestart(t *testing.T) {
	work := t.TempDir()
	s := startServe(t, work)
	dataDir := filepath.Join(work, defaultDataDir)

	t.Run("a first start creates the data directory and a 0600 key and says where", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(dataDir, keyFileName))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key mode %04o, want 0600", fi.Mode().Perm())
		}
		if !strings.Contains(s.stderr.String(), "created a new log key") || !strings.Contains(s.stderr.String(), filepath.Join(defaultDataDir, keyFileName)) {
			t.Errorf("stderr does not say where the key is:\n%s", s.stderr)
		}
		skey, err := os.ReadFile(filepath.Join(dataDir, keyFileName))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s.stderr.String(), strings.TrimSpace(string(skey))) {
			t.Errorf("the private key was logged")
		}
	})

	_, v := readVerifier(t, dataDir)
	k := newECDSA(t)
	var tle *rekorv1.TransparencyLogEntry
	t.Run("a signed hashedrekord gets 201 and a proof that verifies against the served checkpoint", func(t *testing.T) {
		status, body := s.post(hashedRekord(t, k, []byte("binary test artifact")))
		if status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		}
		tle = &rekorv1.TransparencyLogEntry{}
		if err := protojson.Unmarshal(body, tle); err != nil {
			t.Fatal(err)
		}
		_, raw := s.get("/checkpoint")
		cp := openCheckpoint(t, v, raw)
		if cp.Origin != "127.0.0.1" {
			t.Errorf("origin %q, want the --public-url host 127.0.0.1", cp.Origin)
		}
		ip := tle.GetInclusionProof()
		if uint64(ip.GetTreeSize()) != cp.Size || !bytes.Equal(ip.GetRootHash(), cp.Hash) {
			t.Fatalf("answer's tree (%d) is not the served checkpoint's (%d)", ip.GetTreeSize(), cp.Size)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody())
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), cp.Size, leaf, ip.GetHashes(), cp.Hash); err != nil {
			t.Fatal(err)
		}
	})

	_, before := s.get("/checkpoint")
	s.stop()

	t.Run("a restart serves the same tree and keeps taking entries", func(t *testing.T) {
		s2 := startServe(t, work)
		_, after := s2.get("/checkpoint")
		cpBefore, cpAfter := openCheckpoint(t, v, before), openCheckpoint(t, v, after)
		if cpBefore.Size != cpAfter.Size || !bytes.Equal(cpBefore.Hash, cpAfter.Hash) {
			t.Fatalf("before %d %x, after %d %x", cpBefore.Size, cpBefore.Hash, cpAfter.Size, cpAfter.Hash)
		}
		if strings.Contains(s2.stderr.String(), "created a new log key") {
			t.Errorf("a restart made a new key")
		}
		if status, body := s2.post(hashedRekord(t, k, []byte("after restart"))); status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		}
		s2.stop()
	})
}

func TestServeRefusesAKeyOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runQuire(t, dir, "keygen", "--origin", "log.example", "--out", "keys"); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	key := filepath.Join(dir, "keys", keyFileName)
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runQuire(t, dir, "serve", "--key", key, "--origin", "log.example", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
	if code == 0 {
		t.Fatal("serve started with a group-readable key")
	}
	if !strings.Contains(stderr, "must not be readable by group or others") {
		t.Errorf("stderr does not explain the refusal:\n%s", stderr)
	}
	if strings.Contains(stderr, "PRIVATE+KEY") {
		t.Errorf("the key leaked into stderr")
	}
}

func TestServeRefusesAKeyForAnotherOrigin(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runQuire(t, dir, "keygen", "--origin", "log.example", "--out", "keys"); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	code, _, stderr := runQuire(t, dir, "serve", "--key", filepath.Join("keys", keyFileName), "--origin", "other.example", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "key's origin is") || !strings.Contains(stderr, "other.example") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestKeygen(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "keygen writes a 0600 signer key and a verifier key named after the origin", args: []string{"keygen", "--origin", "log.example.com", "--out", "k"}},
		{name: "keygen without an origin is a usage error", args: []string{"keygen", "--out", "k"}, wantCode: 2, wantErr: "--origin"},
		{name: "an unknown command is a usage error", args: []string{"frobnicate"}, wantCode: 2, wantErr: "unknown command"},
		{name: "an unexpected argument is a usage error", args: []string{"keygen", "--origin", "a", "--out", "k", "extra"}, wantCode: 2, wantErr: "extra"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, _, stderr := runQuire(t, dir, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, stderr)
			}
			if tc.wantCode != 0 {
				if tc.wantErr == "" || !strings.Contains(stderr, tc.wantErr) {
					t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
				}
				return
			}
			fi, err := os.Stat(filepath.Join(dir, "k", keyFileName))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key mode %04o, want 0600", fi.Mode().Perm())
			}
			_, v := readVerifier(t, filepath.Join(dir, "k"))
			if v.Name() != "log.example.com" {
				t.Errorf("verifier name %q", v.Name())
			}
			key, err := loadSignerKey(filepath.Join(dir, "k", keyFileName))
			if err != nil {
				t.Fatal(err)
			}
			if key.vkey != strings.TrimSpace(mustRead(t, filepath.Join(dir, "k", pubFileName))) {
				t.Errorf("public half derived from the key differs from log.pub")
			}
			if code, _, stderr := runQuire(t, dir, tc.args...); code == 0 || !strings.Contains(stderr, "exists") {
				t.Errorf("a second keygen into the same directory: exit %d, %s", code, stderr)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServeFlags(t *testing.T) {
	k := newECDSA(t)
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, s *serveProc)
	}{
		{name: "--dedup=false logs a resubmitted entry again", args: []string{"--dedup=false"}, check: func(t *testing.T, s *serveProc) {
			body := hashedRekord(t, k, []byte("twice"))
			var indices []int64
			for range 2 {
				status, answer := s.post(body)
				if status != http.StatusCreated {
					t.Fatalf("status %d, want 201: %s", status, answer)
				}
				tle := &rekorv1.TransparencyLogEntry{}
				if err := protojson.Unmarshal(answer, tle); err != nil {
					t.Fatal(err)
				}
				indices = append(indices, tle.GetLogIndex())
			}
			if indices[0] == indices[1] {
				t.Fatalf("both copies got index %d", indices[0])
			}
		}},
		{name: "--client-signing-algorithms refuses the others with 400 naming the algorithm", args: []string{"--client-signing-algorithms", "ed25519-ph"}, check: func(t *testing.T, s *serveProc) {
			if status, body := s.post(hashedRekord(t, k, []byte("p256 not allowed"))); status != http.StatusBadRequest || !strings.Contains(string(body), "ecdsa-sha2-256-nistp256") {
				t.Fatalf("status %d, want 400 naming ecdsa-sha2-256-nistp256: %s", status, body)
			}
		}},
		{name: "--allow-public-keys=false refuses a public key with 400", args: []string{"--allow-public-keys=false"}, check: func(t *testing.T, s *serveProc) {
			if status, body := s.post(hashedRekord(t, k, []byte("bare key"))); status != http.StatusBadRequest || !strings.Contains(string(body), "only X.509 certificates") {
				t.Fatalf("status %d, want 400: %s", status, body)
			}
		}},
		{name: "--rate-limit-address answers 429 with Retry-After past the burst", args: []string{"--rate-limit-address", "0.01", "--rate-limit-address-burst", "1"}, check: func(t *testing.T, s *serveProc) {
			if status, body := s.post(hashedRekord(t, k, []byte("first"))); status != http.StatusCreated {
				t.Fatalf("first write: status %d: %s", status, body)
			}
			resp, err := s.client.Post(s.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(hashedRekord(t, k, []byte("second"))))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("second write: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}},
		{name: "--dedup-filter-bytes caps the dedup filter, which /metrics then shows out of use while duplicates are still found", args: []string{"--dedup-filter-bytes", "1"}, check: func(t *testing.T, s *serveProc) {
			body := hashedRekord(t, k, []byte("past the filter's cap"))
			for _, want := range []int{http.StatusCreated, http.StatusConflict} {
				if status, answer := s.post(body); status != want {
					t.Fatalf("status %d, want %d: %s", status, want, answer)
				}
			}
			// The default cap would have given the entry's identity a first link of 1.25 MiB.
			m := scrape(t, s.metricsURL)
			if bytes, inUse := series(t, m, "quire_dedup_filter_bytes"), series(t, m, "quire_dedup_filter_in_use"); bytes != 0 || inUse != 0 {
				t.Fatalf("quire_dedup_filter_bytes %v and quire_dedup_filter_in_use %v, want 0 and 0 under a 1-byte cap", bytes, inUse)
			}
		}},
		{name: "--max-request-body bounds request bodies", args: []string{"--max-request-body", "256"}, check: func(t *testing.T, s *serveProc) {
			if status, body := s.post(hashedRekord(t, k, []byte("too big for 256 bytes"))); status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413: %s", status, body)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServe(t, t.TempDir(), tc.args...)
			tc.check(t, s)
			s.stop()
		})
	}
}

func TestServeRefusesABadWitnessPolicy(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("quorum nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runQuire(t, dir, "serve", "--witness-policy", policy, "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "witness policy") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestServeRefusesBadAdmissionFlags(t *testing.T) {
	dir := t.TempDir()
	notCAs := filepath.Join(dir, "not-cas.pem")
	if err := os.WriteFile(notCAs, []byte("no certificates here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"an unknown algorithm is a usage error listing the accepted names", []string{"--client-signing-algorithms", "rsa-sign-pss-2048-sha256"}, 2, "ecdsa-sha2-256-nistp256"},
		{"a --trusted-ca file without certificates is refused", []string{"--trusted-ca", notCAs}, 1, "no PEM certificates"},
		{"a negative rate is a usage error", []string{"--rate-limit-signer", "-1"}, 2, "--rate-limit-signer"},
		{"a bad proxy range is a usage error", []string{"--rate-limit-address", "1", "--trusted-proxies", "10.0.0.0/33"}, 2, "--trusted-proxies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, tc.args...)
			code, _, stderr := runQuire(t, dir, args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q in stderr:\n%s", code, tc.code, tc.want, stderr)
			}
		})
	}
}

func TestServeReadOnlyFreezesTheLog(t *testing.T) {
	work := t.TempDir()
	k := newECDSA(t)
	s := startServe(t, work)
	if status, body := s.post(hashedRekord(t, k, []byte("before the freeze"))); status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	_, before := s.get("/checkpoint")
	s.stop()

	frozen := startServe(t, work, "--read-only")
	t.Run("writes are answered 405", func(t *testing.T) {
		if status, body := frozen.post(hashedRekord(t, k, []byte("after the freeze"))); status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d, want 405: %s", status, body)
		}
	})
	t.Run("reads serve the tree as it was frozen", func(t *testing.T) {
		if status, _ := frozen.get("/quire/v1/entries/0"); status != http.StatusOK {
			t.Fatalf("entry 0: status %d", status)
		}
		_, after := frozen.get("/checkpoint")
		if !bytes.Equal(before, after) {
			t.Fatalf("checkpoint changed under --read-only:\n%s\nthen\n%s", before, after)
		}
	})
	frozen.stop()
}
