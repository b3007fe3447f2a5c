// Command quire runs a Quire transparency log and its admin tasks.
//
//	quire serve      run the log: Rekor v2 writes (gRPC and REST), C2SP tlog-tiles reads, quire.v1 proofs
//	quire keygen     write a checkpoint signing key (C2SP signed-note Ed25519)
//	quire trust-root write a Sigstore trusted_root.json and signing_config.json for the log
//
// The command only parses flags and wires packages together: storage/pebble, log and api/server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

const usage = `quire: a self-hosted, Rekor v2 compatible transparency log

Usage:
  quire serve [flags]                                   run the log (no flags: ./quire-data, 127.0.0.1:3000)
  quire keygen --origin HOST --out DIR                  write DIR/log.key (0600) and DIR/log.pub
  quire trust-root --url URL (--data-dir DIR | --key FILE) [--out DIR]
                                                        write trusted_root.json and signing_config.json

Run "quire COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the process exit status: 0 on success, 2 on bad usage,
// 1 on any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// Tessera logs through klog; routing it into slog keeps one structured log stream.
	klog.SetSlogLogger(logger)
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], logger, stderr)
	case "keygen":
		err = runKeygen(args[1:], stdout, stderr)
	case "trust-root":
		err = runTrustRoot(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "quire: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(stderr, "quire %s: %v\n", args[0], err)
		return 2
	default:
		logger.Error("quire "+args[0]+" failed", "error", err)
		return 1
	}
}

// usageError marks a mistake in the command line, as opposed to a failure while running.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quire keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	origin := fs.String("origin", "", "the log's origin (its public host name), the key's name in checkpoints")
	out := fs.String("out", "", "directory for log.key (0600) and log.pub")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *origin == "" || *out == "" {
		return usagef("--origin and --out are required")
	}
	keyPath, pubPath, err := writeNewKey(*out, *origin)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote signer key %s (keep it secret) and verifier key %s\n", keyPath, pubPath)
	return nil
}

func runTrustRoot(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quire trust-root", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseURL := fs.String("url", "", "the log's public base URL, e.g. https://log.example.com (its host must be the log's origin)")
	dataDir := fs.String("data-dir", "", "the log's data directory (reads DIR/"+keyFileName+")")
	keyFile := fs.String("key", "", "the log's signer key or verifier key file")
	out := fs.String("out", ".", "directory for "+trustedRootFile+" and "+signingConfigFile)
	operator := fs.String("operator", "", "operator named in the signing config (default: the URL's host)")
	validFrom := fs.String("valid-from", "", "RFC 3339 start of the key's validity (default: the key file's modification time)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *baseURL == "" {
		return usagef("--url is required")
	}
	if (*dataDir == "") == (*keyFile == "") {
		return usagef("give exactly one of --data-dir and --key")
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
	fmt.Fprintf(stdout, "wrote %s and %s for log %s\n", rootPath, configPath, key.origin)
	return nil
}

// keyValidFrom is when the trust root says the key started signing. A key file is written just before
// the log's first checkpoint, so its modification time is a sound default.
func keyValidFrom(keyPath, flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, usagef("--valid-from: %v", err)
		}
		return t, nil
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading key file time: %w", err)
	}
	return fi.ModTime(), nil
}
