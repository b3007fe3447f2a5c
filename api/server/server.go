// Package server is Quire's serving layer: one gRPC server and one HTTP server in front of the log
// personality (package log) and its Tessera storage.
//
// gRPC serves dev.sigstore.rekor.v2.Rekor (rekor-tiles v2.3.0 api/proto/rekor/v2/
// rekor_service.proto, so Rekor v2 clients work unchanged) and quire.v1.Log (proto/quire/v1/
// log.proto). HTTP serves the same services through grpc-gateway, in-process (no loopback gRPC hop),
// with rekor-tiles' JSON encoding and error body {"code":N,"message":"…","details":[]} (writes,
// POST /api/v2/log/entries, skip the gateway's route but answer as it does: entries.go, and small
// ones skip net/http's request reading too: fastlane_write.go), plus the
// C2SP tlog-tiles reads (/checkpoint, /tile/…) at / and under /api/v2/, the status page at / (its
// JSON at /quire/v1/status; with Config.Explorer, the explorer's home page and its pages under
// /explorer/), /healthz (alive), /readyz (ready for writes, from Config.Ready) and
// the OpenAPI documents under /openapi/; MetricsHandler serves /metrics for a listener of its own. The
// tlog-tiles reads over REST and Rekor's GetCheckpoint, GetTile and GetEntryBundle over gRPC share
// one read path (readTiles in tiles.go), so they answer the same bytes and the same status.
//
// Every error from the log reaches clients through one function, mapError (errors.go), which picks
// the gRPC code and the HTTP status Rekor v2 clients expect.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
	"github.com/quirelog/quire/api/server/web"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/admission"
	logstatus "github.com/quirelog/quire/log/status"
	"github.com/quirelog/quire/storage/filecache"
)

// Defaults for Config's zero values.
const (
	// DefaultMaxRequestBody bounds a request body (quire serve --max-request-body); a
	// hashedrekord with an X.509 chain is a few KiB.
	DefaultMaxRequestBody = 4 << 20
	// DefaultReadHeaderTimeout bounds a slow client's headers, so idle sockets cannot pin memory.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout must outlast a write's wait for its covering checkpoint, with margin.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes keep-alive connections nobody uses.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes is far above any legitimate request's headers.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultShutdownGrace is how long Shutdown lets in-flight writes finish when ctx has no deadline.
	DefaultShutdownGrace = 30 * time.Second
	// DefaultMaxInFlightBytes bounds the request bodies held at once (quire serve
	// --max-inflight-bytes): sixteen of the largest, or thousands of real hashedrekord requests.
	DefaultMaxInFlightBytes = 64 << 20
	// DefaultMaxConcurrentStreams bounds the gRPC calls open on one connection; a client queues
	// the rest. With grpcStreamWindow it bounds what one connection can send ahead of the budget.
	DefaultMaxConcurrentStreams = 128
	// DefaultMaxHTTPConnections and DefaultMaxGRPCConnections bound the connections each
	// listener serves at once; more wait in the kernel's backlog until one closes. Each
	// connection can hold memory of its own whatever the body budget says, so only a bound on
	// their number bounds memory: an HTTP connection about 10 KiB idle and up to about 80 KiB
	// while it sends a header block of MaxHeaderBytes; a gRPC connection up to 8 MiB, what its
	// streams may send ahead of the budget. HTTP clients are many and mostly idle (ten thousand
	// held open must not lock others out); gRPC clients multiplex their calls on one connection.
	DefaultMaxHTTPConnections = 16384
	DefaultMaxGRPCConnections = 32
	// DefaultBudgetWait is how long a request waits for room in the in-flight budget before it is
	// refused with 503 / RESOURCE_EXHAUSTED and Retry-After.
	DefaultBudgetWait = time.Second

	// grpcStreamWindow is the HTTP/2 flow-control window of a gRPC stream until its handler reads
	// its message: the most a client can send on a call before the budget admits it. Setting it
	// turns off gRPC's window growth (BDP estimation), which would let a stream's window reach 16 MiB.
	grpcStreamWindow = 64 << 10
	// grpcConnWindow is a connection's window: data received is handed to its stream at once, so
	// it bounds no memory, only bytes on the wire, and is larger than a stream's for throughput.
	grpcConnWindow = 1 << 20
)

// Config configures a Server. Log and Reader are required; every other zero value takes its default.
type Config struct {
	// Log is the personality that validates, appends and proves entries.
	Log *quirelog.Log
	// Reader serves checkpoints, tiles and entry bundles (the LogReader tessera.NewAppender returns).
	Reader tessera.LogReader

	// MaxRequestBody bounds HTTP request bodies (413 beyond it) and gRPC messages.
	MaxRequestBody int64
	// MaxInFlightBytes bounds the request bodies held at once, HTTP and gRPC together; it must be
	// at least MaxRequestBody. See bodyBudget.
	MaxInFlightBytes int64
	// HTTP server timeouts and header bound; see the Default constants.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// MaxHTTPConnections and MaxGRPCConnections bound the connections served at once on each
	// listener; see the Default constants.
	MaxHTTPConnections int
	MaxGRPCConnections int

	// Logger receives request failures and lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
	// TLS, if set, makes both listeners speak TLS (HTTPS, and gRPC over TLS) with this configuration;
	// nil serves plaintext, which suits 127.0.0.1 or a TLS-terminating proxy.
	TLS *tls.Config

	// Registry receives the server's metrics, which MetricsHandler serves; nil means a new
	// registry with the Go runtime and process collectors.
	Registry *prometheus.Registry
	// Ready are readiness checks behind /readyz and gRPC health beyond the one every log has,
	// "storage" (Log.Writable), which comes first.
	Ready []Check
	// Status, if set, serves the status page at / and its JSON at /quire/v1/status.
	Status *logstatus.Source
	// Explorer, if set, serves the pages under ExplorerPrefix, and / for browsers: its home page
	// shows the status page's model (Status must be set too).
	Explorer Explorer
	// LogRequests logs every HTTP request and gRPC call at info level. It turns the fast lane off,
	// since the lane's answers do not pass through the request logger.
	LogRequests bool
	// AddressLimit, if set, rate-limits writes (CreateEntry) per client address: 429 and
	// Retry-After beyond it. See addressLimit for what the address is.
	AddressLimit *admission.Limiter
	// TrustedProxies are the proxies whose X-Forwarded-For names the client for AddressLimit;
	// none by default, so the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// DisableFastLane leaves every HTTP request to net/http; see fastlane.go for what the lane
	// answers. The lane also stays off with TLS, with LogRequests, and on storage that cannot lend
	// full tiles (MySQL).
	DisableFastLane bool

	// gatewayWrites sends REST writes through grpc-gateway too, so that tests can hold
	// entriesHandler's answers to the gateway's.
	gatewayWrites bool

	// FileCache, if not nil, is where the fast lane keeps the full tiles and entry bundles (and
	// gzip forms) it served, to send them again with sendfile(2) rather than from memory. The
	// caller closes it after Shutdown.
	FileCache *filecache.Cache
}

func (c *Config) setDefaults() {
	if c.MaxRequestBody <= 0 {
		c.MaxRequestBody = DefaultMaxRequestBody
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = max(DefaultMaxInFlightBytes, c.MaxRequestBody)
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxHTTPConnections <= 0 {
		c.MaxHTTPConnections = DefaultMaxHTTPConnections
	}
	if c.MaxGRPCConnections <= 0 {
		c.MaxGRPCConnections = DefaultMaxGRPCConnections
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = newRegistry()
	}
}

func (c *Config) valid() error {
	if c.Log == nil {
		return errors.New("server: Config.Log is nil")
	}
	if c.Reader == nil {
		return errors.New("server: Config.Reader is nil")
	}
	if c.MaxRequestBody > int64(^uint32(0)>>1) {
		return fmt.Errorf("server: Config.MaxRequestBody %d exceeds what gRPC accepts (2 GiB)", c.MaxRequestBody)
	}
	if c.MaxInFlightBytes < c.MaxRequestBody {
		return fmt.Errorf("server: Config.MaxInFlightBytes %d is below MaxRequestBody %d: the largest request could never be read", c.MaxInFlightBytes, c.MaxRequestBody)
	}
	return nil
}

// Server is the pair of listeners' servers. Start it with Serve, stop it with Shutdown.
type Server struct {
	cfg     Config
	grpc    *grpc.Server
	http    *http.Server
	health  *health.Server
	handler http.Handler
	// laneWrites answers the writes the fast lane reads: the write route's handler with the
	// metrics around it, as handler would reach it. The lane's writes all have the route's exact,
	// clean path, so handler's path check and mux would only find the route again.
	laneWrites http.Handler

	// tiles and laneMetrics make the fast lane (fastlane.go) when it is on (Config.DisableFastLane)
	// and storage is a fullReader; lane is the one Serve started, if any.
	tiles       *tileHandler
	laneMetrics *laneMetrics
	lane        atomic.Pointer[laneListener]

	shutdownOnce sync.Once
	stopReady    chan struct{}
}

// New builds the gRPC and HTTP servers. Nothing listens until Serve.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	rekor := &rekorService{log: cfg.Log, reader: cfg.Reader, logger: cfg.Logger}
	if cfg.AddressLimit != nil {
		if err := cfg.AddressLimit.Register(cfg.Registry); err != nil {
			return nil, err
		}
		rekor.limit = &addressLimit{lim: cfg.AddressLimit, proxies: cfg.TrustedProxies}
	}
	quire := &quireService{log: cfg.Log, logger: cfg.Logger}

	s := &Server{cfg: cfg, health: health.NewServer(), stopReady: make(chan struct{})}
	s.cfg.Ready = append([]Check{{Name: "storage", Check: s.writable}}, cfg.Ready...)
	budget := newBodyBudget(cfg.MaxInFlightBytes, DefaultBudgetWait)
	interceptors := []grpc.UnaryServerInterceptor{m.unaryInterceptor, s.recoverInterceptor}
	if cfg.LogRequests {
		interceptors = append([]grpc.UnaryServerInterceptor{s.logCall}, interceptors...)
	}
	grpcOpts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBody)),
		grpc.MaxConcurrentStreams(DefaultMaxConcurrentStreams),
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(grpcConnWindow),
		grpc.ChainUnaryInterceptor(interceptors...),
		grpc.ChainStreamInterceptor(budget.streamInterceptor(cfg.MaxRequestBody)),
		grpc.ConnectionTimeout(cfg.ReadHeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout}),
	}
	if cfg.TLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(cfg.TLS.Clone())))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
	refuse := func(ctx context.Context, err error) error { return fail(ctx, cfg.Logger, err) }
	s.grpc.RegisterService(budget.service(&rekorpb.Rekor_ServiceDesc, cfg.MaxRequestBody, refuse), rekor)
	s.grpc.RegisterService(budget.service(&quirev1.Log_ServiceDesc, cfg.MaxRequestBody, refuse), quire)
	s.grpc.RegisterService(budget.service(&healthpb.Health_ServiceDesc, cfg.MaxRequestBody, refuse), s.health)
	// Reflection lets operators explore the API with grpcurl, as rekor-tiles allows.
	reflection.Register(s.grpc)

	marshaler := newJSONMarshaler()
	gw := newGatewayMux(marshaler)
	ctx := context.Background()
	if err := rekorpb.RegisterRekorHandlerServer(ctx, gw, rekor); err != nil {
		return nil, fmt.Errorf("registering Rekor gateway: %w", err)
	}
	if err := quirev1.RegisterLogHandlerServer(ctx, gw, quire); err != nil {
		return nil, fmt.Errorf("registering quire.v1 gateway: %w", err)
	}

	tileReads := newTileHandler(cfg.Reader, cfg.Logger)
	if tileReads.full != nil && !cfg.DisableFastLane && !cfg.LogRequests && cfg.TLS == nil {
		s.tiles, s.laneMetrics = tileReads, newLaneMetrics(m)
	}
	mux := http.NewServeMux()
	// Every API request, the gateway's or entriesHandler's, is bounded and counted alike.
	guard := func(h http.Handler) http.Handler {
		h = limitBody(cfg.MaxRequestBody, budget.http(cfg.MaxRequestBody, h))
		if rekor.limit != nil {
			h = rekor.limit.withClientAddr(h)
		}
		return h
	}
	api := guard(gw)
	mux.Handle("/api/v2/log/", api)
	mux.Handle("/quire/v1/", api)
	var writes http.Handler
	if !cfg.gatewayWrites {
		writes = guard(&entriesHandler{rekor: rekor, marshaler: marshaler, gateway: gw})
		mux.Handle("POST "+writePath, writes)
	}
	// Rekor v2 routes GET /api/v2/checkpoint and /api/v2/tile/… to its gRPC reads; the tlog-tiles
	// handler answers them here instead, byte-exact and with cache headers.
	tileReads.register(mux, "")
	tileReads.register(mux, "/api/v2")
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("/readyz", s.serveReady)
	mux.HandleFunc(StatusPath, s.serveStatusJSON)
	mux.Handle(OpenAPIPath, serveOpenAPI())
	mux.Handle(web.StaticPrefix, web.Static())
	if s.cfg.Explorer != nil {
		mux.Handle(ExplorerPrefix, s.cfg.Explorer)
	}
	mux.HandleFunc("/", s.serveStatusPage)
	var h http.Handler = refuseUncleanPaths(mux)
	if cfg.LogRequests {
		h = s.logRequests(h)
	}
	s.handler = m.instrumentHTTP(h)
	if writes != nil {
		s.laneWrites = m.instrumentHTTP(writes)
	}

	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if cfg.TLS != nil {
		s.http.TLSConfig = cfg.TLS.Clone()
	}
	return s, nil
}

// Handler is the HTTP handler Serve uses, for embedding the API in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler serves /metrics (Config.Registry in the Prometheus text format), /healthz and
// /readyz: the handler of an operator's listener, kept off the public one.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry}))
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /readyz", s.serveReady)
	return mux
}

// Serve answers HTTP on httpLis and gRPC on grpcLis until Shutdown, and returns the first error
// that stopped either; after Shutdown it returns nil.
func (s *Server) Serve(httpLis, grpcLis net.Listener) error {
	s.health.SetServingStatus(readService, healthpb.HealthCheckResponse_SERVING)
	go s.followReadiness(s.stopReady)
	httpLis = limitListener(httpLis, s.cfg.MaxHTTPConnections)
	grpcLis = limitListener(grpcLis, s.cfg.MaxGRPCConnections)
	if s.tiles != nil {
		lane := newLaneListener(httpLis, s.tiles, &s.cfg, s.laneMetrics, s.laneWrites)
		s.lane.Store(lane)
		httpLis = lane
	}
	errc := make(chan error, 2)
	go func() {
		var err error
		if s.http.TLSConfig != nil {
			// The certificate is already in TLSConfig.
			err = s.http.ServeTLS(httpLis, "", "")
		} else {
			err = s.http.Serve(httpLis)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		err := s.grpc.Serve(grpcLis)
		if errors.Is(err, grpc.ErrServerStopped) {
			// Shutdown came before Serve began: a clean stop, as http.ErrServerClosed is.
			err = nil
		}
		errc <- err
	}()
	first := <-errc
	if first != nil {
		// One side failed: stop the other, so the process does not half-serve.
		ctx, cancel := context.WithTimeout(context.Background(), DefaultShutdownGrace)
		defer cancel()
		_ = s.Shutdown(ctx)
	}
	second := <-errc
	if first != nil {
		return fmt.Errorf("serving: %w", first)
	}
	if second != nil {
		return fmt.Errorf("serving: %w", second)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests (a write waits for its
// checkpoint) until ctx ends; then it cuts the rest. Call it before shutting the appender down, so
// every answered write is one the appender still integrates.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdownOnce.Do(func() {
		close(s.stopReady)
		s.health.Shutdown()
		grpcDone := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(grpcDone)
		}()
		err = s.http.Shutdown(ctx)
		if lane := s.lane.Load(); lane != nil {
			lane.wait(ctx)
		}
		select {
		case <-grpcDone:
		case <-ctx.Done():
			s.grpc.Stop()
			<-grpcDone
		}
		if err != nil {
			err = fmt.Errorf("stopping HTTP server: %w", errors.Join(err, s.http.Close()))
		}
	})
	return err
}

// recoverInterceptor turns a panic in a handler into Internal for that call instead of a crash of
// the whole log; net/http does the same for HTTP handlers.
func (s *Server) recoverInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.ErrorContext(ctx, "panic in gRPC handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}
