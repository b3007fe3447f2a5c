// Command quire-witness runs a C2SP tlog-witness: it cosigns the checkpoints
// of the logs it is configured for, only when they are consistent with what it
// cosigned before.
//
//	quire-witness keygen --name NAME --out DIR   write DIR/witness.key (0600) and DIR/witness.pub
//	quire-witness serve  --data-dir DIR --key FILE --log VKEY ...   serve add-checkpoint
//
// The command only parses flags and wires the witness package to an HTTP
// server; the protocol lives in package witness.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/quirelog/quire/cmd/internal/keyfile"
	"github.com/quirelog/quire/witness"
)

const usage = `quire-witness: a C2SP tlog-witness

Usage:
  quire-witness keygen --name NAME --out DIR
        write DIR/witness.key (mode 0600) and DIR/witness.pub (the vkey logs put in their policy)
  quire-witness serve --data-dir DIR --key FILE [--listen ADDR] (--log "[ORIGIN] VKEY" ... | --config FILE)
        serve POST /add-checkpoint and GET /<sha256(origin)>/checkpoint

Run "quire-witness COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the exit status: 0 on success, 2
// on bad usage, 1 on any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], logger, stderr)
	case "keygen":
		err = runKeygen(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "quire-witness: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "quire-witness %s: %v\n", args[0], err)
		return 2
	default:
		logger.Error("quire-witness "+args[0]+" failed", "error", err)
		return 1
	}
}

// usageError marks a mistake in the command line, as opposed to a failure
// while running.
type usageError string

func (e usageError) Error() string { return string(e) }

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "witness name, e.g. witness.example.com (required)")
	out := fs.String("out", ".", "directory for witness.key and witness.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() != 0 {
		return usageError("--name is required and no arguments are taken")
	}
	skey, vkey, err := witness.GenerateKey(rand.Reader, *name)
	if err != nil {
		return usageError(err.Error())
	}
	keyPath, pubPath := filepath.Join(*out, "witness.key"), filepath.Join(*out, "witness.pub")
	if err := keyfile.WritePair(keyPath, []byte(skey+"\n"), pubPath, []byte(vkey+"\n")); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (private, mode 0600) and %s\nverifier key: %s\n", keyPath, pubPath, vkey)
	return nil
}

// logFlags collects repeated --log values.
type logFlags []string

func (l *logFlags) String() string     { return strings.Join(*l, ", ") }
func (l *logFlags) Set(v string) error { *l = append(*l, v); return nil }
