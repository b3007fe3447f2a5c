package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/identity"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/storage/index"
	"github.com/quirelog/quire/storage/pebble"
)

// runVerify checks a stopped log's data directory, or a backup, offline: storage/pebble's Check
// recomputes the tree and compares everything stored, and log's IndexCheck audits the search
// index with the follower's own keys. The first fault is the error.
func runVerify(ctx context.Context, inv *cli.Invocation, args []string) error {
	flags := inv.Flags()
	dataDir := flags.String("data-dir", defaultDataDir, "the log's data `DIR`, or a backup (the log must not be serving from it)")
	logKey := flags.String("log-key", "", "the log's checkpoint verifier key `VKEY` (default: the one DIR/"+identity.FileName+" records)")
	quiet := flags.Bool("quiet", false, "print no progress")
	if err := flags.Parse(args); err != nil {
		return err
	}
	vkey := *logKey
	if vkey == "" {
		id, err := identity.Read(*dataDir)
		if err != nil {
			return fmt.Errorf("no --log-key and no identity record in %s: %w", *dataDir, err)
		}
		vkey = id.VerifierKey
	}
	verifier, _, err := rekor.ParseVerifierKey(vkey)
	if err != nil {
		return cli.Usagef("--log-key: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(*dataDir, logDBDir), ReadOnly: true, Logger: logger})
	if err != nil {
		return err
	}
	storage := drv.(*pebble.Storage)
	defer storage.Close()
	size, err := storage.IntegratedSize(ctx)
	if err != nil {
		return err
	}
	opts := pebble.CheckOptions{Verifier: verifier}
	var idx *quirelog.IndexCheck
	if _, err := os.Stat(filepath.Join(*dataDir, indexDBDir)); err == nil {
		db, err := index.OpenReadOnly(filepath.Join(*dataDir, indexDBDir), logger)
		if err != nil {
			return err
		}
		defer db.Close()
		if idx, err = quirelog.NewIndexCheck(ctx, db, size); err != nil {
			return err
		}
		opts.Entry = idx.Entry
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !*quiet && isTerminal(inv.Stderr) {
		opts.Progress = progress(inv.Stderr)
	}
	start := time.Now()
	rep, err := storage.Check(ctx, opts)
	if opts.Progress != nil {
		fmt.Fprintln(inv.Stderr)
	}
	if err != nil {
		return fmt.Errorf("the log in %s is not sound: %w", *dataDir, err)
	}
	indexed := "no search index"
	if idx != nil {
		if err := idx.Finish(ctx, storage.Entry); err != nil {
			return fmt.Errorf("the log in %s is not sound: %w", *dataDir, err)
		}
		indexed = fmt.Sprintf("search index covers %d entries", idx.Progress())
		if format, stale := idx.Stale(); stale {
			indexed = fmt.Sprintf("search index of format %d not checked (quire serve rebuilds it as format %d)", format, quirelog.IndexFormat)
		}
	}
	fmt.Fprintf(inv.Stdout, "verified the log in %s in %s: %d entries (latest checkpoint %d), %d entry bundles, %d tiles, %d past checkpoints, %d dedup keys, %s\n",
		*dataDir, time.Since(start).Round(time.Millisecond), rep.Size, rep.CheckpointSize, rep.Bundles, rep.Tiles, rep.History, rep.DedupKeys, indexed)
	return nil
}

// isTerminal says whether w is a terminal, where progress is worth drawing.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress redraws one line at most a few times a second.
func progress(w io.Writer) func(done, total uint64) {
	var last time.Time
	return func(done, total uint64) {
		if now := time.Now(); now.Sub(last) > 200*time.Millisecond || done == total {
			last = now
			fmt.Fprintf(w, "\rverified %d of %d entries (%.0f%%)", done, total, 100*float64(done)/float64(max(total, 1)))
		}
	}
}
