package main

import (
	"log/slog"
	"path/filepath"

	"github.com/quirelog/quire/storage/backup"
	"github.com/quirelog/quire/storage/index"
	"github.com/quirelog/quire/storage/pebble"
)

// openIndex opens the search index. Under --read-only it is opened for writing when it can be, so
// the follower still indexes what the log has and the index lacks; on read-only media it is
// opened read-only and only looked up (noFollow).
func openIndex(f *serveFlags, logger *slog.Logger) (idx *index.DB, noFollow bool, err error) {
	path := filepath.Join(f.dataDir, indexDBDir)
	idx, err = index.Open(path, logger)
	if err == nil || !f.readOnly {
		return idx, false, err
	}
	idx, roErr := index.OpenReadOnly(path, logger)
	if roErr != nil {
		return nil, false, roErr
	}
	logger.Info("search index opened read-only: it is looked up, not extended", "reason", err)
	return idx, true, nil
}

// listenAdmin serves backup requests on the data directory's admin socket, so `quire backup`
// works while serve holds the databases. A log opened read-only has nothing to back up that its
// files do not already hold, and may sit where no socket can be made. Without the socket the log
// still serves: the failure is logged and backups need the server stopped.
func listenAdmin(f *serveFlags, storage *pebble.Storage, idx *index.DB, logger *slog.Logger) (stop func() error) {
	none := func() error { return nil }
	if f.readOnly {
		return none
	}
	path := filepath.Join(f.dataDir, backup.SocketName)
	stop, err := backup.Listen(path, backup.Sources{DataDir: f.dataDir, Log: storage, Index: idx}, logger)
	if err != nil {
		logger.Warn("no admin socket: `quire backup` needs the server stopped", "error", err)
		return none
	}
	return stop
}
