package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStorageFaultsAreServerErrors(t *testing.T) {
	logs := &logBuffer{}
	l := startLog(t, captureLogs(logs))
	k := newSigner(t)
	if a := l.post(signArtifact(t, k, []byte("before the fault")).json()); a.status != http.StatusCreated {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if a := l.do(http.MethodGet, "/readyz", nil); a.status != http.StatusOK {
		t.Fatalf("a working log's /readyz: status %d: %s", a.status, a.body)
	}
	// The operator's nightmare: the data directory is removed under the running log.
	if err := os.RemoveAll(filepath.Join(l.dir, "log")); err != nil {
		t.Fatal(err)
	}

	t.Run("readiness fails even before a write notices, naming storage but not its files", func(t *testing.T) {
		a := l.do(http.MethodGet, "/readyz", nil)
		if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "FAILED storage") {
			t.Fatalf("/readyz: status %d, want 503 naming storage: %s", a.status, a.body)
		}
		if strings.Contains(string(a.body), l.dir) {
			t.Errorf("/readyz names the data directory: %s", a.body)
		}
	})
	t.Run("the process is still alive: /healthz is the liveness probe", func(t *testing.T) {
		if a := l.do(http.MethodGet, "/healthz", nil); a.status != http.StatusOK {
			t.Fatalf("/healthz: status %d, want 200: %s", a.status, a.body)
		}
	})
	t.Run("a write is a server error, not 404, and is logged at ERROR", func(t *testing.T) {
		a := l.post(signArtifact(t, k, []byte("after the fault")).json())
		if a.status != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500: %s", a.status, a.body)
		}
		e, err := decodeErrorBody(a.body)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(*e.Message, "storage") || strings.Contains(*e.Message, l.dir) {
			t.Errorf("message %q should say storage failed without naming files", *e.Message)
		}
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("no ERROR logged for the failed write:\n%s", logs)
		}
	})
	t.Run("readiness still fails after the write", func(t *testing.T) {
		if a := l.do(http.MethodGet, "/readyz", nil); a.status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz: status %d, want 503: %s", a.status, a.body)
		}
	})
}
