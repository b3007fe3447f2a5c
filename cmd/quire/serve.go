package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/quirelog/quire/api/explorer"
	"github.com/quirelog/quire/api/server"
	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/keyfile"
	"github.com/quirelog/quire/cmd/internal/logging"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/status"
	"github.com/quirelog/quire/log/witnessing"
	"github.com/quirelog/quire/storage/backup"
	"github.com/quirelog/quire/storage/filecache"
	"github.com/quirelog/quire/storage/pebble"
)

// Defaults of `quire serve`; they aim, on a 2-core machine, at an answer with a proof in about half
// a second, and thousands of writes a second in batches of up to a thousand.
const (
	defaultDataDir            = "quire-data"
	defaultHTTPListen         = "127.0.0.1:3000"
	defaultBatchMaxSize       = 1024
	defaultBatchMaxAge        = 50 * time.Millisecond
	defaultCheckpointInterval = 100 * time.Millisecond
	defaultPushback           = 16384
	defaultShutdownTimeout    = 30 * time.Second
	// defaultFileCache holds about 6,000 bundles of 490-byte entries with their gzip forms and
	// tiles. It is disk and page cache, which the kernel reclaims, not the server's memory.
	defaultFileCache = 1 << 30
	// fileCacheDir is the file cache's directory in the data directory.
	fileCacheDir = "files"
	// defaultRepublishInterval republishes an idle log's checkpoint once a minute, so witnesses,
	// monitors and readiness see a live publisher even when nobody writes.
	defaultRepublishInterval = time.Minute

	logDBDir   = backup.LogDir
	indexDBDir = backup.IndexDir
)

type serveFlags struct {
	dataDir            string
	storage            string
	keyPath            string
	keyPassword        string
	kms                string
	origin             string
	httpListen         string
	grpcListen         string
	publicURL          string
	batchMaxSize       uint
	batchMaxAge        time.Duration
	checkpointInterval time.Duration
	pushback           uint
	maxRequestBody     int64
	maxInFlightBytes   int64
	maxHTTPConns       int
	maxGRPCConns       int
	readOnly           bool
	dedup              bool
	dedupFilterBytes   int64
	shutdownTimeout    time.Duration
	witnessPolicy      string
	witnessTimeout     time.Duration
	witnessFailOpen    bool
	writeTimeout       time.Duration
	tlsCert            string
	tlsKey             string
	republishInterval  time.Duration
	readyMaxAge        time.Duration
	metricsListen      string
	logRequests        bool
	fastLane           bool
	fileCache          int64
	logging            *logging.Options
	admission          *admissionFlags
	// publicURLSet says --public-url was given; otherwise it follows --http-listen.
	publicURLSet bool
	// originSet says --origin or --public-url was given, so the key must match it.
	originSet bool
	// mysqlDSN is the go-sql-driver DSN of --storage mysql://…; empty for Pebble.
	mysqlDSN string
}

func parseServeFlags(inv *cli.Invocation, args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fset := inv.Flags()
	fset.StringVar(&f.dataDir, "data-dir", defaultDataDir, "`DIR` holding the Pebble databases and, by default, the log key; created on first start")
	fset.StringVar(&f.storage, "storage", storagePebble, "where the log lives: "+storagePebble+" (in --data-dir) or mysql://USER:PASS@tcp(HOST:PORT)/DB, a MySQL or MariaDB database that any number of front ends share (each with the same --key); the URL holds a password, so give it in QUIRE_STORAGE or --config rather than on the command line, which ps shows")
	fset.StringVar(&f.keyPath, "key", "", "checkpoint signer key `FILE`, mode 0600: a note signer key, or a PEM private key (PKCS#8 Ed25519 or ECDSA P-256, as rekor-tiles' --signer-filepath) (default: DATA-DIR/"+keyFileName+", made on first start and, while the log has no entry, made anew for a new origin)")
	addKeyFlags(fset, &f.keyPassword, &f.kms)
	fset.StringVar(&f.origin, "origin", "", "the log's origin, the name in its checkpoints (default: the host of --public-url)")
	fset.StringVar(&f.httpListen, "http-listen", defaultHTTPListen, "listen on `ADDR` for REST and tlog-tiles reads")
	fset.StringVar(&f.grpcListen, "grpc-listen", "", "listen on `ADDR` for gRPC (default: the --http-listen host, its port + 1)")
	fset.StringVar(&f.publicURL, "public-url", "", "the `URL` clients reach the log at (default: http://, or https:// with --tls-cert, then the --http-listen address, where a wildcard host such as 0.0.0.0 is this machine's host name)")
	fset.UintVar(&f.batchMaxSize, "batch-max-size", defaultBatchMaxSize, "most entries sequenced in one batch")
	fset.DurationVar(&f.batchMaxAge, "batch-max-age", defaultBatchMaxAge, "longest an entry waits for its batch to fill")
	fset.DurationVar(&f.checkpointInterval, "checkpoint-interval", defaultCheckpointInterval, "how often a checkpoint is published; writes are answered once one covers them")
	fset.UintVar(&f.pushback, "pushback", defaultPushback, "entries sequenced but not integrated beyond which writes get 503 and Retry-After")
	fset.Int64Var(&f.maxRequestBody, "max-request-body", server.DefaultMaxRequestBody, "largest request body in bytes (413 beyond); a hashedrekord request is at most 64 KiB whatever this says")
	fset.Int64Var(&f.maxInFlightBytes, "max-inflight-bytes", server.DefaultMaxInFlightBytes, "request bodies held at once, in bytes, HTTP and gRPC together (at least --max-request-body); beyond it a request waits a second, then gets 503 (gRPC RESOURCE_EXHAUSTED) and Retry-After")
	fset.IntVar(&f.maxHTTPConns, "max-http-connections", server.DefaultMaxHTTPConnections, "HTTP connections served at once; more wait until one closes (each holds about 10 KiB idle, up to 80 KiB while it sends its headers)")
	fset.IntVar(&f.maxGRPCConns, "max-grpc-connections", server.DefaultMaxGRPCConnections, "gRPC connections served at once; more wait until one closes (each can hold 8 MiB; clients multiplex calls on one)")
	fset.BoolVar(&f.readOnly, "read-only", false, "serve reads only (writes get 405), opening the databases read-only, so a log on read-only media serves; a frozen log (quire freeze) is always read-only")
	fset.BoolVar(&f.dedup, "dedup", true, "give a resubmitted entry the first copy's index (409) instead of logging it again")
	fset.Int64Var(&f.dedupFilterBytes, "dedup-filter-bytes", pebble.DefaultDedupFilterBytes, "bytes of the in-memory filter that answers dedup lookups of new entries, 1.25 per entry it holds (the default holds about 27 million); past it, lookups of entries written since go to the database, slower, until a restart with a larger one (Pebble storage only)")
	fset.StringVar(&f.witnessPolicy, "witness-policy", "", "`FILE` with the witness policy (Tessera/Sigsum format: witness, group, quorum lines); checkpoints are cosigned before publication")
	fset.DurationVar(&f.witnessTimeout, "witness-timeout", tessera.DefaultWitnessTimeout, "how long publication waits for witnesses")
	fset.BoolVar(&f.witnessFailOpen, "witness-fail-open", false, "publish a checkpoint even when the witness quorum is not met in time (as rekor-tiles does)")
	fset.DurationVar(&f.writeTimeout, "write-timeout", quirelog.DefaultWriteTimeout, "longest a write waits for a published checkpoint covering its entry; then it gets 503 with X-Log-Index and Retry-After, and the same request sent again gets 409 with the index once one covers it")
	fset.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) `FILE` for HTTPS and gRPC over TLS; with --tls-key")
	fset.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `FILE` of --tls-cert, mode 0600")
	fset.DurationVar(&f.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long shutdown waits for in-flight writes")
	fset.DurationVar(&f.republishInterval, "checkpoint-republish-interval", defaultRepublishInterval, "republish the checkpoint of a tree that has not grown this often (witnesses cosign it anew)")
	fset.DurationVar(&f.readyMaxAge, "ready-max-checkpoint-age", 0, "/readyz fails when the latest checkpoint is older (default: twice --checkpoint-republish-interval plus --witness-timeout)")
	fset.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus /metrics, /healthz and /readyz on `ADDR`, or \"off\" (default: 127.0.0.1 and the --http-listen port + 2)")
	fset.BoolVar(&f.logRequests, "log-requests", false, "log every HTTP request and gRPC call (turns --fast-lane off)")
	fset.BoolVar(&f.fastLane, "fast-lane", true, "answer plain GETs of full tiles and bundles, inclusion proofs and entries by index in a minimal HTTP/1.1 reader ahead of Go's net/http, which gets every other request; off with TLS, --log-requests or --storage mysql://")
	fset.Int64Var(&f.fileCache, "file-cache", defaultFileCache, "bytes of full tiles and entry bundles (and gzip forms) the fast lane keeps as files in DATA-DIR/"+fileCacheDir+", emptied on start, to send with sendfile as a static file server does (0: none; they are then sent from memory)")
	f.logging = logging.AddFlags(fset.FlagSet)
	f.admission = addAdmissionFlags(fset)
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	if _, err := logging.ParseLevel(f.logging.Level); err != nil {
		return nil, cli.Usagef("--log-level: %v", err)
	}
	if f.logging.Format != "text" && f.logging.Format != "json" {
		return nil, cli.Usagef("--log-format %q: want text or json", f.logging.Format)
	}
	if f.republishInterval < f.checkpointInterval || f.readyMaxAge < 0 {
		return nil, cli.Usagef("--checkpoint-republish-interval must be at least --checkpoint-interval, and --ready-max-checkpoint-age not negative")
	}
	if f.readyMaxAge == 0 {
		f.readyMaxAge = defaultReadyMaxAge(f.republishInterval, f.witnessTimeout)
	}
	if f.batchMaxSize == 0 || f.batchMaxAge <= 0 || f.checkpointInterval <= 0 || f.pushback == 0 || f.maxRequestBody <= 0 {
		return nil, cli.Usagef("--batch-max-size, --batch-max-age, --checkpoint-interval, --pushback and --max-request-body must be positive")
	}
	if f.maxHTTPConns < 1 || f.maxGRPCConns < 1 {
		return nil, cli.Usagef("--max-http-connections (%d) and --max-grpc-connections (%d) must be at least 1", f.maxHTTPConns, f.maxGRPCConns)
	}
	if f.dedupFilterBytes <= 0 {
		return nil, cli.Usagef("--dedup-filter-bytes must be positive (--dedup=false turns deduplication off)")
	}
	if f.maxInFlightBytes < f.maxRequestBody {
		return nil, cli.Usagef("--max-inflight-bytes (%d) must be at least --max-request-body (%d)", f.maxInFlightBytes, f.maxRequestBody)
	}
	if f.writeTimeout <= 0 || f.writeTimeout >= server.DefaultWriteTimeout {
		return nil, cli.Usagef("--write-timeout must be positive and below %v, the longest the server spends writing an answer", server.DefaultWriteTimeout)
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, cli.Usagef("--tls-cert and --tls-key go together")
	}
	if f.kms != "" && f.keyPath != "" {
		return nil, cli.Usagef("give --key or --kms, not both")
	}
	var err error
	if f.mysqlDSN, err = parseStorage(f.storage); err != nil {
		return nil, err
	}
	if f.mysqlDSN != "" && f.keyPath == "" && f.kms == "" {
		// A key made per --data-dir would differ between front ends of one database.
		return nil, cli.Usagef("--storage mysql://… needs --key or --kms: every front end of the database signs with the same key")
	}
	f.originSet = f.origin != "" || f.publicURL != ""
	if err := f.followDefaults(); err != nil {
		return nil, err
	}
	return f, nil
}

// runServe runs the log until ctx is cancelled (SIGINT, SIGTERM), then shuts down in the order that
// loses nothing acknowledged: stop taking requests and let in-flight writes get their checkpoint,
// stop the search follower, drain the appender, close storage.
func runServe(ctx context.Context, inv *cli.Invocation, args []string) error {
	begin := time.Now()
	f, err := parseServeFlags(inv, args)
	if err != nil {
		return err
	}
	logger, err := f.logging.New(inv.Stderr)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	admit, addressLimit, proxies, err := f.admission.build()
	if err != nil {
		return err
	}
	build := cli.ReadBuild()
	registry, stopMetrics, err := newMetrics(build)
	if err != nil {
		return err
	}
	defer stopMetrics(context.Background())
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	key, err := openOrCreateKey(ctx, f, logger)
	if err != nil {
		return err
	}
	recorded, err := checkIdentity(f.dataDir, key)
	if err != nil {
		return err
	}
	witnesses, err := readWitnessPolicy(f.witnessPolicy)
	if err != nil {
		return err
	}
	if err := checkWitnessFlags(f, witnesses, logger); err != nil {
		return err
	}
	var tracker *witnessing.Tracker
	if f.witnessPolicy != "" {
		if tracker, err = witnessing.New(witnesses, f.witnessFailOpen, registry); err != nil {
			return err
		}
	}
	tlsConfig, err := loadTLS(f.tlsCert, f.tlsKey)
	if err != nil {
		return err
	}

	// Storage outlives ctx: after a signal it must keep integrating until every answered write is
	// in a published checkpoint.
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()

	be, err := openBackend(bg, f, key, recorded, witnesses, logger, registry, tracker)
	if err != nil {
		return err
	}
	lg, err := quirelog.New(bg, quirelog.Config{
		Appender:     be.appender,
		Reader:       be.reader,
		Awaiter:      be.awaiter,
		History:      be.history,
		Index:        be.index,
		VerifierKey:  key.vkey,
		ReadOnly:     be.readOnly,
		Frozen:       be.frozen,
		FinalSize:    be.finalSize,
		NoFollow:     be.noFollow,
		Health:       be.health,
		WriteTimeout: f.writeTimeout,
		Admission:    admit,
		Logger:       logger,
		Metrics:      registry,
	})
	if err != nil {
		return errors.Join(fmt.Errorf("starting log: %w", err), be.close())
	}
	files := openFileCache(f, logger)
	closeAll := func() error {
		err := errors.Join(lg.Close(), be.close())
		if files != nil {
			err = errors.Join(err, files.Close())
		}
		return err
	}

	statusSource, err := status.New(status.Config{Log: lg, Published: be.published, Witnesses: tracker, Version: build.String(), ReadOnly: be.readOnly})
	if err != nil {
		return errors.Join(err, closeAll())
	}
	go statusSource.Run(bg)
	pages, err := explorer.New(explorer.Config{Log: lg, Witnesses: tracker, Logger: logger})
	if err != nil {
		return errors.Join(err, closeAll())
	}
	srv, err := server.New(server.Config{
		Log:                lg,
		Reader:             be.reader,
		MaxRequestBody:     f.maxRequestBody,
		MaxInFlightBytes:   f.maxInFlightBytes,
		MaxHTTPConnections: f.maxHTTPConns,
		MaxGRPCConnections: f.maxGRPCConns,
		TLS:                tlsConfig,
		Logger:             logger,
		Registry:           registry,
		Ready:              readinessChecks(f, be, tracker),
		Status:             statusSource,
		Explorer:           pages,
		LogRequests:        f.logRequests,
		AddressLimit:       addressLimit,
		TrustedProxies:     proxies,
		DisableFastLane:    !f.fastLane,
		FileCache:          files,
	})
	if err != nil {
		return errors.Join(err, closeAll())
	}
	httpLis, err := net.Listen("tcp", f.httpListen)
	if err != nil {
		return errors.Join(fmt.Errorf("listening for HTTP: %w", err), closeAll())
	}
	grpcLis, err := net.Listen("tcp", f.grpcListen)
	if err != nil {
		return errors.Join(fmt.Errorf("listening for gRPC: %w", err), httpLis.Close(), closeAll())
	}
	metricsSrv, err := startMetricsServer(f.metricsListen, srv.MetricsHandler(), logger)
	if err != nil {
		return errors.Join(err, httpLis.Close(), grpcLis.Close(), closeAll())
	}
	f.settlePublicURL(httpLis.Addr())
	warnIfOriginIsNotPublicHost(f, key, logger)
	logger.Info("quire serving",
		"http", httpLis.Addr().String(), "grpc", grpcLis.Addr().String(), "metrics", metricsSrv.addr(),
		"origin", key.origin, "public_url", f.publicURL, "data_dir", f.dataDir, "storage", be.describe,
		"verifier_key", key.vkey, "read_only", be.readOnly, "frozen", be.frozen, "dedup", f.dedup, "witness_policy", f.witnessPolicy, "tls", tlsConfig != nil, "started_in", time.Since(begin))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(httpLis, grpcLis) }()

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests")
	case runErr = <-serveErr:
		logger.Error("server stopped", "error", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if err := metricsSrv.shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("stopping the metrics server: %w", err))
	}
	if runErr == nil {
		runErr = <-serveErr
	}
	if err := closeAll(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if runErr == nil {
		logger.Info("shut down cleanly")
	}
	return runErr
}

// openFileCache opens the fast lane's file cache, or returns nil when the lane is off, the log is
// in MySQL, or --file-cache is 0. A data directory that cannot hold it (read-only media) only
// costs the lane its files: bundles are then sent from memory.
func openFileCache(f *serveFlags, logger *slog.Logger) *filecache.Cache {
	if !f.fastLane || f.logRequests || f.tlsCert != "" || f.mysqlDSN != "" || f.fileCache <= 0 {
		return nil
	}
	c, err := filecache.Open(filepath.Join(f.dataDir, fileCacheDir), f.fileCache)
	if err != nil {
		logger.Warn("serving entry bundles without a file cache", "error", err)
		return nil
	}
	return c
}

// startAppender starts Tessera's appender lifecycle on the driver. A read-only (frozen) log gets
// none: nothing sequences, integrates or republishes, and reads come straight from storage, which
// is itself the driver's tessera.LogReader.
func startAppender(ctx context.Context, readOnly bool, drv tessera.Driver, storage tessera.LogReader, opts *tessera.AppendOptions) (*tessera.Appender, func(context.Context) error, tessera.LogReader, error) {
	if readOnly {
		return nil, func(context.Context) error { return nil }, storage, nil
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, drv, opts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("starting appender: %w", err)
	}
	return appender, shutdown, reader, nil
}

// openOrCreateKey loads the log key; on a first start with the default key path it creates one, so
// `quire serve` with no flags gives a working log. Such a key follows a new origin while the log
// is empty (adoptOrigin).
func openOrCreateKey(ctx context.Context, f *serveFlags, logger *slog.Logger) (*logKey, error) {
	if f.kms != "" {
		return keySource{kms: f.kms, origin: f.origin}.load(ctx)
	}
	path := f.keyPath
	explicit := path != ""
	if !explicit {
		path = filepath.Join(f.dataDir, keyFileName)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !explicit {
		if err := createAutoKey(f.dataDir, f.origin, logger); err != nil {
			return nil, err
		}
	}
	key, err := keySource{path: path, password: f.keyPassword, origin: f.origin}.load(ctx)
	if err != nil {
		return nil, err
	}
	if key.origin != f.origin && !explicit {
		adopted, err := adoptOrigin(ctx, f, key, logger)
		if err != nil || adopted != nil {
			return adopted, err
		}
	}
	if key.origin != f.origin && f.originSet {
		// An explicit origin or public URL that disagrees with the key would publish checkpoints
		// that clients of that URL reject; a defaulted one just yields to the key.
		return nil, fmt.Errorf("the key's origin is %q but --origin/--public-url say %q: a key given with --key or made by keygen is never replaced, nor one of a log with entries; use a key made for this origin, or a new --data-dir for a new log", key.origin, f.origin)
	}
	return key, nil
}

// readWitnessPolicy parses the --witness-policy file with Tessera's parser; no file means the empty
// group, which asks no witness.
func readWitnessPolicy(path string) (tessera.WitnessGroup, error) {
	if path == "" {
		return tessera.WitnessGroup{}, nil
	}
	policy, err := os.ReadFile(path)
	if err != nil {
		return tessera.WitnessGroup{}, fmt.Errorf("reading witness policy: %w", err)
	}
	group, err := tessera.NewWitnessGroupFromPolicy(policy)
	if err != nil {
		return tessera.WitnessGroup{}, fmt.Errorf("parsing witness policy %s: %w", path, err)
	}
	return group, nil
}

// loadTLS reads the serving certificate and key; no files means plaintext. TLS 1.3 only, as
// rekor-tiles serves: every Sigstore client speaks it.
func loadTLS(certPath, keyPath string) (*tls.Config, error) {
	if certPath == "" {
		return nil, nil
	}
	if err := keyfile.CheckPrivate(keyPath); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		// The error names the files and says what is wrong, never the key's bytes.
		return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", certPath, keyPath, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}
