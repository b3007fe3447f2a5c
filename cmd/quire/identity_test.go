package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quirelog/quire/cmd/internal/clitest"
)

// TestALogsIdentityIsPinned starts a log with a key, then tries to start its data directory again
// with every other key an operator could give it, and checks each start is refused, names both
// identities and leaves the log as it was.
func TestALogsIdentityIsPinned(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	work := t.TempDir()
	const origin = "log.example.org"
	for _, k := range []struct{ dir, origin string }{{"keys", origin}, {"other", origin}, {"elsewhere", "other.example.org"}} {
		if code, _, stderr := runQuire(t, work, "keygen", "--origin", k.origin, "--out", k.dir); code != 0 {
			t.Fatalf("keygen: exit %d: %s", code, stderr)
		}
	}
	vkey := strings.TrimSpace(mustRead(t, filepath.Join(work, "keys", pubFileName)))
	dataDir := filepath.Join(work, "data")
	serveArgs := func(keyDir, origin string) []string {
		return []string{"--data-dir", dataDir, "--key", filepath.Join(keyDir, keyFileName), "--origin", origin}
	}
	s := startServe(t, work, serveArgs("keys", origin)...)
	if status, body := s.post(hashedRekord(t, newECDSA(t), []byte("pinned"))); status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	_, before := s.get("/checkpoint")
	s.stop()
	record := mustRead(t, filepath.Join(dataDir, "identity"))
	if !strings.Contains(record, origin) || !strings.Contains(record, vkey) {
		t.Fatalf("the data directory's identity record does not name the log:\n%s", record)
	}

	refused := func(t *testing.T, args []string, others ...string) {
		t.Helper()
		code, _, stderr := runQuire(t, work, append([]string{"serve", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, args...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, stderr)
		}
		for _, want := range append([]string{vkey, "new log", "new data directory"}, others...) {
			if !strings.Contains(stderr, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, stderr)
			}
		}
		if got := mustRead(t, filepath.Join(dataDir, "identity")); got != record {
			t.Errorf("a refused start changed the identity record to:\n%s", got)
		}
	}
	t.Run("another key for the same origin is refused, naming both keys", func(t *testing.T) {
		refused(t, serveArgs("other", origin), strings.TrimSpace(mustRead(t, filepath.Join(work, "other", pubFileName))))
	})
	t.Run("a key for another origin is refused, naming both origins", func(t *testing.T) {
		refused(t, serveArgs("elsewhere", "other.example.org"), "other.example.org", origin)
	})
	t.Run("a data directory from before the record is pinned only to the key that signed it", func(t *testing.T) {
		if err := os.Rename(filepath.Join(dataDir, "identity"), filepath.Join(work, "identity.saved")); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runQuire(t, work, append([]string{"serve", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, serveArgs("other", origin)...)...)
		if code != 1 || !strings.Contains(stderr, "not signed by") || !strings.Contains(stderr, "new log") {
			t.Fatalf("a key that did not sign the log was pinned: exit %d:\n%s", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "identity")); !os.IsNotExist(err) {
			t.Fatalf("the refused start recorded an identity: %v", err)
		}
		if err := os.Rename(filepath.Join(work, "identity.saved"), filepath.Join(dataDir, "identity")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the log's own key still serves the same tree", func(t *testing.T) {
		s := startServe(t, work, serveArgs("keys", origin)...)
		_, after := s.get("/checkpoint")
		s.stop()
		if !bytes.Equal(before[:bytes.Index(before, []byte("\n\n"))], after[:bytes.Index(after, []byte("\n\n"))]) {
			t.Fatalf("the checkpoint changed across refused starts:\n%s\nthen\n%s", before, after)
		}
	})
}

// TestAKeyPutInPlaceOfServesIsRefused replaces the key `quire serve` made for itself by another,
// as a careless copy would, and checks the log refuses to sign under it.
func TestAKeyPutInPlaceOfServesIsRefused(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	work := t.TempDir()
	dataDir := filepath.Join(work, defaultDataDir)
	s := startServe(t, work)
	if status, body := s.post(hashedRekord(t, newECDSA(t), []byte("made by serve"))); status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	s.stop()
	vkey, _ := readVerifier(t, dataDir)
	if code, _, stderr := runQuire(t, work, "keygen", "--origin", "127.0.0.1", "--out", "new"); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	for _, name := range []string{keyFileName, pubFileName} {
		if err := os.Rename(filepath.Join(work, "new", name), filepath.Join(dataDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runQuire(t, work, "serve", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
	newVKey, _ := readVerifier(t, dataDir)
	if code != 1 || !strings.Contains(stderr, vkey) || !strings.Contains(stderr, newVKey) {
		t.Fatalf("a replaced key was taken: exit %d:\n%s", code, stderr)
	}
}
