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
	commands["verify"] = cli.Command{Run: runVerify, Args: "--bundle FILE --artifact FILE --trusted-root FILE [--witness-policy FILE]",
		Summary: "verify a Sigstore bundle for an artifact offline (exit 0 only if every check holds)"}
}

func runVerify(_ context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	bundlePath := fs.String("bundle", "", "Sigstore bundle `FILE` (v0.3 JSON)")
	artifactPath := fs.String("artifact", "", "the artifact `FILE` the bundle signs")
	rootPath := fs.String("trusted-root", "", "trusted_root.json `FILE` naming the log keys (quire trust-root writes one)")
	policyPath := fs.String("witness-policy", "", "witness policy `FILE` the checkpoint's cosignatures must satisfy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundlePath == "" || *artifactPath == "" || *rootPath == "" {
		return cli.Usagef("--bundle, --artifact and --trusted-root are required")
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
	fmt.Fprintf(inv.Stdout, "OK: %s entry %d in tree of size %d; digest, signature, canonical body, inclusion proof, checkpoint signature", res.Origin, res.LogIndex, res.TreeSize)
	if opts.WitnessPolicy != nil {
		fmt.Fprint(inv.Stdout, " and witness policy")
	}
	fmt.Fprintln(inv.Stdout, " verified")
	return nil
}
