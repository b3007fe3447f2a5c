// Package cli is what the three Quire binaries (quire, quire-witness, quirectl) share on the
// command line, so that they behave alike:
//
//   - one way to read a command's settings: its flags, then for each flag not given an environment
//     variable (PREFIX_ + the flag name in upper snake case), then, for the commands that take one,
//     a config file of "flag value" lines. github.com/peterbourgon/ff/v3 does the layering over the
//     standard flag package, so commands keep defining ordinary flags;
//   - one help layout ("PROG -h", "PROG COMMAND -h", "PROG help COMMAND"), listing every flag with
//     its default and its environment variable;
//   - one exit-status convention: 0 success (help included), 1 failure, 2 usage error;
//   - a version command reporting the module version, commit and Go toolchain.
//
// The tests in this package hold the layering and the statuses to that; each binary's
// config_test.go shows them on the real binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit statuses of every command of every Quire binary.
const (
	// ExitOK is success, including help asked for with -h, --help or help.
	ExitOK = 0
	// ExitFailure is a command that ran and failed.
	ExitFailure = 1
	// ExitUsage is a wrong request: an unknown command, an unknown flag, a bad or missing flag
	// value, whether given on the command line, in the environment or in a config file.
	ExitUsage = 2
)

// UsageError marks a mistake in what the user asked for, as opposed to a failure while doing it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError makes a command exit with a status of its own beyond the convention, such as
// quirectl monitor's 3 for a split view, which a script must tell from an outage.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit status for what a command returned.
func ExitCode(err error) int {
	var ee *ExitError
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// Program is one binary: a set of commands, each with its own flags.
type Program struct {
	// Name is the binary's name, e.g. "quire".
	Name string
	// Title says in a few words what the binary is.
	Title string
	// EnvPrefix names the environment variables its flags read: flag --data-dir reads
	// EnvPrefix + "_DATA_DIR".
	EnvPrefix string
	// ExampleFlag is the flag the usage names to show how a flag's environment variable is
	// spelled.
	ExampleFlag string
	// Commands are the binary's commands, in the order its usage lists them. A version command
	// is added to them.
	Commands []Command
	// Notes, if any, is a paragraph the usage prints after the settings.
	Notes string
	// ExitNote, if any, completes the sentence on exit statuses, for a command with a status of
	// its own (see ExitError); it starts with "; ".
	ExitNote string
}

// Command is one subcommand of a Program.
type Command struct {
	// Name is what the user types after the binary's name.
	Name string
	// Args is the synopsis after the name in usage lines, e.g. "--origin HOST --out DIR".
	Args string
	// Summary is one line saying what the command does.
	Summary string
	// Config says the command takes --config FILE, a file of settings beneath the environment.
	Config bool
	// Run runs the command with the arguments after its name. It returns a UsageError for a
	// wrong request, flag.ErrHelp after printing help, and any other error for a failure.
	Run func(ctx context.Context, inv *Invocation, args []string) error
}

// Invocation is a command being run: where its output goes, and what its flags need to know.
type Invocation struct {
	Stdout, Stderr io.Writer
	prog           *Program
	cmd            *Command
}

const versionCommand = "version"

// commands are the program's commands with the version command added.
func (p *Program) commands() []Command {
	return append(p.Commands[:len(p.Commands):len(p.Commands)], Command{
		Name:    versionCommand,
		Summary: "print the module version, the commit and the Go version it was built from",
		Run:     runVersion,
	})
}

func (p *Program) lookup(name string) (Command, bool) {
	for _, c := range p.commands() {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Run runs the command args name and returns what it returned; Main reports it. "help", "-h" and
// "--help" print the program's usage (or, followed by a command, that command's help) to stdout;
// "--version" is the version command.
func (p *Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return Usagef("missing command")
	}
	switch args[0] {
	case "help", "-h", "--help":
		if len(args) > 1 {
			return p.Run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		p.writeUsage(stdout)
		return flag.ErrHelp
	case "--version":
		args = append([]string{versionCommand}, args[1:]...)
	}
	inv := p.Invocation(args[0], stdout, stderr)
	if inv == nil {
		return Usagef("unknown command %q", args[0])
	}
	return inv.cmd.Run(ctx, inv, args[1:])
}

// Invocation returns the invocation of the named command with the given output streams, or nil
// if the program has no such command. Run makes one for each command it runs; a test can make one
// to parse a command's flags alone.
func (p *Program) Invocation(command string, stdout, stderr io.Writer) *Invocation {
	c, ok := p.lookup(command)
	if !ok {
		return nil
	}
	return &Invocation{Stdout: stdout, Stderr: stderr, prog: p, cmd: &c}
}

// Main runs args as Run does, reports an error on stderr and returns the exit status: a usage
// error is followed by where to read the usage, a failure by nothing more.
func (p *Program) Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := p.Run(ctx, args, stdout, stderr)
	code := ExitCode(err)
	if code == ExitOK {
		return code
	}
	c, known := Command{}, false
	if len(args) > 0 {
		c, known = p.lookup(args[0])
	}
	if !known {
		fmt.Fprintf(stderr, "%s: %v\n\n", p.Name, err)
		p.writeUsage(stderr)
		return code
	}
	fmt.Fprintf(stderr, "%s %s: %v\n", p.Name, c.Name, err)
	if code == ExitUsage {
		fmt.Fprintf(stderr, "Run \"%s %s -h\" for its flags.\n", p.Name, c.Name)
	}
	return code
}
