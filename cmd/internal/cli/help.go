package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpWidth is where help text wraps.
const helpWidth = 96

// writeUsage prints the program's usage: its commands, where settings come from, exit statuses.
func (p *Program) writeUsage(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s COMMAND [flags]\n\nCommands:\n", p.Name, p.Title, p.Name)
	cmds := p.commands()
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.Name))
	}
	var withConfig []string
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
		if c.Config {
			withConfig = append(withConfig, fmt.Sprintf("%q", p.Name+" "+c.Name))
		}
	}
	settings := fmt.Sprintf("Settings: each flag can also be set by an environment variable, %s_ and the flag's name in upper snake case (--%s: %s)",
		p.EnvPrefix, p.ExampleFlag, EnvVar(p.EnvPrefix, p.ExampleFlag))
	if len(withConfig) > 0 {
		verb := "reads"
		if len(withConfig) > 1 {
			verb = "read"
		}
		settings += fmt.Sprintf(", and %s also %s --config FILE, lines of \"flag value\" (# starts a comment). The command line wins over the environment, the environment over the file.",
			strings.Join(withConfig, " and "), verb)
	} else {
		settings += ". The command line wins over the environment."
	}
	fmt.Fprintf(w, "\n%s\n", wrap(settings, "", helpWidth))
	if p.Notes != "" {
		fmt.Fprintf(w, "\n%s\n", wrap(p.Notes, "", helpWidth))
	}
	fmt.Fprintf(w, "\n%s\n", wrap("Exit status: 0 success, 1 failure, 2 usage error (unknown command or flag, bad or missing flag value)"+p.ExitNote+".", "", helpWidth))
	fmt.Fprintf(w, "\nRun \"%s COMMAND -h\" for a command's flags.\n", p.Name)
}

// WriteHelp prints the command's help: what it does, its synopsis, and each flag with its
// default and environment variable.
func (fs *FlagSet) WriteHelp(w io.Writer) {
	p, c := fs.inv.prog, fs.inv.cmd
	args := c.Args
	if args == "" {
		args = "[flags]"
	}
	fmt.Fprintf(w, "%s %s: %s\n\nUsage:\n  %s %s %s\n", p.Name, c.Name, c.Summary, p.Name, c.Name, args)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	intro := "Flags, each also read from the environment variable shown; the command line wins:"
	if c.Config {
		intro = "Flags, each also read from the environment variable shown, then from the --config file; the command line wins over the environment, the environment over the file:"
	}
	fmt.Fprintf(w, "\n%s\n", wrap(intro, "", helpWidth))
	const indent = "        "
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n%s\n", wrap(usage, indent, helpWidth))
		var tail string
		if !isZeroDefault(f.DefValue) {
			tail = "default " + f.DefValue + ", "
		}
		fmt.Fprintf(w, "%s%senv %s\n", indent, tail, EnvVar(p.EnvPrefix, f.Name))
	})
}

// isZeroDefault says a default is not worth printing: the zero value of the standard flag types,
// or an empty list.
func isZeroDefault(v string) bool {
	switch v {
	case "", "0", "false", "0s", "[]":
		return true
	}
	return false
}

// wrap breaks text into lines of at most width columns (a longer word gets a line of its own),
// each starting with indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}
