package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"

	"github.com/quirelog/quire/api/server"
	"github.com/quirelog/quire/cmd/internal/cli"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/witnessing"
	"github.com/quirelog/quire/storage/mysql"
	"github.com/quirelog/quire/storage/pebble"
)

const (
	storagePebble = "pebble"
	// awaitPoll is how often a MySQL front end reads the published checkpoint to answer writes.
	awaitPoll = 100 * time.Millisecond
)

// parseStorage checks --storage: "pebble", or a mysql:// URL whose DSN it returns.
func parseStorage(s string) (string, error) {
	switch {
	case s == storagePebble:
		return "", nil
	case strings.HasPrefix(s, mysql.URLScheme):
		dsn, err := mysql.ParseURL(s)
		if err != nil {
			return "", cli.Usagef("--storage: %w", err)
		}
		return dsn, nil
	default:
		// The value may hold a password: say what is wanted, not what was given.
		return "", cli.Usagef("--storage: want %s or %sUSER:PASS@tcp(HOST:PORT)/DB", storagePebble, mysql.URLScheme)
	}
}

// backend is the log's storage as serve wires it into the log package.
type backend struct {
	appender *tessera.Appender // nil for a read-only log
	reader   tessera.LogReader
	awaiter  quirelog.Awaiter
	history  quirelog.CheckpointHistory
	index    quirelog.Index
	// readOnly is --read-only or a frozen log; frozen and finalSize say the latter.
	readOnly  bool
	frozen    bool
	finalSize uint64
	// noFollow says the search index was opened read-only: it is looked up, not extended.
	noFollow bool
	// published says when the latest checkpoint was published, for the status page; nil when
	// the storage does not know.
	published func() (size uint64, at time.Time, ok bool)
	// health says whether the storage takes writes, beyond what the log sees of its appends; nil
	// when the storage cannot tell.
	health quirelog.WriteChecker
	// checks are the storage's own readiness checks.
	checks []server.Check
	// describe names the storage for the start message; never a password.
	describe string
	// close drains the appender (every write it gave an index to is integrated and published)
	// and closes the storage; call it after the log's search follower has stopped.
	close func() error
}

// openBackend opens the storage --storage names. identityRecorded says the data directory already
// holds the log's identity (checkIdentity); on Pebble a first start records it, after checking
// that the log's latest checkpoint is the key's and before anything is signed with it.
func openBackend(ctx context.Context, f *serveFlags, key *logKey, identityRecorded bool, witnesses tessera.WitnessGroup, logger *slog.Logger, reg prometheus.Registerer, tracker *witnessing.Tracker) (*backend, error) {
	if f.mysqlDSN != "" {
		return openMySQL(ctx, f, key, witnesses, logger)
	}
	return openPebble(ctx, f, key, identityRecorded, witnesses, logger, reg, tracker)
}

// openPebble opens the embedded storage in --data-dir: the log and the search index, and the admin
// socket that `quire backup` talks to.
func openPebble(ctx context.Context, f *serveFlags, key *logKey, identityRecorded bool, witnesses tessera.WitnessGroup, logger *slog.Logger, reg prometheus.Registerer, tracker *witnessing.Tracker) (*backend, error) {
	cfg := pebble.Config{Path: filepath.Join(f.dataDir, logDBDir), DisableDedup: !f.dedup, DedupFilterBytes: f.dedupFilterBytes, Logger: logger, Metrics: reg, ReadOnly: f.readOnly}
	if tracker != nil {
		// The tracker watches the publisher's requests to witnesses and what it publishes.
		cfg.HTTPClient = &http.Client{Transport: tracker.Transport(nil)}
		cfg.OnPublish = tracker.ObservePublication
	}
	// The phases of a start are logged with their durations, so a slow restart says where its
	// time went (scripts/bench-scale keeps the server's log).
	began := time.Now()
	drv, err := pebble.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening log storage: %w", err)
	}
	openedLog := time.Now()
	storage := drv.(*pebble.Storage)
	finalSize, frozen, err := storage.Frozen()
	if err != nil {
		return nil, errors.Join(err, storage.Close())
	}
	readOnly := f.readOnly || frozen
	if !identityRecorded {
		if err := recordIdentity(ctx, f.dataDir, key, storage, readOnly, logger); err != nil {
			return nil, errors.Join(err, storage.Close())
		}
	}
	appender, shutdownAppender, reader, err := startAppender(ctx, readOnly, drv, storage, appendOptions(f, key, witnesses, f.checkpointInterval))
	if err != nil {
		return nil, errors.Join(err, storage.Close())
	}
	closeStorage := func() error {
		return drainAndClose(shutdownAppender, f.shutdownTimeout, func() error {
			if err := storage.Close(); err != nil {
				return fmt.Errorf("closing log storage: %w", err)
			}
			return nil
		})
	}
	startedAppender := time.Now()
	idx, noFollow, err := openIndex(f, logger)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("opening search index: %w", err), closeStorage())
	}
	logger.Info("storage opened", "log_db", openedLog.Sub(began), "appender", startedAppender.Sub(openedLog), "index_db", time.Since(startedAppender))
	stopAdmin := listenAdmin(f, storage, idx, logger)
	be := &backend{
		appender: appender, reader: reader, awaiter: storage, history: storage, index: idx,
		readOnly: readOnly, frozen: frozen, finalSize: finalSize, noFollow: noFollow,
		published: storage.Published,
		health:    storage,
		describe:  storagePebble + " " + cfg.Path,
		close:     func() error { return errors.Join(stopAdmin(), idx.Close(), closeStorage()) },
	}
	if !readOnly {
		be.checks = []server.Check{{Name: "checkpoint", Check: func(context.Context) error { return storage.Fresh(f.readyMaxAge) }}}
	}
	return be, nil
}

// openMySQL runs this front end on the shared database: Tessera's MySQL driver and antispam
// (behind the claims of mysql.Dedup), Tessera's publication awaiter fed by a mysql.Watcher (which
// keeps the checkpoint history), and the shared search index.
func openMySQL(ctx context.Context, f *serveFlags, key *logKey, witnesses tessera.WitnessGroup, logger *slog.Logger) (*backend, error) {
	db, err := mysql.Open(ctx, mysql.Config{DSN: f.mysqlDSN, Logger: logger})
	if err != nil {
		return nil, err
	}
	be, err := startMySQL(ctx, f, db, key, witnesses, logger)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return be, nil
}

func startMySQL(ctx context.Context, f *serveFlags, db *mysql.DB, key *logKey, witnesses tessera.WitnessGroup, logger *slog.Logger) (*backend, error) {
	if err := db.CheckIdentity(ctx, key.vkey); err != nil {
		return nil, err
	}
	drv, err := db.Driver(ctx)
	if err != nil {
		return nil, err
	}
	be := &backend{
		reader: drv, history: db.History(), index: db.Index(),
		describe: "mysql " + mysql.Redact(f.mysqlDSN),
		close:    db.Close,
		readOnly: f.readOnly,
	}
	if f.readOnly {
		return be, nil
	}
	interval := f.checkpointInterval
	if interval < mysql.MinCheckpointInterval {
		logger.Info("checkpoint interval raised: Tessera's MySQL driver publishes at most once per interval of at least this", "checkpoint_interval", mysql.MinCheckpointInterval, "asked", interval)
		interval = mysql.MinCheckpointInterval
	}
	opts := appendOptions(f, key, witnesses, interval)
	wcfg := mysql.WatcherConfig{ReadCheckpoint: drv.ReadCheckpoint, History: db.History(), VerifierKey: key.vkey}
	// closeDedup records the indices of the last claimed entries, after the appender drained.
	closeDedup := func() {}
	started := false
	defer func() {
		if !started {
			closeDedup()
		}
	}()
	if f.dedup {
		dedup, err := db.Dedup(ctx, f.pushback)
		if err != nil {
			return nil, err
		}
		opts = opts.WithAntispam(tessera.DefaultAntispamInMemorySize, dedup.Antispam)
		wcfg.DedupIndexed = dedup.Indexed
		closeDedup = dedup.Close
	}
	watcher, err := mysql.NewWatcher(wcfg)
	if err != nil {
		return nil, err
	}
	// The checkpoint published before this front end started goes into the history before this
	// front end can publish over it.
	if _, err := watcher.ReadCheckpoint(ctx); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	appender, shutdownAppender, reader, err := startAppender(actx, false, drv, drv, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	be.appender, be.reader = appender, reader
	be.awaiter = tessera.NewPublicationAwaiter(actx, watcher.ReadCheckpoint, awaitPoll)
	be.close = func() error {
		return drainAndClose(shutdownAppender, f.shutdownTimeout, func() error {
			// Tessera's background loops stop before their connections go.
			closeDedup()
			cancel()
			return db.Close()
		})
	}
	started = true
	return be, nil
}

// appendOptions are the appender settings both storages share.
func appendOptions(f *serveFlags, key *logKey, witnesses tessera.WitnessGroup, interval time.Duration) *tessera.AppendOptions {
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(key.signer).
		WithBatching(f.batchMaxSize, f.batchMaxAge).
		WithCheckpointInterval(interval).
		WithCheckpointRepublishInterval(f.republishInterval).
		WithPushback(f.pushback)
	if f.witnessPolicy != "" {
		opts = opts.WithWitnesses(witnesses, &tessera.WitnessOptions{Timeout: f.witnessTimeout, FailOpen: f.witnessFailOpen})
	}
	return opts
}

// drainAndClose drains the appender (every entry it handed an index to gets integrated and a
// checkpoint published) and only then closes the storage.
func drainAndClose(shutdownAppender func(context.Context) error, timeout time.Duration, closeStorage func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	if e := shutdownAppender(ctx); e != nil {
		err = fmt.Errorf("draining appender: %w", e)
	}
	return errors.Join(err, closeStorage())
}
