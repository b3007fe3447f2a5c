package cli

import (
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// ConfigFlag is the flag naming a command's config file.
const ConfigFlag = "config"

// FlagSet is a command's flags: a standard flag.FlagSet whose Parse also reads the environment
// and, for a command that takes one, a config file, and whose -h prints the shared help layout.
type FlagSet struct {
	*flag.FlagSet
	inv *Invocation
}

// Flags returns an empty flag set for the command, with --config defined if it takes one.
func (inv *Invocation) Flags() *FlagSet {
	fs := flag.NewFlagSet(inv.prog.Name+" "+inv.cmd.Name, flag.ContinueOnError)
	// Parse reports errors and help itself, each on its own stream.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if inv.cmd.Config {
		fs.String(ConfigFlag, "", "read settings from `FILE`: one \"flag value\" per line (e.g. \"data-dir /var/lib/quire\"), # starts a comment; the environment and the command line win over it")
	}
	return &FlagSet{FlagSet: fs, inv: inv}
}

// Parse sets the flags from args, then each flag args did not set from its environment variable,
// then each flag still unset from the config file, if the command takes one and one is named
// (by --config or its environment variable). It takes no positional arguments. On -h it prints
// the help to stdout and returns flag.ErrHelp; every other error is a UsageError.
func (fs *FlagSet) Parse(args []string) error {
	// The command line is parsed here rather than by ff so that its errors are the flag
	// package's own, and positional arguments are refused before anything else is read.
	if err := fs.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.WriteHelp(fs.inv.Stdout)
			return err
		}
		return &UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected arguments %q", fs.Args())
	}
	opts := []ff.Option{ff.WithEnvVarPrefix(fs.inv.prog.EnvPrefix)}
	if fs.inv.cmd.Config {
		opts = append(opts, ff.WithConfigFileFlag(ConfigFlag), ff.WithConfigFileParser(ff.PlainParser))
	}
	// ff counts the flags set above as given, so it only fills in the others.
	if err := ff.Parse(fs.FlagSet, nil, opts...); err != nil {
		return &UsageError{Err: err}
	}
	return nil
}

// Given reports whether the flag was set, on the command line, in the environment or in the
// config file, as opposed to left at its default.
func (fs *FlagSet) Given(name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}

// EnvVar is the environment variable a flag reads: the prefix, "_", and the flag's name in upper
// snake case, as ff maps them.
func EnvVar(prefix, flagName string) string {
	return strings.ToUpper(prefix) + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(flagName))
}
