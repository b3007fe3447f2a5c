package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// quireServer builds cmd/quire and runs `quire serve` on free 127.0.0.1 ports, with extra flags,
// until the test ends.
func quireServer(t *testing.T, extra ...string) (url, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "quire")
	build := exec.Command("go", "build", "-o", bin, "github.com/quirelog/quire/cmd/quire")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building quire: %v\n%s", err, out)
	}
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	url = "http://" + httpAddr
	dataDir = filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-listen", httpAddr, "--grpc-listen", grpcAddr, "--public-url", url, "--metrics-listen", "127.0.0.1:0")
	cmd.Args = append(cmd.Args, extra...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting quire serve: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("quire serve output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/checkpoint")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, dataDir
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("quire serve did not publish a checkpoint within 30s: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// quirectl runs a subcommand in-process and returns its exit code and output.
func quirectl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out, &out)
	if err != nil {
		fmt.Fprintf(&out, "error: %v\n", err)
		return exitCode(err), out.String()
	}
	return 0, out.String()
}

func TestSubmitVerifyMonitorMirrorAgainstQuireServe(t *testing.T) {
	url, dataDir := quireServer(t)
	work := t.TempDir()
	p := func(name string) string { return filepath.Join(work, name) }
	bin := filepath.Join(filepath.Dir(dataDir), "quire")
	if out, err := exec.Command(bin, "trust-root", "--url", url, "--data-dir", dataDir, "--out", work).CombinedOutput(); err != nil {
		t.Fatalf("quire trust-root: %v\n%s", err, out)
	}
	logKey := filepath.Join(dataDir, "log.pub")
	for i, kt := range []string{"ecdsa-p256", "ed25519", "rsa-2048"} {
		keyDir := p("keys-" + kt)
		if code, out := quirectl(t, "keygen", "--out", keyDir, "--type", kt); code != 0 {
			t.Fatalf("keygen %s: %s", kt, out)
		}
		if fi, err := os.Stat(filepath.Join(keyDir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("private key mode: %v %v", fi, err)
		}
		art := p(fmt.Sprintf("artifact-%d.txt", i))
		if err := os.WriteFile(art, []byte("release "+kt), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := quirectl(t, "submit", "--url", url, "--key", filepath.Join(keyDir, "key.pem"), "--artifact", art,
			"--bundle-out", p(fmt.Sprintf("bundle-%d.json", i)), "--log-key", logKey); code != 0 {
			t.Fatalf("submit with %s: %s", kt, out)
		}
	}
	bundle0, art0, root := p("bundle-0.json"), p("artifact-0.txt"), p("trusted_root.json")

	pubKey := func(kt string) string { return filepath.Join(p("keys-"+kt), "key.pub") }
	t.Run("a submitted bundle verifies offline and names its signer", func(t *testing.T) {
		for i, kt := range []string{"ecdsa-p256", "ed25519", "rsa-2048"} {
			code, out := quirectl(t, "verify", "--bundle", p(fmt.Sprintf("bundle-%d.json", i)), "--artifact", p(fmt.Sprintf("artifact-%d.txt", i)), "--trusted-root", root, "--key", pubKey(kt))
			if code != 0 || !strings.HasPrefix(out, "OK:") {
				t.Fatalf("verify bundle %d: exit %d: %s", i, code, out)
			}
			raw, err := os.ReadFile(pubKey(kt))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(raw)
			sum := sha256.Sum256(block.Bytes)
			if want := "signed by key SHA256:" + hex.EncodeToString(sum[:]); !strings.Contains(out, want) {
				t.Errorf("verify of bundle %d does not say %q:\n%s", i, want, out)
			}
		}
	})
	t.Run("verify without an expected signer is a usage error", func(t *testing.T) {
		code, out := quirectl(t, "verify", "--bundle", p("bundle-0.json"), "--artifact", p("artifact-0.txt"), "--trusted-root", root)
		if code != 2 || !strings.Contains(out, "who must have signed") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("verify fails the signer check for a bundle another key signed", func(t *testing.T) {
		code, out := quirectl(t, "verify", "--bundle", p("bundle-0.json"), "--artifact", p("artifact-0.txt"), "--trusted-root", root, "--key", pubKey("ed25519"))
		if code != 1 || !strings.Contains(out, "FAILED signer check") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("verify by certificate identity fails for a bundle signed by a bare key", func(t *testing.T) {
		code, out := quirectl(t, "verify", "--bundle", p("bundle-0.json"), "--artifact", p("artifact-0.txt"), "--trusted-root", root,
			"--certificate-identity", "release@example.com", "--certificate-oidc-issuer", "https://accounts.example.com")
		if code != 1 || !strings.Contains(out, "FAILED signer check") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("sigstore-go's verifier accepts a submitted bundle", func(t *testing.T) {
		sigstoreGoVerify(t, bundle0, art0, root, filepath.Join(p("keys-ecdsa-p256"), "key.pub"))
	})

	badBundle := p("bad-bundle.json")
	orig, err := os.ReadFile(bundle0)
	if err != nil {
		t.Fatal(err)
	}
	// A character inside the message signature's base64 (protojson varies the spacing after the
	// colon), changed to another base64 character so the bundle still decodes and only the
	// signature is wrong.
	j := bytes.Index(orig, []byte(`"signature":`))
	if j < 0 {
		t.Fatalf("no signature in bundle %s", orig)
	}
	i := j + len(`"signature":`) + bytes.IndexByte(orig[j+len(`"signature":`):], '"') + 6
	changed := byte('A')
	if orig[i] == changed {
		changed = 'B'
	}
	if err := os.WriteFile(badBundle, append(append(bytes.Clone(orig[:i]), changed), orig[i+1:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	changedArt := p("changed.txt")
	if err := os.WriteFile(changedArt, []byte("release ecdsa-p256 with a backdoor"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherRoot := p("other-root")
	otherData := p("other-data")
	if err := os.MkdirAll(otherData, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "keygen", "--origin", "127.0.0.1", "--out", otherData).CombinedOutput(); err != nil {
		t.Fatalf("quire keygen: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "trust-root", "--url", url, "--key", filepath.Join(otherData, "log.key"), "--out", otherRoot).CombinedOutput(); err != nil {
		t.Fatalf("quire trust-root for another key: %v\n%s", err, out)
	}
	_, witnessVKey := witnessKey(t)
	policy := p("policy.txt")
	if err := os.WriteFile(policy, []byte("witness w1 "+witnessVKey+" https://w1.example\nquorum w1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, bundle, artifact, root, policy, want string
	}{
		{"verify fails for a changed artifact", bundle0, changedArt, root, "", "artifact digest"},
		{"verify fails for a changed bundle byte", badBundle, art0, root, "", "signature"},
		{"verify fails for a wrong log key", bundle0, art0, filepath.Join(otherRoot, "trusted_root.json"), "", "checkpoint signature"},
		{"verify fails for an unmet witness policy", bundle0, art0, root, policy, "witness policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"verify", "--bundle", tc.bundle, "--artifact", tc.artifact, "--trusted-root", tc.root, "--key", pubKey("ecdsa-p256")}
			if tc.policy != "" {
				args = append(args, "--witness-policy", tc.policy)
			}
			code, out := quirectl(t, args...)
			if code != 1 || !strings.Contains(out, "FAILED "+tc.want+" check") {
				t.Fatalf("exit %d, output %q; want exit 1 naming the %s check", code, out, tc.want)
			}
		})
	}

	t.Run("monitor reports the entries of a watched key", func(t *testing.T) {
		code, out := quirectl(t, "monitor", "--url", url, "--log-key", logKey, "--state", p("monitor-state"),
			"--watch-key", filepath.Join(p("keys-ed25519"), "key.pub"), "--once")
		if code != 0 || strings.Count(out, `"reasons":["key"]`) != 1 || !strings.Contains(out, `"index":1,`) {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("mirror copies the log and the copy serves a verifiable log", func(t *testing.T) {
		mirrorDir := p("mirror")
		if code, out := quirectl(t, "mirror", "--url", url, "--log-key", logKey, "--out", mirrorDir, "--parallel", "2"); code != 0 {
			t.Fatalf("mirror: %s", out)
		}
		srv := httptestServeDir(mirrorDir)
		defer srv.Close()
		code, out := quirectl(t, "monitor", "--url", srv.URL, "--log-key", logKey, "--state", p("mirror-monitor-state"), "--once")
		if code != 0 || !strings.Contains(out, "→ 3") {
			t.Fatalf("monitoring the mirror: exit %d: %s", code, out)
		}
	})
}

func sigstoreGoVerify(t *testing.T, bundlePath, artifactPath, rootPath, pubPath string) {
	t.Helper()
	b, err := bundle.LoadJSONFromPath(bundlePath)
	if err != nil {
		t.Fatalf("sigstore-go cannot load the bundle: %v", err)
	}
	tr, err := root.NewTrustedRootFromPath(rootPath)
	if err != nil {
		t.Fatalf("sigstore-go cannot load the trusted root: %v", err)
	}
	pemData, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	keys := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(sv, time.Time{}, time.Time{}), nil
	})
	v, err := sgverify.NewVerifier(root.TrustedMaterialCollection{tr, keys}, sgverify.WithTransparencyLog(1), sgverify.WithNoObserverTimestamps())
	if err != nil {
		t.Fatal(err)
	}
	art, err := os.Open(artifactPath)
	if err != nil {
		t.Fatal(err)
	}
	defer art.Close()
	if _, err := v.Verify(b, sgverify.NewPolicy(sgverify.WithArtifact(art), sgverify.WithKey())); err != nil {
		t.Fatalf("sigstore-go rejects the bundle: %v", err)
	}
}
