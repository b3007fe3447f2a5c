package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// submitted logs n artifacts with one key and returns their paths and the key's directory.
func submitted(t *testing.T, logURL, logKey, dir string, n int) []string {
	t.Helper()
	keyDir := filepath.Join(dir, "keys")
	if code, out := quirectl(t, "keygen", "--out", keyDir); code != 0 {
		t.Fatalf("keygen: %s", out)
	}
	var arts []string
	for i := range n {
		art := filepath.Join(dir, fmt.Sprintf("artifact-%d.txt", i))
		if err := os.WriteFile(art, fmt.Appendf(nil, "release %d", i), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := quirectl(t, "submit", "--url", logURL, "--key", filepath.Join(keyDir, "key.pem"), "--artifact", art,
			"--bundle-out", art+".bundle.json", "--log-key", logKey); code != 0 {
			t.Fatalf("submit %d: %s", i, out)
		}
		arts = append(arts, art)
	}
	return arts
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func TestGetSearchInfoAgainstQuireServe(t *testing.T) {
	logURL, dataDir := quireServer(t)
	logKey := filepath.Join(dataDir, "log.pub")
	work := t.TempDir()
	arts := submitted(t, logURL, logKey, work, 3)

	t.Run("get prints an entry decoded, its proof verified", func(t *testing.T) {
		code, out := quirectl(t, "get", "--url", logURL, "--log-key", logKey, "--index", "1")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		for _, want := range []string{"entry 1 of 127.0.0.1, in tree size 3: inclusion proof and checkpoint signature verified",
			"kind hashedrekord 0.0.2", "artifact digest " + sha256File(t, arts[1]), `"kind": "hashedrekord"`, "leaf hash "} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("get refuses an entry whose checkpoint another key signed", func(t *testing.T) {
		_, otherVKey, err := note.GenerateKey(rand.Reader, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		code, out := quirectl(t, "get", "--url", logURL, "--log-key", otherVKey, "--index", "0")
		if code != 1 || !strings.Contains(out, "entry 0 does not verify") || !strings.Contains(out, "checkpoint") {
			t.Fatalf("exit %d, want 1 and a checkpoint failure: %s", code, out)
		}
	})
	t.Run("get of an index beyond the log says so", func(t *testing.T) {
		code, out := quirectl(t, "get", "--url", logURL, "--log-key", logKey, "--index", "99")
		if code != 1 || !strings.Contains(out, "404") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("get without an index is a usage error", func(t *testing.T) {
		if code, out := quirectl(t, "get", "--url", logURL, "--log-key", logKey); code != 2 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("search prints the index of each entry for a digest", func(t *testing.T) {
		// Search follows publication by a moment; ask until the follower has caught up.
		var out string
		for range 100 {
			var code int
			code, out = quirectl(t, "search", "--url", logURL, "--digest", sha256File(t, arts[2]))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			if out == "2\n" {
				return
			}
			waitABit()
		}
		t.Fatalf("search printed %q, want index 2", out)
	})
	t.Run("search by a PEM key prints every entry it signed", func(t *testing.T) {
		code, out := quirectl(t, "search", "--url", logURL, "--key", filepath.Join(work, "keys", "key.pub"))
		if code != 0 || out != "0\n1\n2\n" {
			t.Fatalf("exit %d, printed %q; want indices 0, 1 and 2", code, out)
		}
	})
	t.Run("search by an identity no certificate names prints nothing", func(t *testing.T) {
		code, out := quirectl(t, "search", "--url", logURL, "--identity", "nobody@example.com", "--issuer", "https://accounts.example.com")
		if code != 0 || out != "" {
			t.Fatalf("exit %d, printed %q; want nothing", code, out)
		}
	})
	for _, args := range [][]string{
		{"--digest", "sha256:" + strings.Repeat("0", 64), "--identity", "a@example.com"},
		{},
		{"--key", filepath.Join(work, "keys", "key.pem")},
	} {
		t.Run(fmt.Sprintf("search with %q is a usage error", args), func(t *testing.T) {
			if code, out := quirectl(t, append([]string{"search", "--url", logURL}, args...)...); code != 2 {
				t.Fatalf("exit %d: %s", code, out)
			}
		})
	}
	t.Run("search with a malformed digest is a usage error", func(t *testing.T) {
		if code, out := quirectl(t, "search", "--url", logURL, "--digest", "sha256:nothex"); code != 2 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("info prints the verified checkpoint and the log's readiness", func(t *testing.T) {
		code, out := quirectl(t, "info", "--url", logURL, "--log-key", logKey)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		for _, want := range []string{"origin 127.0.0.1\n", "size 3\n", "checkpoint signature verified", "no witness cosignatures", "ready for writes true"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`root [0-9a-f]{64}\n`).MatchString(out) {
			t.Errorf("no root hash:\n%s", out)
		}
	})
}

func TestSubmitRetriesPushback(t *testing.T) {
	// With --pushback 1 and a batch that waits 500ms to fill, one entry fills the log's
	// allowance and every other write meanwhile is answered 503 with Retry-After: 1.
	metricsAddr := freeAddr(t)
	logURL, dataDir := quireServer(t, "--pushback", "1", "--batch-max-age", "500ms", "--metrics-listen", metricsAddr)
	logKey := filepath.Join(dataDir, "log.pub")
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	if code, out := quirectl(t, "keygen", "--out", keyDir); code != 0 {
		t.Fatal(out)
	}
	const writers = 3
	type result struct {
		code int
		out  string
	}
	results := make([]result, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		art := filepath.Join(dir, fmt.Sprintf("a%d", i))
		if err := os.WriteFile(art, fmt.Appendf(nil, "pushed back %d", i), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			<-start
			results[i].code, results[i].out = quirectl(t, "submit", "--url", logURL, "--key", filepath.Join(keyDir, "key.pem"),
				"--artifact", art, "--bundle-out", art+".json", "--log-key", logKey)
		})
	}
	close(start)
	wg.Wait()
	retried := 0
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("writer %d: exit %d: %s", i, r.code, r.out)
		}
		retried += strings.Count(r.out, "answered 503; retrying in 1s")
	}
	if retried == 0 {
		t.Fatalf("no writer was pushed back and retried; the test proves nothing:\n%v", results)
	}
	t.Logf("%d retries after 503 for %d concurrent writers", retried, writers)
	// The log counted each refusal the clients retried, and nothing else, as pushback.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("quire_pushback_total{reason=\"integration\"} %d\n", retried)
	if !bytes.Contains(metrics, []byte(want)) {
		t.Fatalf("/metrics lacks %q", want)
	}
}

func TestMirrorRetriesPushback(t *testing.T) {
	logURL, dataDir := quireServer(t)
	logKey := filepath.Join(dataDir, "log.pub")
	submitted(t, logURL, logKey, t.TempDir(), 2)

	// A proxy in front of the log refuses the first request for each path, alternately with 503
	// and 429 and a Retry-After of zero seconds or a date in the past.
	target, err := url.Parse(logURL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	refused := 0
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		first := seen[r.URL.Path] == 1
		if first {
			refused++
		}
		n := refused
		mu.Unlock()
		if first {
			if n%2 == 0 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "busy", http.StatusServiceUnavailable)
			} else {
				w.Header().Set("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")
				http.Error(w, "slow down", http.StatusTooManyRequests)
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()

	out := filepath.Join(t.TempDir(), "mirror")
	code, msg := quirectl(t, "mirror", "--url", srv.URL, "--log-key", logKey, "--out", out)
	if code != 0 {
		t.Fatalf("mirror through a refusing proxy: exit %d: %s", code, msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if refused < 2 {
		t.Fatalf("the proxy refused %d requests, want at least the checkpoint and a tile", refused)
	}
	for p, n := range seen {
		if n != 2 {
			t.Errorf("%s was asked %d times, want 2: once refused, once retried", p, n)
		}
	}
	cp, err := os.ReadFile(filepath.Join(out, "checkpoint"))
	if err != nil || !bytes.Contains(cp, []byte("\n2\n")) {
		t.Fatalf("mirrored checkpoint %q (%v), want tree size 2", cp, err)
	}
}

// waitABit pauses a polling loop between attempts.
func waitABit() { time.Sleep(50 * time.Millisecond) }
