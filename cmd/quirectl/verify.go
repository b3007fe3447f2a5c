package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/quirelog/quire/api/client/verify"
)

func init() {
	commands["verify"] = command{summary: "verify a Sigstore bundle for an artifact offline (exit 0 only if every check holds)", run: runVerify}
}

func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bundlePath := fs.String("bundle", "", "Sigstore bundle (v0.3 JSON)")
	artifactPath := fs.String("artifact", "", "the artifact the bundle signs")
	rootPath := fs.String("trusted-root", "", "trusted_root.json naming the log keys (quire trust-root writes one)")
	policyPath := fs.String("witness-policy", "", "witness policy the checkpoint's cosignatures must satisfy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundlePath == "" || *artifactPath == "" || *rootPath == "" || fs.NArg() > 0 {
		return errors.New("verify: --bundle, --artifact and --trusted-root are required")
	}
	bundle, err := os.ReadFile(*bundlePath)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rootJSON, err := os.ReadFile(*rootPath)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	tr, err := verify.ParseTrustedRoot(rootJSON)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	opts := verify.Options{TrustedRoot: tr}
	if *policyPath != "" {
		p, err := os.ReadFile(*policyPath)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if opts.WitnessPolicy, err = verify.ParseWitnessPolicy(p); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	artifact, err := os.Open(*artifactPath)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer artifact.Close()
	res, err := verify.Bundle(bundle, artifact, opts)
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) {
			return &exitStatus{code: 1, err: fmt.Errorf("verify: FAILED %s check: %w", ve.Check, ve.Err)}
		}
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprintf(stdout, "OK: %s entry %d in tree of size %d; digest, signature, canonical body, inclusion proof, checkpoint signature", res.Origin, res.LogIndex, res.TreeSize)
	if opts.WitnessPolicy != nil {
		fmt.Fprint(stdout, " and witness policy")
	}
	fmt.Fprintln(stdout, " verified")
	return nil
}
