// Command quire runs a Quire transparency log and its admin tasks.
//
//	quire serve      run the log: Rekor v2 writes (gRPC and REST), C2SP tlog-tiles reads, quire.v1 proofs
//	quire keygen     write a checkpoint signing key (C2SP signed-note Ed25519)
//	quire trust-root write a Sigstore trusted_root.json and signing_config.json for the log
//	quire version    print the version, commit and Go version
//
// Every flag is also read from the environment as QUIRE_ + its name in upper snake case, and
// serve's also from a --config file beneath that (see cmd/internal/cli). The command only parses
// flags and wires packages together: storage/pebble or storage/mysql, log and api/server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quirelog/quire/cmd/internal/cli"
)

// envPrefix names the environment variables quire's flags read: --http-listen reads QUIRE_HTTP_LISTEN.
const envPrefix = "QUIRE"

func program() *cli.Program {
	return &cli.Program{
		Name:        "quire",
		Title:       "a self-hosted, Rekor v2 compatible transparency log",
		EnvPrefix:   envPrefix,
		ExampleFlag: "http-listen",
		Commands: []cli.Command{
			{Name: "serve", Config: true, Run: runServe,
				Summary: "run the log (no flags: data in ./quire-data, REST on 127.0.0.1:3000, gRPC on :3001)"},
			{Name: "keygen", Args: "--origin HOST --out DIR", Run: runKeygen,
				Summary: "write a checkpoint key: DIR/log.key (mode 0600) and DIR/log.pub"},
			{Name: "trust-root", Args: "--url URL (--data-dir DIR | --key FILE) [--out DIR]", Run: runTrustRoot,
				Summary: "write trusted_root.json and signing_config.json for Sigstore clients"},
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := program().Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runKeygen(_ context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	origin := fs.String("origin", "", "the log's origin: its public `HOST` name, the key's name in checkpoints")
	out := fs.String("out", "", "`DIR` to write log.key (mode 0600) and log.pub in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *origin == "" || *out == "" {
		return cli.Usagef("--origin and --out are required")
	}
	keyPath, pubPath, err := writeNewKey(*out, *origin)
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "wrote signer key %s (keep it secret) and verifier key %s\n", keyPath, pubPath)
	return nil
}

func runTrustRoot(_ context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	baseURL := fs.String("url", "", "the log's public base `URL`, e.g. https://log.example.com (its host must be the log's origin)")
	dataDir := fs.String("data-dir", "", "the log's data `DIR` (reads DIR/"+keyFileName+")")
	keyFile := fs.String("key", "", "the log's signer key or verifier key `FILE`")
	out := fs.String("out", ".", "`DIR` to write "+trustedRootFile+" and "+signingConfigFile+" in")
	operator := fs.String("operator", "", "`NAME` of the operator in the signing config (default: the URL's host)")
	validFrom := fs.String("valid-from", "", "RFC 3339 `TIME` the key's validity starts (default: the key file's modification time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *baseURL == "" {
		return cli.Usagef("--url is required")
	}
	if (*dataDir == "") == (*keyFile == "") {
		return cli.Usagef("give exactly one of --data-dir and --key")
	}
	path := *keyFile
	if path == "" {
		path = filepath.Join(*dataDir, keyFileName)
	}
	key, err := readPublicKey(path)
	if err != nil {
		return err
	}
	start, err := keyValidFrom(path, *validFrom)
	if err != nil {
		return err
	}
	m, err := buildTrustMaterial(*baseURL, key, start, *operator)
	if err != nil {
		return err
	}
	rootPath, configPath, err := m.write(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "wrote %s and %s for log %s\n", rootPath, configPath, key.origin)
	return nil
}

// keyValidFrom is when the trust root says the key started signing. A key file is written just before
// the log's first checkpoint, so its modification time is a sound default.
func keyValidFrom(keyPath, flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, cli.Usagef("--valid-from: %v", err)
		}
		return t, nil
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading key file time: %w", err)
	}
	return fi.ModTime(), nil
}
