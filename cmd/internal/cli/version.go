package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
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
