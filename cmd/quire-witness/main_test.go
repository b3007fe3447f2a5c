package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/cmd/internal/keyfile"
	"github.com/quirelog/quire/witness"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the real quire-witness once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "quire-witness-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "quire-witness")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("running %v: %v", args, err)
	}
	return 0, string(out)
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	t.Run("keygen writes a 0600 key and a cosignature/v1 vkey", func(t *testing.T) {
		if code, out := runCmd(t, "keygen", "--name", "witness.example/w", "--out", dir); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		fi, err := os.Stat(filepath.Join(dir, "witness.key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("witness.key: %v, mode %v", err, fi.Mode())
		}
		pub, err := os.ReadFile(filepath.Join(dir, "witness.pub"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(string(pub)))
		if err != nil || v.Name() != "witness.example/w" {
			t.Fatalf("witness.pub %q: %v", pub, err)
		}
		skey, err := keyfile.ReadPrivate(filepath.Join(dir, "witness.key"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := witness.NewCosigner(string(skey), nil)
		if err != nil || c.VerifierKey() != strings.TrimSpace(string(pub)) {
			t.Fatalf("key and pub disagree: %v", err)
		}
	})
	t.Run("keygen never overwrites an existing key", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(dir, "witness.key"))
		if code, _ := runCmd(t, "keygen", "--name", "other", "--out", dir); code == 0 {
			t.Fatal("second keygen succeeded")
		}
		after, _ := os.ReadFile(filepath.Join(dir, "witness.key"))
		if !bytes.Equal(before, after) {
			t.Fatal("the key changed")
		}
	})
	t.Run("keygen without a name is a usage error", func(t *testing.T) {
		if code, _ := runCmd(t, "keygen", "--out", t.TempDir()); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})
}

// testLog is a log with a real key and Merkle tree, for pushing checkpoints.
type testLog struct {
	origin string
	signer note.Signer
	vkey   string
	tree   *testonly.Tree
}

func newTestLog(t *testing.T, origin string) *testLog {
	t.Helper()
	seed := sha256.Sum256([]byte(origin))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: s, vkey: vkey, tree: testonly.New(rfc6962.DefaultHasher)}
}

func (l *testLog) request(t *testing.T, old, size uint64) (body, cp []byte) {
	t.Helper()
	for l.tree.Size() < size {
		l.tree.AppendData([]byte(fmt.Sprintf("leaf %d", l.tree.Size())))
	}
	text := fmt.Sprintf("%s\n%d\n%s\n", l.origin, size, b64(l.tree.HashAt(size)))
	cp, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	var p [][]byte
	if old > 0 {
		if p, err = l.tree.ConsistencyProof(old, size); err != nil {
			t.Fatal(err)
		}
	}
	return (&witness.Request{OldSize: old, Proof: p, Checkpoint: cp}).Marshal(), cp
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// server is a running quire-witness process.
type server struct {
	cmd    *exec.Cmd
	url    string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan error
}

var listenRE = regexp.MustCompile(`msg="quire-witness listening" addr=(\S+)`)

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(binary(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...), done: make(chan error, 1)}
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		s.done <- s.cmd.Wait()
	}()
	t.Cleanup(func() { s.cmd.Process.Kill() })
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		t.Fatalf("quire-witness exited before listening (%v):\n%s", err, s.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("quire-witness did not start:\n%s", s.log())
	}
	return s
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// stop sends SIGTERM and requires a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("quire-witness exited with %v after SIGTERM:\n%s", err, s.log())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("quire-witness ignored SIGTERM:\n%s", s.log())
	}
}

type reply struct {
	status int
	ctype  []string
	body   string
}

func do(t *testing.T, method, u string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Values("Content-Type"), string(b)}
}

func keyDir(t *testing.T) (dir string, v note.Verifier) {
	t.Helper()
	dir = t.TempDir()
	if code, out := runCmd(t, "keygen", "--name", "witness.example/e2e", "--out", dir); code != 0 {
		t.Fatalf("keygen: %s", out)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "witness.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err = fnote.NewVerifierForCosignatureV1(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	return dir, v
}

func TestServeRefusesBadSetups(t *testing.T) {
	dir, _ := keyDir(t)
	l := newTestLog(t, "example.com/log")
	key := filepath.Join(dir, "witness.key")
	loose := filepath.Join(t.TempDir(), "loose.key")
	b, _ := os.ReadFile(key)
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"a key file readable by others is refused", []string{"serve", "--data-dir", t.TempDir(), "--key", loose, "--log", l.vkey}, 1, "mode 0644"},
		{"serving without any log is a usage error", []string{"serve", "--data-dir", t.TempDir(), "--key", key}, 2, "no logs"},
		{"a malformed --log is a usage error", []string{"serve", "--data-dir", t.TempDir(), "--key", key, "--log", "not a key at all"}, 2, "--log"},
		{"serving without a data dir is a usage error", []string{"serve", "--key", key, "--log", l.vkey}, 2, "--data-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.says) {
				t.Fatalf("exit %d, output %q; want exit %d mentioning %q", code, out, tc.code, tc.says)
			}
			if strings.Contains(out, "PRIVATE+KEY") {
				t.Fatal("the private key appeared in the output")
			}
		})
	}
}

// TestServeEndToEnd starts the real binary on a random port and walks it
// through cosigning, refusing, reporting, shutting down and restarting.
func TestServeEndToEnd(t *testing.T) {
	dir, wv := keyDir(t)
	data := t.TempDir()
	a := newTestLog(t, "example.com/a")
	b := newTestLog(t, "example.com/b")
	cfg := filepath.Join(t.TempDir(), "logs.txt")
	if err := os.WriteFile(cfg, []byte("# logs from a file\n"+b.origin+" "+b.vkey+"  # log b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--data-dir", data, "--key", filepath.Join(dir, "witness.key"), "--log", a.vkey, "--log-list", cfg}
	s := startServer(t, args...)

	t.Run("healthz answers ok", func(t *testing.T) {
		if r := do(t, "GET", s.url+"/healthz", nil); r.status != 200 || r.body != "ok\n" {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})
	t.Run("a log from --log is cosigned", func(t *testing.T) {
		body, cp := a.request(t, 0, 5)
		r := do(t, "POST", s.url+"/add-checkpoint", body)
		if r.status != 200 {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		if _, err := note.Open(append(cp, r.body...), note.VerifierList(wv)); err != nil {
			t.Fatalf("cosignature does not verify with witness.pub: %v", err)
		}
	})
	t.Run("a log from --log-list is cosigned", func(t *testing.T) {
		body, _ := b.request(t, 0, 3)
		if r := do(t, "POST", s.url+"/add-checkpoint", body); r.status != 200 {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})
	t.Run("a stale old size gets 409 as text/x.tlog.size", func(t *testing.T) {
		body, _ := a.request(t, 0, 9)
		r := do(t, "POST", s.url+"/add-checkpoint", body)
		if r.status != 409 || r.body != "5\n" || len(r.ctype) != 1 || r.ctype[0] != "text/x.tlog.size" {
			t.Fatalf("got %d %q %q", r.status, r.body, r.ctype)
		}
	})
	t.Run("a body over 16 KiB gets 413", func(t *testing.T) {
		if r := do(t, "POST", s.url+"/add-checkpoint", bytes.Repeat([]byte("a"), 17<<10)); r.status != 413 {
			t.Fatalf("got %d", r.status)
		}
	})
	t.Run("the status page lists each log's latest checkpoint", func(t *testing.T) {
		r := do(t, "GET", s.url+"/", nil)
		if r.status != 200 || !strings.Contains(r.body, "log example.com/a") || !strings.Contains(r.body, "(size 5)") || !strings.Contains(r.body, "(size 3)") {
			t.Fatalf("got %d:\n%s", r.status, r.body)
		}
	})
	t.Run("the monitoring read serves the cosigned checkpoint", func(t *testing.T) {
		r := do(t, "GET", s.url+"/"+witness.OriginHash(a.origin)+"/checkpoint", nil)
		if r.status != 200 || !strings.HasPrefix(r.body, "example.com/a\n5\n") {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})
	t.Run("metrics count answers and expose cosigned sizes", func(t *testing.T) {
		r := do(t, "GET", s.url+"/metrics", nil)
		for _, want := range []string{
			`quire_witness_log_cosigned_size{origin="example.com/a"} 5`,
			`quire_witness_http_requests_total{code="409",route="add-checkpoint"} 1`,
			`quire_witness_http_requests_total{code="200",route="add-checkpoint"} 2`,
			`quire_witness_add_checkpoint_total{log="example.com/a",outcome="cosigned"} 1`,
			`quire_witness_add_checkpoint_total{log="example.com/a",outcome="conflict"} 1`,
			`quire_witness_build_info{goversion="go1.`,
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
	t.Run("SIGTERM shuts down cleanly", func(t *testing.T) { s.stop(t) })
	t.Run("after a restart the recorded sizes still bind", func(t *testing.T) {
		s = startServer(t, args...)
		body, _ := a.request(t, 0, 9)
		if r := do(t, "POST", s.url+"/add-checkpoint", body); r.status != 409 || r.body != "5\n" {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		body, _ = a.request(t, 5, 9)
		if r := do(t, "POST", s.url+"/add-checkpoint", body); r.status != 200 {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		s.stop(t)
	})
	t.Run("the logs never contain the private key", func(t *testing.T) {
		if strings.Contains(s.log(), "PRIVATE") {
			t.Fatal("private key material in the logs")
		}
	})
}

// TestTesseraAgainstBinary points Tessera's own witness client (a POSIX
// appender WithWitnesses) at the real quire-witness process.
func TestTesseraAgainstBinary(t *testing.T) {
	dir, _ := keyDir(t)
	l := newTestLog(t, "tessera.example/log")
	s := startServer(t, "--data-dir", t.TempDir(), "--key", filepath.Join(dir, "witness.key"), "--log", l.vkey)
	pub, _ := os.ReadFile(filepath.Join(dir, "witness.pub"))
	policy := fmt.Sprintf("witness w %s %s\nquorum w\n", strings.TrimSpace(string(pub)), s.url)
	group, err := tessera.NewWitnessGroupFromPolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.url)
	w, err := tessera.NewWitness(strings.TrimSpace(string(pub)), u)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	driver, err := posix.New(ctx, posix.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(l.signer).
		WithCheckpointInterval(100*time.Millisecond).
		WithBatching(64, 20*time.Millisecond).
		WithWitnesses(group, &tessera.WitnessOptions{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	awaiter := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 50*time.Millisecond)
	for round := 0; round < 2; round++ {
		var cp []byte
		for i := 0; i < 5; i++ {
			if _, cp, err = awaiter.Await(ctx, appender.Add(ctx, tessera.NewEntry([]byte(fmt.Sprintf("r%d e%d", round, i))))); err != nil {
				t.Fatal(err)
			}
		}
		if !group.Satisfied(cp) || !w.Satisfied(cp) {
			t.Fatalf("round %d: published checkpoint lacks a valid cosignature: %q", round, cp)
		}
	}
}

// TestKillNineKeepsAcknowledgedState kills the witness with SIGKILL right
// after it acknowledged a cosignature: the state must already be on disk,
// because tlog-witness requires persisting before responding.
func TestKillNineKeepsAcknowledgedState(t *testing.T) {
	dir, _ := keyDir(t)
	data := t.TempDir()
	l := newTestLog(t, "example.com/log")
	args := []string{"--data-dir", data, "--key", filepath.Join(dir, "witness.key"), "--log", l.vkey, "--rate-limit", "1000", "--rate-burst", "1000"}
	var acked uint64
	for cycle := 0; cycle < 3; cycle++ {
		s := startServer(t, args...)
		for i := 0; i < 5; i++ {
			next := acked + uint64(1+i)
			body, _ := l.request(t, acked, next)
			r := do(t, "POST", s.url+"/add-checkpoint", body)
			if r.status != 200 {
				t.Fatalf("cycle %d: %d→%d got %d %q", cycle, acked, next, r.status, r.body)
			}
			acked = next
		}
		if err := s.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.done
		t.Run(fmt.Sprintf("after SIGKILL %d the last acknowledged size %d binds", cycle+1, acked), func(t *testing.T) {
			s := startServer(t, args...)
			body, _ := l.request(t, 0, acked+1)
			r := do(t, "POST", s.url+"/add-checkpoint", body)
			if r.status != 409 || r.body != fmt.Sprintf("%d\n", acked) {
				t.Fatalf("got %d %q, want 409 %d", r.status, r.body, acked)
			}
			s.cmd.Process.Kill()
			<-s.done
		})
	}
}
