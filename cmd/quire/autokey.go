package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/quirelog/quire/cmd/internal/identity"
	"github.com/quirelog/quire/storage/pebble"
)

// autoKeyFile marks the key in a data directory as one `quire serve` made by itself on a first
// start, for whatever origin its defaults gave then. It holds that key's verifier key, so a key
// put in its place later (by keygen, by hand) is not taken for it.
const autoKeyFile = "log.key.auto"

// createAutoKey makes the log key of a first start in dataDir and marks it as made by serve.
func createAutoKey(dataDir, origin string, logger *slog.Logger) error {
	keyPath, pubPath, err := writeNewKey(dataDir, origin)
	if err != nil {
		return err
	}
	vkey, err := os.ReadFile(pubPath)
	if err != nil {
		return fmt.Errorf("reading the new verifier key: %w", err)
	}
	// A crash before this write leaves an unmarked key, which is then kept as an operator's
	// would be: the safe side.
	if err := os.WriteFile(filepath.Join(dataDir, autoKeyFile), vkey, 0o600); err != nil {
		return fmt.Errorf("marking the new key as made by serve: %w", err)
	}
	logger.Info("created a new log key", "key", keyPath, "verifier_key_file", pubPath, "origin", origin)
	return nil
}

// adoptOrigin gives the log a new key for f.origin in place of key, the one serve made by itself
// on an earlier start, so that a first `quire serve` with no flags does not tie its data directory
// to 127.0.0.1. It does so only while the log has no entry (a log's identity never changes once it
// has one), and only when the new origin was asked for (--origin, --public-url) or the old one is
// a loopback name, which no log that others use keeps. It returns nil when key must stay.
//
// The log and index databases and the recorded identity go with the old key: they hold an empty
// tree and checkpoints signed by it, nothing else. The order of removal leaves a restartable directory after a crash
// at any point: databases first, the marker last, so a half-done adoption is redone.
func adoptOrigin(ctx context.Context, f *serveFlags, key *logKey, logger *slog.Logger) (*logKey, error) {
	if !f.originSet && !isLoopbackName(key.origin) {
		return nil, nil
	}
	marker, err := os.ReadFile(filepath.Join(f.dataDir, autoKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", autoKeyFile, err)
	}
	if strings.TrimSpace(string(marker)) != key.vkey {
		return nil, nil
	}
	size, err := logSize(ctx, filepath.Join(f.dataDir, logDBDir))
	if err != nil {
		return nil, err
	}
	if size > 0 {
		return nil, nil
	}
	for _, name := range []string{logDBDir, indexDBDir, identity.FileName, keyFileName, pubFileName, autoKeyFile} {
		if err := os.RemoveAll(filepath.Join(f.dataDir, name)); err != nil {
			return nil, fmt.Errorf("removing the empty log made for origin %q: %w", key.origin, err)
		}
	}
	logger.Warn("the log is empty and its key was made by serve for another origin: starting it anew with a new key",
		"old_origin", key.origin, "old_verifier_key", key.vkey, "origin", f.origin)
	if err := createAutoKey(f.dataDir, f.origin, logger); err != nil {
		return nil, err
	}
	return loadSignerKey(filepath.Join(f.dataDir, keyFileName))
}

// logSize is the number of entries in the log database at dir; none if there is no database.
func logSize(ctx context.Context, dir string) (uint64, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	drv, err := pebble.New(ctx, pebble.Config{Path: dir})
	if err != nil {
		return 0, fmt.Errorf("opening log storage to see whether it is empty: %w", err)
	}
	storage := drv.(*pebble.Storage)
	size, err := storage.IntegratedSize(ctx)
	if cerr := storage.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing log storage: %w", cerr))
	}
	return size, err
}

// isLoopbackName says whether an origin names this machine only: localhost or a loopback address.
func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
