package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/cmd/internal/identity"
	"github.com/quirelog/quire/storage/pebble"
)

// identityOf is the identity a start with key would give the log.
func identityOf(key *logKey) identity.Identity {
	return identity.Identity{Origin: key.origin, VerifierKey: key.vkey}
}

// checkIdentity refuses, before storage is opened, to serve a data directory that records another
// log than key's (package identity). It reports whether the directory records an identity at all.
func checkIdentity(dataDir string, key *logKey) (bool, error) {
	err := identity.Verify(dataDir, identityOf(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return true, err
}

// recordIdentity pins key's identity in a data directory that records none: a new one, or one
// from before Quire kept the record. Such a log's latest checkpoint must verify with key first, so
// the record never adopts a key that did not sign the log. A read-only (frozen) log is checked but
// not written to. Storage must be open and nothing appended yet.
func recordIdentity(ctx context.Context, dataDir string, key *logKey, storage *pebble.Storage, readOnly bool, logger *slog.Logger) error {
	raw, err := storage.ReadCheckpoint(ctx)
	switch {
	case err == nil:
		if _, err := note.Open(raw, note.VerifierList(key.verifier)); err != nil {
			return fmt.Errorf("data directory %s holds a log whose latest checkpoint is not signed by verifier key %s (%v): a log's key never changes, and a new key means a new log, so give it a new data directory (or give this one its own key)",
				dataDir, key.vkey, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading the latest checkpoint: %w", err)
	}
	if readOnly {
		return nil
	}
	id := identityOf(key)
	wrote, err := identity.Pin(dataDir, id)
	if err != nil || !wrote {
		return err
	}
	logger.Info("recorded the log's identity in the data directory", "file", filepath.Join(dataDir, identity.FileName), "origin", id.Origin, "verifier_key", id.VerifierKey)
	return nil
}
