package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/quirelog/quire/api/client/verify"
	"github.com/quirelog/quire/cmd/internal/cli"
)

func init() {
	commands["verify"] = cli.Command{Run: runVerify, Args: "--bundle FILE --artifact FILE --trusted-root FILE (--key PEMFILE | --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER) [--witness-policy FILE]",
		Summary: "verify a Sigstore bundle for an artifact offline, and who signed it (exit 0 only if every check holds)"}
}

func runVerify(_ context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	bundlePath := fs.String("bundle", "", "Sigstore bundle `FILE` (v0.3 JSON)")
	artifactPath := fs.String("artifact", "", "the artifact `FILE` the bundle signs")
	rootPath := fs.String("trusted-root", "", "trusted_root.json `FILE` naming the log keys (quire trust-root writes one)")
	policyPath := fs.String("witness-policy", "", "witness policy `FILE` the checkpoint's cosignatures must satisfy")
	keyPath := fs.String("key", "", "PEM public key `FILE` of the expected signer")
	var id verify.Identity
	fs.StringVar(&id.SubjectAlternativeName, "certificate-identity", "", "the `IDENTITY` (email, URI) the signing certificate must name; with --certificate-oidc-issuer")
	fs.StringVar(&id.SubjectAlternativeNameRegexp, "certificate-identity-regexp", "", "a `REGEXP` the identity the signing certificate names must match")
	fs.StringVar(&id.Issuer, "certificate-oidc-issuer", "", "the OIDC `ISSUER` the signing certificate must name")
	fs.StringVar(&id.IssuerRegexp, "certificate-oidc-issuer-regexp", "", "a `REGEXP` the OIDC issuer the signing certificate names must match")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundlePath == "" || *artifactPath == "" || *rootPath == "" {
		return cli.Usagef("--bundle, --artifact and --trusted-root are required")
	}
	byIdentity := id != verify.Identity{}
	switch {
	case *keyPath == "" && !byIdentity:
		return cli.Usagef("say who must have signed: --key, or --certificate-identity (or -regexp) and --certificate-oidc-issuer (or -regexp)")
	case *keyPath != "" && byIdentity:
		return cli.Usagef("give --key or a certificate identity, not both")
	case byIdentity && (id.SubjectAlternativeName == "") == (id.SubjectAlternativeNameRegexp == ""):
		return cli.Usagef("give one of --certificate-identity and --certificate-identity-regexp")
	case byIdentity && (id.Issuer == "") == (id.IssuerRegexp == ""):
		return cli.Usagef("give one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp")
	}
	bundle, err := os.ReadFile(*bundlePath)
	if err != nil {
		return err
	}
	rootJSON, err := os.ReadFile(*rootPath)
	if err != nil {
		return err
	}
	tr, err := verify.ParseTrustedRoot(rootJSON)
	if err != nil {
		return fmt.Errorf("--trusted-root %s: %w", *rootPath, err)
	}
	opts := verify.Options{TrustedRoot: tr}
	if byIdentity {
		opts.Identity = &id
	} else {
		pem, err := os.ReadFile(*keyPath)
		if err != nil {
			return err
		}
		if opts.PublicKey, err = verify.ParsePublicKeyPEM(pem); err != nil {
			return fmt.Errorf("--key %s: %w", *keyPath, err)
		}
	}
	if *policyPath != "" {
		p, err := os.ReadFile(*policyPath)
		if err != nil {
			return err
		}
		if opts.WitnessPolicy, err = verify.ParseWitnessPolicy(p); err != nil {
			return fmt.Errorf("--witness-policy %s: %w", *policyPath, err)
		}
	}
	artifact, err := os.Open(*artifactPath)
	if err != nil {
		return err
	}
	defer artifact.Close()
	res, err := verify.Bundle(bundle, artifact, opts)
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) {
			return fmt.Errorf("FAILED %s check: %w", ve.Check, ve.Err)
		}
		return err
	}
	fmt.Fprintf(inv.Stdout, "OK: %s entry %d in tree of size %d; digest, signature, signer, canonical body, inclusion proof, checkpoint signature", res.Origin, res.LogIndex, res.TreeSize)
	if opts.WitnessPolicy != nil {
		fmt.Fprint(inv.Stdout, " and witness policy")
	}
	fmt.Fprintln(inv.Stdout, " verified")
	fmt.Fprintf(inv.Stdout, "signed by %s\n", res.Signer)
	return nil
}
