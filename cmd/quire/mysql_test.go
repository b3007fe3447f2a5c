package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/storage/mysql/mysqltest"
)

// runServeEnv runs `quire serve` with env added, expecting it to exit on its own (a refused
// start), and returns its exit code and stderr.
func runServeEnv(t *testing.T, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, quireBinary(t), append([]string{"serve", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatalf("running quire serve: %v", err)
	}
	return 0, stderr.String()
}

// TestServeOnMySQL runs two front ends on one MariaDB database, the URL in QUIRE_STORAGE: what one
// logs, the other deduplicates, finds by search and proves with the same past checkpoints; a
// front end with another key is refused; and no password reaches a log line.
func TestServeOnMySQL(t *testing.T) {
	dsn := mysqltest.Database(t)
	password := dsn[strings.Index(dsn, ":")+1 : strings.Index(dsn, "@")]
	env := []string{"QUIRE_STORAGE=mysql://" + dsn}
	dir := t.TempDir()
	if code, out, errOut := runQuire(t, dir, "keygen", "--origin", "mysql.quire.test", "--out", "keys"); code != 0 {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	key := filepath.Join("keys", keyFileName)
	common := []string{"--key", key, "--origin", "mysql.quire.test", "--public-url", "http://mysql.quire.test"}
	a := startServeEnv(t, dir, env, append([]string{"--data-dir", "a"}, common...)...)
	b := startServeEnv(t, dir, env, append([]string{"--data-dir", "b"}, common...)...)
	_, v := readVerifier(t, filepath.Join(dir, "keys"))
	k := newECDSA(t)
	entry := hashedRekord(t, k, []byte("logged once, through front end a"))

	status, raw := a.post(entry)
	if status != http.StatusCreated {
		t.Fatalf("POST to a: %d %s", status, raw)
	}
	tle := &rekorv1.TransparencyLogEntry{}
	if err := protojson.Unmarshal(raw, tle); err != nil {
		t.Fatal(err)
	}
	index := tle.GetLogIndex()
	cp := tle.GetInclusionProof().GetCheckpoint().GetEnvelope()
	size := openCheckpoint(t, v, []byte(cp)).Size

	t.Run("the copy sent to the other front end gets the first copy's index", func(t *testing.T) {
		resp, err := http.Post(b.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(entry))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || resp.Header.Get("X-Log-Index") != fmt.Sprint(index) {
			t.Fatalf("POST to b: %d, X-Log-Index %q; want 409 and %d", resp.StatusCode, resp.Header.Get("X-Log-Index"), index)
		}
	})
	t.Run("both front ends serve the answered checkpoint as the one of its size", func(t *testing.T) {
		for name, fe := range map[string]*serveProc{"a": a, "b": b} {
			status, body := fe.get(fmt.Sprintf("/quire/v1/checkpoints?size=%d", size))
			past := &rekorv1.Checkpoint{}
			if err := protojson.Unmarshal(body, past); status != http.StatusOK || err != nil || past.GetEnvelope() != cp {
				t.Errorf("%s: checkpoint of size %d: %d %s (%v), want the answer's", name, size, status, body, err)
			}
		}
	})
	t.Run("a size no front end saw published is not found", func(t *testing.T) {
		// Write more so that the log is larger than the size asked for.
		for i := range 3 {
			if status, body := b.post(hashedRekord(t, k, fmt.Appendf(nil, "more %d", i))); status != http.StatusCreated {
				t.Fatalf("POST to b: %d %s", status, body)
			}
		}
		for _, fe := range []*serveProc{a, b} {
			if status, body := fe.get(fmt.Sprintf("/quire/v1/checkpoints?size=%d", size+1)); status != http.StatusNotFound {
				// Batches of one write each could have published size+1; then it must be right.
				past := &rekorv1.Checkpoint{}
				if status != http.StatusOK || protojson.Unmarshal(body, past) != nil || openCheckpoint(t, v, []byte(past.GetEnvelope())).Size != size+1 {
					t.Errorf("checkpoint of size %d: %d %s", size+1, status, body)
				}
			}
		}
	})
	t.Run("the other front end finds the entry by digest and by key", func(t *testing.T) {
		digest := sha256.Sum256([]byte("logged once, through front end a"))
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		fp := sha256.Sum256(der)
		want := fmt.Sprintf(`"%d"`, index)
		for _, path := range []string{"/quire/v1/search?digest=sha256:" + hex.EncodeToString(digest[:]), "/quire/v1/search?key=" + hex.EncodeToString(fp[:])} {
			deadline := time.Now().Add(30 * time.Second)
			for {
				status, body := b.get(path)
				if status == http.StatusOK && bytes.Contains(body, []byte(want)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s on b: %d %s; want index %d", path, status, body, index)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	t.Run("a front end with another key is refused and says why", func(t *testing.T) {
		if code, out, errOut := runQuire(t, dir, "keygen", "--origin", "mysql.quire.test", "--out", "other"); code != 0 {
			t.Fatalf("keygen: %d %s %s", code, out, errOut)
		}
		code, stderr := runServeEnv(t, dir, env, "--data-dir", "c", "--key", filepath.Join("other", keyFileName), "--origin", "mysql.quire.test")
		if code != 1 || !strings.Contains(stderr, "the database belongs to the log with verifier key") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("a MySQL front end without --key is a usage error", func(t *testing.T) {
		code, stderr := runServeEnv(t, dir, env, "--data-dir", "d")
		if code != 2 || !strings.Contains(stderr, "needs --key") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("a wrong password is refused without being printed", func(t *testing.T) {
		bad := strings.Replace(dsn, password, "wrong-pw-4711", 1)
		code, stderr := runServeEnv(t, dir, []string{"QUIRE_STORAGE=mysql://" + bad}, append([]string{"--data-dir", "e"}, common...)...)
		if code != 1 || !strings.Contains(stderr, "connecting to MySQL") || strings.Contains(stderr, "wrong-pw-4711") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	a.stop()
	b.stop()
	t.Run("no front end logged the password", func(t *testing.T) {
		for name, fe := range map[string]*serveProc{"a": a, "b": b} {
			logged := fe.stderr.String()
			if strings.Contains(logged, password) {
				t.Errorf("%s logged the database password:\n%s", name, logged)
			}
			if !strings.Contains(logged, "storage=\"mysql ") {
				t.Errorf("%s did not say which storage it serves from:\n%s", name, logged)
			}
		}
	})
}
