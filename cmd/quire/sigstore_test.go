package main

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/quirelog/quire/api/rekor"
)

// fsckModule is Tessera's own log checker, run from the Go module proxy at the version Quire builds on.
const fsckModule = "github.com/transparency-dev/tessera/cmd/fsck@v1.0.4"

// TestRealPeersAgree runs the real binary and has independent implementations check it:
// sigstore-go signs, submits through its Rekor v2 client, and verifies the bundle against the
// `quire trust-root` output; Tessera's fsck re-verifies every tile against the checkpoint.
func TestRealPeersAgree(t *testing.T) {
	work := t.TempDir()
	s := startServe(t, work)
	dataDir := filepath.Join(work, defaultDataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Enough entries for a full level-0 tile and a full entry bundle, plus partial ones.
	const entries, workers = 300, 8
	var wg sync.WaitGroup
	errs := make(chan error, entries)
	for w := range workers {
		k := newECDSA(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < entries; i += workers {
				body, err := signHashedRekord(k, []byte(fmt.Sprintf("peer test %d", i)))
				if err != nil {
					errs <- err
					return
				}
				status, answer, err := s.tryPost(body)
				if err != nil {
					errs <- fmt.Errorf("entry %d: %w", i, err)
					return
				}
				if status != http.StatusCreated {
					errs <- fmt.Errorf("entry %d: status %d: %s", i, status, answer)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	trustDir := filepath.Join(work, "trust")
	if code, _, stderr := runQuire(t, work, "trust-root", "--url", s.baseURL, "--data-dir", dataDir, "--out", trustDir); code != 0 {
		t.Fatalf("trust-root: exit %d: %s", code, stderr)
	}

	t.Run("sigstore-go accepts the signing config", func(t *testing.T) {
		sc, err := root.NewSigningConfigFromPath(filepath.Join(trustDir, signingConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		urls := sc.RekorLogURLs()
		if len(urls) != 1 || urls[0].URL != s.baseURL || urls[0].MajorAPIVersion != 2 {
			t.Fatalf("rekor URLs %+v, want one v2 log at %s", urls, s.baseURL)
		}
		if _, err := root.SelectService(urls, []uint32{2}, time.Now()); err != nil {
			t.Fatalf("sigstore-go cannot select the log now: %v", err)
		}
	})

	trustedRoot, err := root.NewTrustedRootFromPath(filepath.Join(trustDir, trustedRootFile))
	if err != nil {
		t.Fatalf("sigstore-go rejects trusted_root.json: %v", err)
	}

	artifact := []byte("signed by sigstore-go, logged by quire")
	signed := sigstoreSign(ctx, t, s.baseURL, artifact)
	verifyWith := func(tr root.TrustedMaterial, artifact []byte) error { return signed.verify(tr, artifact) }

	t.Run("sigstore-go verifies the bundle against the trust-root output", func(t *testing.T) {
		if err := verifyWith(trustedRoot, artifact); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sigstore-go rejects the bundle for another artifact", func(t *testing.T) {
		if err := verifyWith(trustedRoot, []byte("something else")); err == nil {
			t.Fatal("a bundle verified for an artifact it does not sign")
		}
	})
	t.Run("sigstore-go rejects the bundle under a trust root for another key", func(t *testing.T) {
		otherDir := filepath.Join(work, "other")
		if code, _, stderr := runQuire(t, work, "keygen", "--origin", "127.0.0.1", "--out", otherDir); code != 0 {
			t.Fatalf("keygen: %s", stderr)
		}
		if code, _, stderr := runQuire(t, work, "trust-root", "--url", s.baseURL, "--key", filepath.Join(otherDir, pubFileName), "--out", otherDir); code != 0 {
			t.Fatalf("trust-root: %s", stderr)
		}
		other, err := root.NewTrustedRootFromPath(filepath.Join(otherDir, trustedRootFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyWith(other, artifact); err == nil {
			t.Fatal("a bundle verified under a trust root for a different log key")
		}
	})

	t.Run("Tessera's fsck verifies every tile the server wrote", func(t *testing.T) {
		out, err := runFsck(ctx, t, s.baseURL, filepath.Join(dataDir, pubFileName))
		if err != nil {
			t.Fatalf("fsck failed: %v\n%s", err, out)
		}
	})
	t.Run("Tessera's fsck fails the log under another key", func(t *testing.T) {
		if out, err := runFsck(ctx, t, s.baseURL, filepath.Join(work, "other", pubFileName)); err == nil {
			t.Fatalf("fsck passed with the wrong key:\n%s", out)
		}
	})

	s.stop()
}

func TestTrustRoot(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runQuire(t, dir, "keygen", "--origin", "log.example.com", "--out", "keys"); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "a URL whose host is the origin gives files sigstore-go loads", args: []string{"--url", "https://log.example.com", "--key", "keys/log.key", "--out", "out"}},
		{name: "the verifier key alone is enough", args: []string{"--url", "https://log.example.com:8443", "--key", "keys/log.pub", "--out", "out2"}},
		{name: "a URL for another host is refused, since clients check checkpoints against it", args: []string{"--url", "https://elsewhere.example", "--key", "keys/log.key"}, wantCode: 1, wantErr: "origin"},
		{name: "a URL that is not http is refused", args: []string{"--url", "ftp://log.example.com", "--key", "keys/log.key"}, wantCode: 1, wantErr: "http"},
		{name: "both --data-dir and --key is a usage error", args: []string{"--url", "https://log.example.com", "--key", "keys/log.key", "--data-dir", "keys"}, wantCode: 2, wantErr: "exactly one"},
		{name: "no --url is a usage error", args: []string{"--key", "keys/log.key"}, wantCode: 2, wantErr: "--url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runQuire(t, dir, append([]string{"trust-root"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, stderr)
			}
			if code != 0 {
				if tc.wantErr == "" || !strings.Contains(stderr, tc.wantErr) {
					t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
				}
				return
			}
			out := filepath.Join(dir, tc.args[len(tc.args)-1])
			tr, err := root.NewTrustedRootFromPath(filepath.Join(out, trustedRootFile))
			if err != nil {
				t.Fatalf("sigstore-go rejects the trusted root: %v", err)
			}
			logs := tr.RekorLogs()
			if len(logs) != 1 {
				t.Fatalf("%d logs in the trusted root, want 1", len(logs))
			}
			key, err := readPublicKey(filepath.Join(dir, "keys", pubFileName), "", "")
			if err != nil {
				t.Fatal(err)
			}
			for id, l := range logs {
				if l.BaseURL != tc.args[1] {
					t.Errorf("baseUrl %q", l.BaseURL)
				}
				if !bytes.Equal([]byte(l.ID), mustKeyID(t, key.vkey)) {
					t.Errorf("log ID %x is not the one CreateEntry answers with", l.ID)
				}
				if id == "" {
					t.Error("empty log ID")
				}
				if l.ValidityPeriodStart.IsZero() {
					t.Error("no validFor start")
				}
			}
			if _, err := root.NewSigningConfigFromPath(filepath.Join(out, signingConfigFile)); err != nil {
				t.Fatalf("sigstore-go rejects the signing config: %v", err)
			}
		})
	}
}

func mustKeyID(t *testing.T, vkey string) []byte {
	t.Helper()
	id, err := rekor.KeyID(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runFsck runs Tessera's fsck against the log at baseURL. fsck v1.0.4 reports a failed check in its
// log and still exits 0, so success is its "Successfully fsck'd log with size N" line, its report
// of the completed ranges and no failure line.
func runFsck(ctx context.Context, t *testing.T, baseURL, pubKey string) (string, error) {
	t.Helper()
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(fctx, "go", "run", fsckModule,
		"--storage_url="+baseURL+"/", "--public_key="+pubKey, "--ui=false", "-v=1")
	// Outside the module, so `go run pkg@version` resolves fsck's own dependencies.
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		return string(out), fmt.Errorf("fsck exited: %w", err)
	case strings.Contains(string(out), "fsck failed"):
		return string(out), fmt.Errorf("fsck reported a failure")
	case !strings.Contains(string(out), "Completed ranges"):
		return string(out), fmt.Errorf("fsck did not report completing")
	case !strings.Contains(string(out), "Successfully fsck'd log with size"):
		return string(out), fmt.Errorf("fsck did not report success")
	}
	return string(out), nil
}

// sigstoreBundle is a bundle sigstore-go made: it signed an artifact with a new key and logged it
// through its own Rekor v2 client.
type sigstoreBundle struct {
	b   *bundle.Bundle
	key root.TrustedMaterial
}

// sigstoreSign has sigstore-go sign artifact with a new key and log it at baseURL.
func sigstoreSign(ctx context.Context, t *testing.T, baseURL string, artifact []byte) *sigstoreBundle {
	t.Helper()
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := sign.Bundle(&sign.PlainData{Data: artifact}, kp, sign.BundleOptions{
		Context:          ctx,
		TransparencyLogs: []sign.Transparency{sign.NewRekor(&sign.RekorOptions{BaseURL: baseURL, Version: 2, Timeout: 30 * time.Second})},
	})
	if err != nil {
		t.Fatalf("sigstore-go signing and submitting to %s: %v", baseURL, err)
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		t.Fatal(err)
	}
	keyMaterial := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		v, err := signature.LoadVerifier(kp.GetPublicKey(), crypto.SHA256)
		if err != nil {
			return nil, err
		}
		return root.NewExpiringKey(v, time.Time{}, time.Time{}), nil
	})
	return &sigstoreBundle{b: b, key: keyMaterial}
}

// verify is cosign-style verification through sigstore-go: the bundle's entry must be in a log tr
// trusts (its checkpoint verified with the log key by rekor-tiles' note verifier), for artifact,
// signed by the bundle's key.
func (sb *sigstoreBundle) verify(tr root.TrustedMaterial, artifact []byte) error {
	v, err := verify.NewVerifier(root.TrustedMaterialCollection{tr, sb.key}, verify.WithTransparencyLog(1), verify.WithNoObserverTimestamps())
	if err != nil {
		return err
	}
	_, err = v.Verify(sb.b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithKey()))
	return err
}
