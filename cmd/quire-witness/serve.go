package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/keyfile"
	"github.com/quirelog/quire/cmd/internal/logging"
	"github.com/quirelog/quire/witness"
)

func runServe(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	dataDir := fs.String("data-dir", "", "`DIR` of the witness state (Pebble); created if missing (required)")
	keyFile := fs.String("key", "", "witness private key `FILE` from keygen, mode 0600 (required)")
	listen := fs.String("listen", "127.0.0.1:3030", "serve HTTP on `ADDR`")
	logList := fs.String("log-list", "", `read logs from `+"`FILE`"+`: one "VKEY" or "ORIGIN VKEY" per line (the key is the last field, so an origin may have spaces), # comments`)
	rateLimit := fs.Float64("rate-limit", float64(witness.DefaultRateLimit), "add-checkpoint requests per second allowed per log")
	rateBurst := fs.Int("rate-burst", witness.DefaultRateBurst, "burst allowed per log above --rate-limit")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus /metrics on `ADDR` instead of on --listen, or \"off\"")
	logOpts := logging.AddFlags(fs.FlagSet)
	var logLines logFlags
	fs.Var(&logLines, "log", "`VKEY` of a log to witness (its origin is the key's name), or \"ORIGIN VKEY\" (the key is the last field, so an origin may have spaces); repeatable, also as \"log\" lines in the --config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" || *keyFile == "" {
		return cli.Usagef("--data-dir and --key are required")
	}
	if *rateLimit <= 0 || *rateBurst <= 0 {
		return cli.Usagef("--rate-limit and --rate-burst must be positive")
	}
	logger, err := logOpts.New(inv.Stderr)
	if err != nil {
		return cli.Usagef("%v", err)
	}

	var logs []witness.Log
	for _, line := range logLines {
		l, err := witness.ParseLog(line)
		if err != nil {
			return cli.Usagef("--log %q: %v", line, err)
		}
		logs = append(logs, l)
	}
	if *logList != "" {
		f, err := os.Open(*logList)
		if err != nil {
			return fmt.Errorf("opening log list: %w", err)
		}
		more, err := witness.ParseLogConfig(f)
		f.Close()
		if err != nil {
			return cli.Usagef("--log-list %s: %v", *logList, err)
		}
		logs = append(logs, more...)
	}
	if len(logs) == 0 {
		return cli.Usagef("no logs to witness: give --log or --log-list")
	}

	skey, err := keyfile.ReadPrivate(*keyFile)
	if err != nil {
		return err
	}
	cosigner, err := witness.NewCosigner(string(skey), nil)
	if err != nil {
		return fmt.Errorf("loading key %s: %w", *keyFile, err)
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		cli.ReadBuild().Collector("quire_witness_build_info", "Always 1; its labels say what quire-witness was built from."))
	m := newMetrics(reg, logs)
	w, err := witness.New(witness.Config{
		Path:      *dataDir,
		Signer:    cosigner,
		Logs:      logs,
		RateLimit: rate.Limit(*rateLimit),
		RateBurst: *rateBurst,
		Logger:    logger,
		Observe:   m.observe,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	reg.MustRegister(sizeCollector{w})

	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("/", m.instrument(w.Handler()))
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) { statusPage(rw, cosigner, w) })
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok\n") })
	if *metricsListen == "" {
		mux.Handle("GET /metrics", metricsHandler)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	origins := make([]string, 0, len(logs))
	for _, s := range w.Logs() {
		origins = append(origins, s.Origin)
	}
	logger.Info("quire-witness listening", "addr", ln.Addr().String(), "name", cosigner.Name(),
		"vkey", cosigner.VerifierKey(), "logs", strings.Join(origins, ","), "data_dir", *dataDir)

	stopMetrics, err := serveMetrics(*metricsListen, metricsHandler, logger)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	defer stopMetrics()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	// In-flight requests finish (and their state is synced) before the
	// database closes; new connections are refused.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return w.Close()
}

// statusPage lists each log's latest cosigned checkpoint for people.
func statusPage(rw http.ResponseWriter, c *witness.Cosigner, w *witness.Witness) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-cache")
	var b strings.Builder
	fmt.Fprintf(&b, "quire-witness %s\nverifier key: %s\n", c.Name(), c.VerifierKey())
	for _, s := range w.Logs() {
		fmt.Fprintf(&b, "\nlog %s\n", s.Origin)
		if !s.Cosigned {
			b.WriteString("  nothing cosigned yet\n")
			continue
		}
		fmt.Fprintf(&b, "  latest cosigned checkpoint (size %d), also at GET /%s/checkpoint:\n", s.Size, s.OriginHash)
		for _, line := range strings.SplitAfter(strings.TrimSuffix(string(s.Checkpoint), "\n"), "\n") {
			b.WriteString("    " + strings.TrimSuffix(line, "\n") + "\n")
		}
	}
	io.WriteString(rw, b.String())
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	checks   *prometheus.CounterVec
}

// newMetrics makes the witness's series. Per-log series are labelled by the configured origins
// only (witness.Config.Observe reports "" for any other), so the label set is bounded.
func newMetrics(reg *prometheus.Registry, logs []witness.Log) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_witness_http_requests_total",
			Help: "HTTP requests answered by the witness API, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quire_witness_http_request_duration_seconds",
			Help:    "Time to answer witness API requests, including the synced state write.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1},
		}, []string{"route"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_witness_add_checkpoint_total",
			Help: "add-checkpoint requests by log origin (empty for none configured) and outcome (cosigned, conflict, inconsistent, unverified, unknown_log, malformed, too_large, rate_limited, failed).",
		}, []string{"log", "outcome"}),
	}
	for _, l := range logs {
		m.checks.WithLabelValues(l.Origin, witness.Outcome(http.StatusOK))
	}
	reg.MustRegister(m.requests, m.duration, m.checks)
	return m
}

func (m *metrics) observe(origin, outcome string) {
	m.checks.WithLabelValues(origin, outcome).Inc()
}

// serveMetrics serves h on its own listener at addr; "" (metrics on the main listener) and "off"
// start nothing. The returned function stops it.
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (func(), error) {
	if addr == "" || addr == "off" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 15 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("quire-witness metrics", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		route := "checkpoint"
		if r.URL.Path == "/add-checkpoint" {
			route = "add-checkpoint"
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: rw, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// sizeCollector exports each log's latest cosigned size, read at scrape time.
type sizeCollector struct{ w *witness.Witness }

var sizeDesc = prometheus.NewDesc("quire_witness_log_cosigned_size",
	"Tree size of the latest checkpoint cosigned for each log (0 if none).", []string{"origin"}, nil)

func (c sizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sizeDesc }

func (c sizeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.w.Logs() {
		ch <- prometheus.MustNewConstMetric(sizeDesc, prometheus.GaugeValue, float64(s.Size), s.Origin)
	}
}
