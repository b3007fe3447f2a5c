package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/quirelog/quire/api/client/mirror"
	"golang.org/x/term"
)

func init() {
	commands["mirror"] = command{summary: "download and verify a whole log into a directory servable as a read replica", run: runMirror}
}

func runMirror(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logURL := fs.String("url", "", "base URL of the log's tlog-tiles (where /checkpoint is served)")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key, or a file holding it")
	out := fs.String("out", "", "mirror directory (created if missing; rerun to resume or catch up)")
	parallel := fs.Uint("parallel", mirror.DefaultParallel, "concurrent fetches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *logKey == "" || *out == "" || fs.NArg() > 0 || *parallel == 0 {
		return errors.New("mirror: --url, --log-key and --out are required, and --parallel must be at least 1")
	}
	v, err := loadLogVerifier(*logKey)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	f, err := tilesFetcher(*logURL)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	isTTY := false
	if fd, ok := stderr.(interface{ Fd() uintptr }); ok {
		isTTY = term.IsTerminal(int(fd.Fd()))
	}
	res, err := mirror.Mirror(ctx, mirror.Config{
		Fetcher: f, LogVerifier: v, Dir: *out, Parallel: *parallel,
		Progress: mirror.ProgressPrinter(stderr, isTTY),
	})
	if err != nil {
		return &exitStatus{code: 1, err: fmt.Errorf("mirror: %w", err)}
	}
	fmt.Fprintf(stdout, "mirrored %s: tree size %d (was %d), %d files fetched, %d reused, %d bytes in %s; every entry and tile verified\n",
		v.Name(), res.Size, res.OldSize, res.Fetched, res.Reused, res.Bytes, res.Elapsed.Round(1e6))
	return nil
}
