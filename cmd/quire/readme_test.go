package main

import (
	"bytes"
	"context"
	"crypto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// README snippet: sigstore-go (begin)

// signAndVerify signs artifact with a new key, logs it on the Rekor v2 log that signingConfig
// names, and verifies the bundle against trustedRoot: the two files `quire trust-root` writes.
func signAndVerify(ctx context.Context, signingConfig, trustedRoot string, artifact []byte) (*bundle.Bundle, error) {
	sc, err := root.NewSigningConfigFromPath(signingConfig)
	if err != nil {
		return nil, err
	}
	tr, err := root.NewTrustedRootFromPath(trustedRoot)
	if err != nil {
		return nil, err
	}
	log, err := root.SelectService(sc.RekorLogURLs(), []uint32{2}, time.Now())
	if err != nil {
		return nil, err
	}
	key, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, err
	}
	pb, err := sign.Bundle(&sign.PlainData{Data: artifact}, key, sign.BundleOptions{
		Context:          ctx,
		TransparencyLogs: []sign.Transparency{sign.NewRekor(&sign.RekorOptions{BaseURL: log.URL, Version: 2})},
	})
	if err != nil {
		return nil, err
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, err
	}
	signer, err := signature.LoadVerifier(key.GetPublicKey(), crypto.SHA256)
	if err != nil {
		return nil, err
	}
	keys := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(signer, time.Time{}, time.Time{}), nil
	})
	// A key-signed Rekor v2 entry carries no timestamp of its own, so none is required here,
	// as with cosign verify-blob --key.
	v, err := verify.NewVerifier(root.TrustedMaterialCollection{tr, keys},
		verify.WithTransparencyLog(1), verify.WithNoObserverTimestamps())
	if err != nil {
		return nil, err
	}
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithKey()))
	return b, err
}

// README snippet: sigstore-go (end)

// snippetRE finds the README's Go snippet: the fenced block after its marker comment.
var snippetRE = regexp.MustCompile("(?s)<!-- snippet: sigstore-go -->\\s*```go\\n(.*?)```")

// TestREADMESigstoreGoSnippet keeps the README's sigstore-go example true: the README's block is
// exactly signAndVerify above (so it compiles), and signAndVerify works against a real log with
// the files `quire trust-root` wrote.
func TestREADMESigstoreGoSnippet(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := snippetRE.FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no <!-- snippet: sigstore-go --> Go block")
	}
	self, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(self), "// README snippet: sigstore-go (begin)\n\n")
	code, _, _ := strings.Cut(rest, "\n// README snippet: sigstore-go (end)")
	if string(m[1]) != code {
		t.Fatalf("the README's sigstore-go snippet differs from signAndVerify in readme_test.go; README:\n%s\ntest:\n%s", m[1], code)
	}

	work := t.TempDir()
	s := startServe(t, work)
	if code, _, stderr := runQuire(t, work, "trust-root", "--url", s.baseURL, "--data-dir", filepath.Join(work, defaultDataDir)); code != 0 {
		t.Fatalf("trust-root: exit %d: %s", code, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := signAndVerify(ctx, filepath.Join(work, signingConfigFile), filepath.Join(work, trustedRootFile), []byte("release 1.0"))
	if err != nil {
		t.Fatalf("the README's sigstore-go example fails against quire serve: %v", err)
	}
	if entries := b.GetVerificationMaterial().GetTlogEntries(); len(entries) != 1 || entries[0].GetKindVersion().GetVersion() != "0.0.2" {
		t.Fatalf("the bundle holds %d log entries, want one Rekor v2 entry", len(entries))
	}
	s.stop()
}
