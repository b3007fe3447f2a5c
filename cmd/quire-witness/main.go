// Command quire-witness runs a C2SP tlog-witness: it cosigns the checkpoints
// of the logs it is configured for, only when they are consistent with what it
// cosigned before.
//
//	quire-witness keygen --name NAME --out DIR   write DIR/witness.key (0600) and DIR/witness.pub
//	quire-witness serve  --data-dir DIR --key FILE --log VKEY ...   serve add-checkpoint
//	quire-witness version                        print the version, commit and Go version
//
// Every flag is also read from the environment as QUIRE_WITNESS_ + its name in
// upper snake case, and serve's also from a --config file beneath that (see
// cmd/internal/cli). The command only parses flags and wires the witness
// package to an HTTP server; the protocol lives in package witness.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/keyfile"
	"github.com/quirelog/quire/witness"
)

// envPrefix names the environment variables the witness's flags read. It is
// not quire's QUIRE_: a witness and the log it witnesses often share a
// machine, and both have --data-dir and --key, which must differ.
const envPrefix = "QUIRE_WITNESS"

func program() *cli.Program {
	return &cli.Program{
		Name:        "quire-witness",
		Title:       "a C2SP tlog-witness",
		EnvPrefix:   envPrefix,
		ExampleFlag: "data-dir",
		Commands: []cli.Command{
			{Name: "keygen", Args: "--name NAME --out DIR", Run: runKeygen,
				Summary: "write DIR/witness.key (mode 0600) and DIR/witness.pub (the vkey logs put in their policy)"},
			{Name: "serve", Args: `--data-dir DIR --key FILE [--listen ADDR] (--log "[ORIGIN] VKEY" ... | --log-list FILE)`, Config: true, Run: runServe,
				Summary: "serve POST /add-checkpoint and GET /<sha256(origin)>/checkpoint"},
		},
		Notes: "Its environment variables start with QUIRE_WITNESS_, not quire's QUIRE_, so that a witness and a log on one machine keep apart their --data-dir and --key.",
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
	name := fs.String("name", "", "witness `NAME`, e.g. witness.example.com (required)")
	out := fs.String("out", ".", "`DIR` to write witness.key and witness.pub in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return cli.Usagef("--name is required")
	}
	skey, vkey, err := witness.GenerateKey(rand.Reader, *name)
	if err != nil {
		return cli.Usagef("--name: %v", err)
	}
	keyPath, pubPath := filepath.Join(*out, "witness.key"), filepath.Join(*out, "witness.pub")
	if err := keyfile.WritePair(keyPath, []byte(skey+"\n"), pubPath, []byte(vkey+"\n")); err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "wrote %s (private, mode 0600) and %s\nverifier key: %s\n", keyPath, pubPath, vkey)
	return nil
}

// logFlags collects repeated --log values.
type logFlags []string

func (l *logFlags) String() string     { return strings.Join(*l, ", ") }
func (l *logFlags) Set(v string) error { *l = append(*l, v); return nil }
