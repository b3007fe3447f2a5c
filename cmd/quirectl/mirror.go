package main

import (
	"context"
	"fmt"
	"os"

	"github.com/quirelog/quire/api/client/mirror"
	"github.com/quirelog/quire/cmd/internal/cli"
	"golang.org/x/term"
)

func init() {
	commands["mirror"] = cli.Command{Run: runMirror, Args: "--url URL --log-key VKEY --out DIR [--parallel N]",
		Summary: "download and verify a whole log into a directory servable as a read replica"}
}

func runMirror(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	logURL := fs.String("url", "", "base `URL` of the log's tlog-tiles (where /checkpoint is served)")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key (`VKEY`), or a file holding it")
	out := fs.String("out", "", "mirror `DIR` (created if missing; rerun to resume or catch up)")
	parallel := fs.Uint("parallel", mirror.DefaultParallel, "concurrent fetches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *logKey == "" || *out == "" || *parallel == 0 {
		return cli.Usagef("--url, --log-key and --out are required, and --parallel must be at least 1")
	}
	v, err := loadLogVerifier(*logKey)
	if err != nil {
		return err
	}
	f, err := tilesFetcher(*logURL, httpClient(inv.Stderr))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	isTTY := false
	if fd, ok := inv.Stderr.(interface{ Fd() uintptr }); ok {
		isTTY = term.IsTerminal(int(fd.Fd()))
	}
	res, err := mirror.Mirror(ctx, mirror.Config{
		Fetcher: f, LogVerifier: v, Dir: *out, Parallel: *parallel,
		Progress: mirror.ProgressPrinter(inv.Stderr, isTTY),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "mirrored %s: tree size %d (was %d), %d files fetched, %d reused, %d bytes in %s; every entry and tile verified\n",
		v.Name(), res.Size, res.OldSize, res.Fetched, res.Reused, res.Bytes, res.Elapsed.Round(1e6))
	return nil
}
