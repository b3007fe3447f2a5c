// Command quire runs a Quire transparency log and its admin tasks.
//
//	quire serve      run the log: Rekor v2 writes (gRPC and REST), C2SP tlog-tiles reads, quire.v1 proofs
//	quire keygen     write a checkpoint signing key (C2SP signed-note Ed25519, or PEM)
//	quire import     copy an existing tlog-tiles log into a new data directory, verified
//	quire backup     write a consistent backup of a running log
//	quire freeze     publish a final checkpoint and make the log read-only for good
//	quire trust-root write a Sigstore trusted_root.json and signing_config.json for the log
//	quire version    print the version, commit and Go version
//
// Every flag is also read from the environment as QUIRE_ + its name in upper snake case, and
// serve's also from a --config file beneath that (see cmd/internal/cli). The command only parses
// flags and wires packages together: storage/pebble or storage/mysql, log and api/server.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/log/logkey"
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
			{Name: "keygen", Args: "--origin HOST --out DIR [--format note|pem]", Run: runKeygen,
				Summary: "write a checkpoint key: DIR/log.key (note) or DIR/log.pem (PEM), mode 0600, and DIR/log.pub"},
			{Name: "import", Args: "--from URL|DIR --log-key VKEY --data-dir DIR", Run: runImport,
				Summary: "copy an existing tlog-tiles log (rekor-tiles, Tessera, any server) into a new data directory, verified, to continue it"},
			{Name: "backup", Args: "--data-dir DIR --out DIR", Run: runBackup,
				Summary: "write a consistent backup of the log, while it serves; restore by serving the backup"},
			{Name: "freeze", Args: "--data-dir DIR", Run: runFreeze,
				Summary: "publish a final checkpoint and make the log read-only for good (run with serve stopped)"},
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
	out := fs.String("out", "", "`DIR` to write the key (log.key or log.pem, mode 0600) and log.pub in")
	format := fs.String("format", "note", "key file format: note (a C2SP signed-note Ed25519 key, log.key) or pem (a PKCS#8 private key, log.pem, with log.pub.pem, as rekor-tiles takes)")
	alg := fs.String("type", logkey.Ed25519, "algorithm of a pem key: "+logkey.Ed25519+" or "+logkey.ECDSAP256)
	password := fs.String("key-password", "", "encrypt a pem key with this password (PBES2, AES-256); prefer the environment variable to the command line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *origin == "" || *out == "" {
		return cli.Usagef("--origin and --out are required")
	}
	var keyPath, pubPath string
	var err error
	switch *format {
	case "note":
		if *password != "" || *alg != logkey.Ed25519 {
			return cli.Usagef("--key-password and --type go with --format pem")
		}
		keyPath, pubPath, err = writeNewKey(*out, *origin)
	case "pem":
		if *alg != logkey.Ed25519 && *alg != logkey.ECDSAP256 {
			return cli.Usagef("--type %q: want %s or %s", *alg, logkey.Ed25519, logkey.ECDSAP256)
		}
		keyPath, pubPath, err = writeNewPEMKey(*out, *origin, *alg, []byte(*password))
	default:
		return cli.Usagef("--format %q: want note or pem", *format)
	}
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
	keyFile := fs.String("key", "", "the log's key `FILE`: its note signer or verifier key, or a PEM private or public key")
	password := fs.String("key-password", "", "password of an encrypted PEM --key")
	out := fs.String("out", ".", "`DIR` to write "+trustedRootFile+" and "+signingConfigFile+" in")
	operator := fs.String("operator", "", "`NAME` of the operator in the signing config (default: the URL's host)")
	validFrom := fs.String("valid-from", "", "RFC 3339 `TIME` the key's validity starts (default: the key file's modification time; with --append, now)")
	appendTo := fs.String("append", "", "add the log as a new shard to the "+trustedRootFile+" and "+signingConfigFile+" in `DIR` (written back there unless --out is given): the logs taking writes until now stop at --valid-from, and signers move to this one")
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
	u, err := url.Parse(*baseURL)
	if err != nil {
		return cli.Usagef("--url: %v", err)
	}
	// A PEM key has no name; Rekor v2 clients take the URL's host as the origin.
	key, err := readPublicKey(path, *password, u.Hostname())
	if err != nil {
		return err
	}
	if *appendTo != "" && *validFrom == "" {
		*validFrom = time.Now().UTC().Format(time.RFC3339)
	}
	start, err := keyValidFrom(path, *validFrom)
	if err != nil {
		return err
	}
	var m *trustMaterial
	if *appendTo != "" {
		m, err = appendTrustMaterial(*appendTo, *baseURL, key, start, *operator)
		if !flagGiven(fs, "out") {
			*out = *appendTo
		}
	} else {
		m, err = buildTrustMaterial(*baseURL, key, start, *operator)
	}
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

// flagGiven says whether the flag called name was set (on the command line, in the environment).
func flagGiven(fs *cli.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
