package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

func runVersion(_ context.Context, inv *Invocation, args []string) error {
	if err := inv.Flags().Parse(args); err != nil {
		return err
	}
	info, _ := debug.ReadBuildInfo()
	writeVersion(inv.Stdout, inv.prog.Name, info, runtime.GOOS+"/"+runtime.GOARCH)
	return nil
}

// writeVersion prints what a binary was built from, one "key value" line each:
//
//	quire version v1.2.3
//	module github.com/quirelog/quire
//	commit 0123abcd… (modified)
//	go go1.26.8 linux/amd64
//
// The version is the main module's as the go command stamped it: a tag or pseudo-version when
// built from a version-controlled checkout, "(devel)" when it could not tell. The commit comes
// from the VCS stamp, which a build with -buildvcs=false lacks.
func writeVersion(w io.Writer, name string, info *debug.BuildInfo, platform string) {
	if info == nil {
		fmt.Fprintf(w, "%s version unknown (no build information)\ngo %s %s\n", name, runtime.Version(), platform)
		return
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(w, "%s version %s\n", name, version)
	if info.Main.Path != "" {
		fmt.Fprintf(w, "module %s\n", info.Main.Path)
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	switch {
	case revision == "":
		fmt.Fprint(w, "commit unknown (built without VCS information)\n")
	case modified == "true":
		fmt.Fprintf(w, "commit %s (modified)\n", revision)
	default:
		fmt.Fprintf(w, "commit %s\n", revision)
	}
	fmt.Fprintf(w, "go %s %s\n", info.GoVersion, platform)
}

// Build is what the running binary was built from, for a version line or a build_info metric.
type Build struct {
	// Version is the main module's version ("(devel)" when the go command could not tell).
	Version string
	// Revision is the VCS commit, "" when unknown; Modified says the tree had local changes.
	Revision string
	Modified bool
	// GoVersion is the toolchain that built it.
	GoVersion string
}

// ReadBuild returns what the running binary was built from.
func ReadBuild() Build {
	b := Build{Version: "(devel)", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	b.GoVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the build in one line: "v1.2.3 (commit 0123abcd, go1.26.8)".
func (b Build) String() string {
	commit := "unknown commit"
	if b.Revision != "" {
		commit = "commit " + b.Revision[:min(12, len(b.Revision))]
		if b.Modified {
			commit += " modified"
		}
	}
	return fmt.Sprintf("%s (%s, %s)", b.Version, commit, b.GoVersion)
}

// Collector is a Prometheus gauge named name, always 1, whose labels say what the binary was
// built from: version, revision and goversion, as Prometheus's own *_build_info metrics do.
func (b Build) Collector(name, help string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	return g
}
