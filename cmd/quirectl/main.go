// Command quirectl is the client of a Quire (or any Rekor v2 compatible) log.
//
// It is thin: each subcommand parses its flags and calls a package that holds the logic
// (bench: github.com/quirelog/quire/api/client/loadgen). Each subcommand lives in its own file
// and is listed in commands, either in the literal below or from that file's init. Every flag is
// also read from the environment as QUIRE_ + its name in upper snake case (see cmd/internal/cli).
package main

import (
	"context"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/quirelog/quire/cmd/internal/cli"
)

// envPrefix names the environment variables quirectl's flags read. It is quire's own: a shell
// that sets QUIRE_URL and QUIRE_LOG_KEY for a log points every quirectl command at it.
const envPrefix = "QUIRE"

var commands = map[string]cli.Command{
	"bench": {Run: runBench, Summary: "send signed hashedrekord writes to a Rekor v2 log and measure entries/s and latency"},
}

func program() *cli.Program {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	p := &cli.Program{
		Name:        "quirectl",
		Title:       "the client of a Quire (or any Rekor v2 compatible) log",
		EnvPrefix:   envPrefix,
		ExampleFlag: "url",
		ExitNote:    "; monitor exits 3 when the log shows a split view",
	}
	for _, name := range names {
		c := commands[name]
		c.Name = name
		p.Commands = append(p.Commands, c)
	}
	return p
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := program().Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
