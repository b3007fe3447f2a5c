package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"

	"github.com/quirelog/quire/cmd/internal/cli"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/logkey"
	"github.com/quirelog/quire/storage/backup"
	"github.com/quirelog/quire/storage/index"
	"github.com/quirelog/quire/storage/pebble"
)

// openLogStorage opens the log database of dataDir for a command that runs while serve does not.
func openLogStorage(ctx context.Context, dataDir string, logger *slog.Logger) (*pebble.Storage, error) {
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(dataDir, logDBDir), Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("opening log storage (is quire serve running on %s? stop it first): %w", dataDir, err)
	}
	return drv.(*pebble.Storage), nil
}

// catchUpIndex runs the search follower over the log in storage until the index covers its first
// size entries, so a command that changed the log (import, freeze) leaves the index complete.
func catchUpIndex(ctx context.Context, dataDir string, storage *pebble.Storage, vkey string, size uint64, logger *slog.Logger) error {
	idx, err := index.Open(filepath.Join(dataDir, indexDBDir), logger)
	if err != nil {
		return fmt.Errorf("opening search index: %w", err)
	}
	lg, err := quirelog.New(ctx, quirelog.Config{Reader: storage, History: storage, Index: idx, VerifierKey: vkey, ReadOnly: true, Logger: logger})
	if err != nil {
		return errors.Join(fmt.Errorf("starting the index follower: %w", err), idx.Close())
	}
	err = lg.AwaitIndexed(ctx, size)
	return errors.Join(err, lg.Close(), idx.Close())
}

// originOf is the origin named by the latest checkpoint in storage, or "" for a log that has none.
func originOf(ctx context.Context, storage *pebble.Storage) (string, error) {
	cp, err := storage.ReadCheckpoint(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	origin, _, _ := strings.Cut(string(cp), "\n")
	return origin, nil
}

func runFreeze(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	dataDir := fs.String("data-dir", defaultDataDir, "the log's data `DIR`")
	keyPath := fs.String("key", "", "the log's checkpoint key `FILE`, as serve takes it (default: DATA-DIR/"+keyFileName+")")
	origin := fs.String("origin", "", "the log's origin, for a PEM or KMS key (default: the origin of the log's checkpoints)")
	policy := fs.String("witness-policy", "", "`FILE` with the witness policy whose quorum must cosign the final checkpoint")
	var password, kms string
	addKeyFlags(fs, &password, &kms)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if kms != "" && *keyPath != "" {
		return cli.Usagef("give --key or --kms, not both")
	}
	if *keyPath == "" && kms == "" {
		*keyPath = filepath.Join(*dataDir, keyFileName)
	}
	witnesses, err := readWitnessPolicy(*policy)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(inv.Stderr, nil))
	storage, err := openLogStorage(ctx, *dataDir, logger)
	if err != nil {
		return err
	}
	size, err := freeze(ctx, storage, keySource{path: *keyPath, password: password, kms: kms, origin: *origin}, witnesses, *dataDir, logger)
	if cerr := storage.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "froze the log in %s at size %d: it serves reads only from now on (writes get 405)\n", *dataDir, size)
	return nil
}

// freeze signs the final checkpoint with the log's own key (checked against its latest
// checkpoint first: a wrong key must not end a log) and brings the search index up to date.
func freeze(ctx context.Context, storage *pebble.Storage, src keySource, witnesses tessera.WitnessGroup, dataDir string, logger *slog.Logger) (uint64, error) {
	logOrigin, err := originOf(ctx, storage)
	if err != nil {
		return 0, err
	}
	if src.origin == "" {
		src.origin = logOrigin
	}
	key, err := src.load(ctx)
	if err != nil {
		return 0, err
	}
	if logOrigin != "" && logOrigin != key.origin {
		return 0, fmt.Errorf("the key is for origin %q, the log's checkpoints for %q", key.origin, logOrigin)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(key.signer)
	if len(witnesses.Components) > 0 {
		opts = opts.WithWitnesses(witnesses, nil)
	}
	cp, err := storage.Freeze(ctx, opts)
	if err != nil {
		return 0, err
	}
	size, frozen, err := storage.Frozen()
	if err != nil || !frozen {
		return 0, fmt.Errorf("reading the frozen mark back: %v", err)
	}
	logger.Info("final checkpoint published", "size", size, "checkpoint", string(cp))
	return size, catchUpIndex(ctx, dataDir, storage, key.vkey, size, logger)
}

func runImport(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	from := fs.String("from", "", "the log to import: its base `URL` (any C2SP tlog-tiles server) or a DIR in the tlog-tiles layout (rekor-tiles' or Tessera's POSIX storage, a quirectl mirror)")
	logKey := fs.String("log-key", "", "the source log's checkpoint verifier `KEY` (origin+hash+base64), or a FILE holding it or the log's PEM public key")
	origin := fs.String("origin", "", "the source log's origin, with a PEM public key as --log-key")
	dataDir := fs.String("data-dir", defaultDataDir, "the new log's data `DIR` (an interrupted import resumes in it)")
	parallel := fs.Int("parallel", pebble.DefaultImportParallel, "fetches at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *logKey == "" {
		return cli.Usagef("--from and --log-key are required")
	}
	if *parallel <= 0 {
		return cli.Usagef("--parallel must be positive")
	}
	key, err := sourceLogKey(*logKey, *origin)
	if err != nil {
		return err
	}
	source, err := importSource(*from)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(inv.Stderr, nil))
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	storage, err := openLogStorage(ctx, *dataDir, logger)
	if err != nil {
		return err
	}
	var lastReport time.Duration
	cp, err := storage.Import(ctx, pebble.ImportConfig{
		Source: source, Verifier: key.Verifier, Parallel: *parallel,
		Progress: func(p pebble.ImportProgress) {
			// A line a second at most, and the last.
			if p.Done || p.Elapsed-lastReport >= time.Second {
				lastReport = p.Elapsed
				fmt.Fprintf(inv.Stderr, "import: %d of %d entries (%d already here), %s\n", p.Entries, p.Total, p.Start, p.Elapsed.Round(time.Millisecond))
			}
		},
	})
	if err == nil {
		size, _ := storage.IntegratedSize(ctx)
		err = catchUpIndex(ctx, *dataDir, storage, key.VerifierKey, size, logger)
	}
	if cerr := storage.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "imported the log %s into %s, verified up to this checkpoint:\n%s\ncontinue it with the source's key: quire serve --data-dir %s --key KEYFILE --origin %s\n",
		key.Origin, *dataDir, cp, *dataDir, key.Origin)
	return nil
}

// sourceLogKey reads --log-key: a verifier key, or a file holding one or a PEM public key.
func sourceLogKey(value, origin string) (*logkey.Key, error) {
	if k, err := logkey.FromVerifierKey(value); err == nil {
		return k, nil
	}
	b, err := os.ReadFile(value)
	if err != nil {
		return nil, cli.Usagef("--log-key is neither a verifier key nor a readable file: %v", err)
	}
	if logkey.IsPEM(b) {
		if origin == "" {
			return nil, cli.Usagef("--origin is needed with a PEM public key")
		}
		return logkey.FromPublicPEM(b, origin)
	}
	k, err := logkey.FromVerifierKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("--log-key file %s: %w", value, err)
	}
	return k, nil
}

// importSource is a fetcher for a URL, or for a directory in the tlog-tiles layout.
func importSource(from string) (pebble.ImportSource, error) {
	if strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://") {
		u, err := url.Parse(strings.TrimSuffix(from, "/") + "/")
		if err != nil {
			return nil, cli.Usagef("--from: %v", err)
		}
		f, err := client.NewHTTPFetcher(u, nil)
		if err != nil {
			return nil, fmt.Errorf("--from: %w", err)
		}
		return f, nil
	}
	if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
		return nil, cli.Usagef("--from %q is neither an http(s) URL nor a directory", from)
	}
	return client.FileFetcher{Root: from}, nil
}

func runBackup(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	dataDir := fs.String("data-dir", defaultDataDir, "the log's data `DIR`")
	out := fs.String("out", "", "new `DIR` to write the backup in (a data directory: restore by serving it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("--out is required")
	}
	res, err := backup.Request(ctx, filepath.Join(*dataDir, backup.SocketName), *out)
	if errors.Is(err, backup.ErrNoServer) {
		res, err = offlineBackup(ctx, *dataDir, *out, slog.New(slog.NewTextHandler(inv.Stderr, nil)))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "backed up %d entries (latest checkpoint: size %d) into %s; restore: quire serve --data-dir %s\n", res.Size, res.CheckpointSize, res.Dir, res.Dir)
	return nil
}

// offlineBackup backs up a data directory no server has open.
func offlineBackup(ctx context.Context, dataDir, out string, logger *slog.Logger) (*backup.Result, error) {
	if _, err := os.Stat(filepath.Join(dataDir, logDBDir)); err != nil {
		return nil, fmt.Errorf("no log in %s: %w", dataDir, err)
	}
	storage, err := openLogStorage(ctx, dataDir, logger)
	if err != nil {
		return nil, err
	}
	idx, err := index.Open(filepath.Join(dataDir, indexDBDir), logger)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("opening search index: %w", err), storage.Close())
	}
	res, err := backup.Write(ctx, backup.Sources{DataDir: dataDir, Log: storage, Index: idx}, out)
	return res, errors.Join(err, idx.Close(), storage.Close())
}
