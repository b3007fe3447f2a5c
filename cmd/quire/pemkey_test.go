package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"google.golang.org/protobuf/encoding/protojson"
)

// openssl runs openssl with args, failing the test if it is missing or fails.
func openssl(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (apt-get install openssl; .ci/run installs it)")
	}
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

// TestServeSignsWithOpenSSLKeys serves a log whose checkpoint key is a PEM file made by `openssl
// genpkey`, as an operator of rekor-tiles holds it, and has sigstore-go sign, submit and verify
// against a trusted root that names only that key's PEM public half: the checkpoints, signatures
// and log IDs are those rekor-tiles would make with the key.
func TestServeSignsWithOpenSSLKeys(t *testing.T) {
	for _, tc := range []struct {
		name     string
		genpkey  []string
		password string
	}{
		{name: "an Ed25519 key", genpkey: []string{"-algorithm", "ed25519"}},
		{name: "a password-protected ECDSA P-256 key", genpkey: []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-256-cbc", "-pass", "pass:open sesame"}, password: "open sesame"},
	} {
		t.Run(tc.name+" signs checkpoints sigstore-go verifies with only the PEM public key", func(t *testing.T) {
			work := t.TempDir()
			keyPath, pubPath := filepath.Join(work, "checkpoint.pem"), filepath.Join(work, "checkpoint.pub.pem")
			openssl(t, append(append([]string{"genpkey"}, tc.genpkey...), "-out", keyPath)...)
			openssl(t, "pkey", "-in", keyPath, "-passin", "pass:"+tc.password, "-pubout", "-out", pubPath)
			if err := os.Chmod(keyPath, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--key", keyPath}
			if tc.password != "" {
				args = append(args, "--key-password", tc.password)
			}
			s := startServe(t, work, args...)

			trustDir := filepath.Join(work, "trust")
			if code, _, stderr := runQuire(t, work, "trust-root", "--url", s.baseURL, "--key", pubPath, "--out", trustDir); code != 0 {
				t.Fatalf("trust-root: exit %d: %s", code, stderr)
			}
			tr, err := root.NewTrustedRootFromPath(filepath.Join(trustDir, trustedRootFile))
			if err != nil {
				t.Fatal(err)
			}
			wantDER := pemDER(t, pubPath)
			for _, l := range tr.RekorLogs() {
				der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
				if err != nil || !bytes.Equal(der, wantDER) {
					t.Fatalf("the trusted root names a key other than the PEM public key")
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			artifact := []byte("signed with an openssl key: " + tc.name)
			signed := sigstoreSign(ctx, t, s.baseURL, artifact)
			if err := signed.verify(tr, artifact); err != nil {
				t.Fatalf("sigstore-go rejects the bundle: %v", err)
			}

			status, body := s.post(hashedRekord(t, newECDSA(t), []byte("over REST")))
			if status != http.StatusCreated {
				t.Fatalf("status %d: %s", status, body)
			}
			tle := &rekorv1.TransparencyLogEntry{}
			if err := protojson.Unmarshal(body, tle); err != nil {
				t.Fatal(err)
			}
			pub, err := x509.ParsePKIXPublicKey(wantDER)
			if err != nil {
				t.Fatal(err)
			}
			_, wantID, err := rekornote.KeyHash("127.0.0.1", pub)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tle.GetLogId().GetKeyId(), wantID) {
				t.Errorf("logId.keyId %x, rekor-tiles would answer %x", tle.GetLogId().GetKeyId(), wantID)
			}

			otherKey, otherPub := filepath.Join(work, "other.pem"), filepath.Join(work, "other.pub.pem")
			openssl(t, append(append([]string{"genpkey"}, tc.genpkey...), "-out", otherKey)...)
			openssl(t, "pkey", "-in", otherKey, "-passin", "pass:"+tc.password, "-pubout", "-out", otherPub)
			otherDir := filepath.Join(work, "other")
			if code, _, stderr := runQuire(t, work, "trust-root", "--url", s.baseURL, "--key", otherPub, "--out", otherDir); code != 0 {
				t.Fatalf("trust-root: %s", stderr)
			}
			other, err := root.NewTrustedRootFromPath(filepath.Join(otherDir, trustedRootFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := signed.verify(other, artifact); err == nil {
				t.Fatal("the bundle verified under a trusted root for another key of the same kind")
			}
			s.stop()
		})
	}
}

func pemDER(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	return block.Bytes
}

func TestKeygenPEMAndKMSFlags(t *testing.T) {
	dir := t.TempDir()
	t.Run("keygen --format pem writes an encrypted PKCS#8 key whose verifier key is its log.pub", func(t *testing.T) {
		code, _, stderr := runQuire(t, dir, "keygen", "--origin", "log.example", "--out", "k", "--format", "pem", "--type", "ecdsa-p256", "--key-password", "pw")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		keyPath := filepath.Join(dir, "k", pemKeyFileName)
		fi, err := os.Stat(keyPath)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v", err)
		}
		if b := mustRead(t, keyPath); !strings.HasPrefix(b, "-----BEGIN ENCRYPTED PRIVATE KEY-----") {
			t.Fatalf("key file is not an encrypted PKCS#8 PEM:\n%.40s", b)
		}
		key, err := keySource{path: keyPath, password: "pw", origin: "log.example"}.load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(mustRead(t, filepath.Join(dir, "k", pubFileName))); key.vkey != want {
			t.Fatalf("the key's verifier key %s is not log.pub's %s", key.vkey, want)
		}
		if _, err := (keySource{path: keyPath, password: "wrong", origin: "log.example"}).load(context.Background()); err == nil {
			t.Fatal("the key loaded with the wrong password")
		}
	})
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"keygen with an unknown format is a usage error", []string{"keygen", "--origin", "a", "--out", "x", "--format", "jwk"}, 2, "--format"},
		{"keygen --format note with a password is a usage error", []string{"keygen", "--origin", "a", "--out", "x", "--key-password", "p"}, 2, "--format pem"},
		{"serve with both --key and --kms is a usage error", []string{"serve", "--key", "k", "--kms", "awskms:///alias/x"}, 2, "not both"},
		{"serve with a KMS URI no provider serves says so", []string{"serve", "--kms", "nosuchkms://key", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, 1, "nosuchkms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runQuire(t, dir, tc.args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d; stderr lacks %q:\n%s", code, tc.wantCode, tc.want, stderr)
			}
		})
	}
}

// TestKMSProvidersAreLinked checks that the binary registers every KMS provider sigstore/sigstore
// ships, so --kms reaches each of them (their calls need the cloud, which tests cannot reach).
func TestKMSProvidersAreLinked(t *testing.T) {
	got := kms.SupportedProviders()
	for _, scheme := range []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"} {
		if !slices.Contains(got, scheme) {
			t.Errorf("provider %s is not registered (have %v)", scheme, got)
		}
	}
}
