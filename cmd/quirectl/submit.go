package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/client/atomicfile"
	"github.com/quirelog/quire/api/client/verify"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/keyfile"
)

func init() {
	commands["submit"] = command{summary: "sign an artifact, log it, check the answer and write a Sigstore bundle", run: runSubmit}
}

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logURL := fs.String("url", "", "base URL of the Rekor v2 compatible log")
	keyPath := fs.String("key", "", "PKCS#8 PEM private key (quirectl keygen writes one)")
	artifactPath := fs.String("artifact", "", "the artifact to sign")
	bundleOut := fs.String("bundle-out", "", "where to write the Sigstore bundle (v0.3 JSON)")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key, or a file holding it; the answer is checked against it")
	policyPath := fs.String("witness-policy", "", "witness policy the answer's checkpoint must satisfy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *keyPath == "" || *artifactPath == "" || *bundleOut == "" || *logKey == "" || fs.NArg() > 0 {
		return errors.New("submit: --url, --key, --artifact, --bundle-out and --log-key are required (an answer cannot be checked without the log's key)")
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	vkey := *logKey
	if data, err := os.ReadFile(vkey); err == nil {
		vkey = strings.TrimSpace(string(data))
	}
	tr, err := verify.TrustedRootForLog(vkey)
	if err != nil {
		return fmt.Errorf("submit: --log-key: %w", err)
	}
	opts := verify.Options{TrustedRoot: tr, PublicKey: signer.Public()}
	if *policyPath != "" {
		p, err := os.ReadFile(*policyPath)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		if opts.WitnessPolicy, err = verify.ParseWitnessPolicy(p); err != nil {
			return fmt.Errorf("submit: %w", err)
		}
	}
	alg, err := client.AlgorithmFor(signer.Public())
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	digest, err := digestFile(*artifactPath, alg)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	req, err := client.NewHashedRekordRequest(signer, digest)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	c, err := client.New(*logURL)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	tle, err := c.CreateEntry(ctx, req)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return fmt.Errorf("submit: encoding public key: %w", err)
	}
	hashAlg, err := rekor.HashAlgorithmFor(alg.Hash)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	b := verify.NewBundle(tle, hashAlg, digest, req.GetHashedRekordRequestV002().GetSignature().GetContent(), pubDER)

	// The receipt is only worth keeping if it verifies offline exactly as a verifier will check it.
	artifact, err := os.Open(*artifactPath)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	defer artifact.Close()
	res, err := verify.ParsedBundle(b, artifact, opts)
	if err != nil {
		return &exitStatus{code: 1, err: fmt.Errorf("submit: the log's answer does not verify: %w", err)}
	}
	j, err := verify.MarshalBundle(b)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	if err := atomicfile.Write(*bundleOut, j, 0o644, atomicfile.Options{Sync: true}); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(stdout, "logged at index %d of %s (tree size %d); bundle written to %s\n", res.LogIndex, res.Origin, res.TreeSize, *bundleOut)
	return nil
}

// loadSigner reads a PKCS#8 PEM private key file that only its owner may access.
func loadSigner(path string) (crypto.Signer, error) {
	data, err := keyfile.ReadPrivate(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM PRIVATE KEY (PKCS#8) block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T cannot sign", path, k)
	}
	return s, nil
}

func digestFile(path string, alg client.Algorithm) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return alg.Digest(f)
}
