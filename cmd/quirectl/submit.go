package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/client/atomicfile"
	"github.com/quirelog/quire/api/client/verify"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/keyfile"
)

func init() {
	commands["submit"] = cli.Command{Run: runSubmit, Args: "--url URL --key FILE --artifact FILE --bundle-out FILE --log-key VKEY",
		Summary: "sign an artifact, log it, check the answer and write a Sigstore bundle"}
}

func runSubmit(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	logURL := fs.String("url", "", "base `URL` of the Rekor v2 compatible log")
	keyPath := fs.String("key", "", "PKCS#8 PEM private key `FILE` (quirectl keygen writes one)")
	artifactPath := fs.String("artifact", "", "the artifact `FILE` to sign")
	bundleOut := fs.String("bundle-out", "", "`FILE` to write the Sigstore bundle (v0.3 JSON) to")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key (`VKEY`), or a file holding it; the answer is checked against it")
	policyPath := fs.String("witness-policy", "", "witness policy `FILE` the answer's checkpoint must satisfy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *keyPath == "" || *artifactPath == "" || *bundleOut == "" || *logKey == "" {
		return cli.Usagef("--url, --key, --artifact, --bundle-out and --log-key are required (an answer cannot be checked without the log's key)")
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return err
	}
	vkey := *logKey
	if data, err := os.ReadFile(vkey); err == nil {
		vkey = strings.TrimSpace(string(data))
	}
	tr, err := verify.TrustedRootForLog(vkey)
	if err != nil {
		return cli.Usagef("--log-key: %w", err)
	}
	opts := verify.Options{TrustedRoot: tr, PublicKey: signer.Public()}
	if *policyPath != "" {
		p, err := os.ReadFile(*policyPath)
		if err != nil {
			return err
		}
		if opts.WitnessPolicy, err = verify.ParseWitnessPolicy(p); err != nil {
			return fmt.Errorf("--witness-policy %s: %w", *policyPath, err)
		}
	}
	alg, err := client.AlgorithmFor(signer.Public())
	if err != nil {
		return err
	}
	digest, err := digestFile(*artifactPath, alg)
	if err != nil {
		return err
	}
	req, err := client.NewHashedRekordRequest(signer, digest)
	if err != nil {
		return err
	}
	c, err := client.New(*logURL, client.WithHTTPClient(httpClient(inv.Stderr)), client.WithUserAgent("quirectl"))
	if err != nil {
		return cli.Usagef("--url: %w", err)
	}
	tle, err := c.CreateEntry(ctx, req)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return fmt.Errorf("encoding public key: %w", err)
	}
	hashAlg, err := rekor.HashAlgorithmFor(alg.Hash)
	if err != nil {
		return err
	}
	b := verify.NewBundle(tle, hashAlg, digest, req.GetHashedRekordRequestV002().GetSignature().GetContent(), pubDER)

	// The receipt is only worth keeping if it verifies offline exactly as a verifier will check it.
	artifact, err := os.Open(*artifactPath)
	if err != nil {
		return err
	}
	defer artifact.Close()
	res, err := verify.ParsedBundle(b, artifact, opts)
	if err != nil {
		return fmt.Errorf("the log's answer does not verify: %w", err)
	}
	j, err := verify.MarshalBundle(b)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*bundleOut, j, 0o644, atomicfile.Options{Sync: true}); err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "logged at index %d of %s (tree size %d); bundle written to %s\n", res.LogIndex, res.Origin, res.TreeSize, *bundleOut)
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
