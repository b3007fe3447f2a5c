package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"

	"github.com/quirelog/quire/api/server"
	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/log/witnessing"
)

// metricsOff as --metrics-listen serves no metrics.
const metricsOff = "off"

// newMetrics returns the registry served on --metrics-listen, holding the Go runtime and process
// collectors, quire_build_info, and Tessera's OpenTelemetry metrics through the OTel Prometheus
// exporter. It makes that exporter's MeterProvider the global one; Tessera made its instruments
// at init through OTel's global delegating meter, which forwards them to the first provider set,
// so this must run before the appender starts and only once per process. The returned function
// stops the provider.
func newMetrics(build cli.Build) (*prometheus.Registry, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build.Collector("quire_build_info", "Always 1; its labels say what quire was built from."),
	)
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, nil, fmt.Errorf("starting the OpenTelemetry Prometheus exporter: %w", err)
	}
	// Exemplars come only from sampled spans, and no tracer provider is installed, so none is ever
	// kept; the default filter still looks for a span in the context of every measurement, and
	// Tessera makes two measurements per entry.
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	otel.SetMeterProvider(provider)
	return reg, provider.Shutdown, nil
}

// readinessChecks are what /readyz and gRPC health check: the storage's own (it takes writes, the
// latest checkpoint is young) and, when the log fails closed, the witness quorum. A read-only log
// takes no writes by design and has none.
func readinessChecks(f *serveFlags, be *backend, tracker *witnessing.Tracker) []server.Check {
	if be.readOnly {
		return nil
	}
	checks := slices.Clone(be.checks)
	if tracker != nil && !f.witnessFailOpen {
		checks = append(checks, server.Check{Name: "witnesses", Check: tracker.Ready})
	}
	return checks
}

// metricsServer serves srv's MetricsHandler on --metrics-listen; nil when it is off.
type metricsServer struct {
	http *http.Server
	lis  net.Listener
	done chan error
}

func startMetricsServer(addr string, h http.Handler, logger *slog.Logger) (*metricsServer, error) {
	if addr == metricsOff {
		return nil, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	m := &metricsServer{lis: lis, done: make(chan error, 1), http: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: server.DefaultReadHeaderTimeout,
		WriteTimeout:      server.DefaultWriteTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
	go func() {
		err := m.http.Serve(lis)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.done <- err
	}()
	return m, nil
}

// addr is where metrics are served, or "off".
func (m *metricsServer) addr() string {
	if m == nil {
		return metricsOff
	}
	return m.lis.Addr().String()
}

func (m *metricsServer) shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	err := m.http.Shutdown(ctx)
	return errors.Join(err, <-m.done)
}

// defaultReadyMaxAge is the checkpoint age beyond which the log is not ready, when
// --ready-max-checkpoint-age is not given: two republications missed, plus the witnesses' time.
func defaultReadyMaxAge(republish, witnessTimeout time.Duration) time.Duration {
	return 2*republish + witnessTimeout
}
