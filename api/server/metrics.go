package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are the serving layer's Prometheus series. Labels are bounded sets (routes, methods,
// codes), never request paths, so a crawler of tile URLs cannot grow the series without limit.
type metrics struct {
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight prometheus.Gauge
	grpcRequests *prometheus.CounterVec
	grpcDuration *prometheus.HistogramVec
	// created are the series of a write answered 201, resolved on the first: by label values,
	// each write hashed four strings and took two read locks to find them.
	created struct {
		once     sync.Once
		count    prometheus.Counter
		duration prometheus.Observer
	}
}

// latencyBuckets span a tile read (sub-millisecond) to a write that waited several checkpoint intervals.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "quire", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "quire", Subsystem: "http", Name: "request_duration_seconds",
			Help: "Time to answer an HTTP request, by route.", Buckets: latencyBuckets,
		}, []string{"route"}),
		httpInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "quire", Subsystem: "http", Name: "requests_in_flight",
			Help: "HTTP requests being answered.",
		}),
		grpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "quire", Subsystem: "grpc", Name: "requests_total",
			Help: "gRPC calls answered, by method and status code.",
		}, []string{"method", "code"}),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "quire", Subsystem: "grpc", Name: "request_duration_seconds",
			Help: "Time to answer a gRPC call, by method.", Buckets: latencyBuckets,
		}, []string{"method"}),
	}
	for _, c := range []prometheus.Collector{m.httpRequests, m.httpDuration, m.httpInFlight, m.grpcRequests, m.grpcDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// newRegistry is the default registry: the server's own series plus the Go runtime and process
// collectors operators expect (memory, goroutines, open files).
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// quireRoutes label each quire.v1 REST route on its own, so a slow proof and a cheap checkpoint
// read do not share a latency histogram.
var quireRoutes = map[string]string{
	"/quire/v1/entries/":          "quire_v1_entry",
	"/quire/v1/proof/inclusion":   "quire_v1_inclusion_proof",
	"/quire/v1/proof/consistency": "quire_v1_consistency_proof",
	"/quire/v1/search":            "quire_v1_search",
	"/quire/v1/checkpoints":       "quire_v1_checkpoint",
	StatusPath:                    "quire_v1_status",
}

// route names the handler a path goes to, for metric labels. Every value comes from a fixed set.
func route(path string) string {
	p := strings.TrimPrefix(path, "/api/v2")
	switch {
	case path == "/api/v2/log/entries":
		return "create_entry"
	case p == "/checkpoint":
		return "checkpoint"
	case strings.HasPrefix(p, "/tile/entries/"):
		return "entry_bundle"
	case strings.HasPrefix(p, "/tile/"):
		return "tile"
	case strings.HasPrefix(path, "/quire/v1/"):
		if r, ok := quireRoutes[path]; ok {
			return r
		}
		if strings.HasPrefix(path, "/quire/v1/entries/") {
			return quireRoutes["/quire/v1/entries/"]
		}
		return "quire_v1_other"
	case path == "/healthz":
		return "healthz"
	case path == "/readyz":
		return "readyz"
	case path == "/":
		return "status_page"
	case strings.HasPrefix(path, OpenAPIPath):
		return "openapi"
	case strings.HasPrefix(path, "/static/"):
		return "static"
	default:
		return "other"
	}
}

// statusRecorder remembers the status a handler wrote, for the request counter.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (m *metrics) instrumentHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.httpInFlight.Inc()
		rec := statusRecorders.Get().(*statusRecorder)
		rec.ResponseWriter = w
		defer func() {
			m.httpInFlight.Dec()
			code := rec.code
			// A handler may not use its ResponseWriter once it has returned, so rec is free again.
			*rec = statusRecorder{}
			statusRecorders.Put(rec)
			if code == http.StatusCreated && r.Method == http.MethodPost && r.URL.Path == writePath {
				m.created.once.Do(func() {
					rt := route(writePath)
					m.created.count = m.httpRequests.WithLabelValues(rt, http.MethodPost, codeLabel(http.StatusCreated))
					m.created.duration = m.httpDuration.WithLabelValues(rt)
				})
				m.created.count.Inc()
				m.created.duration.Observe(time.Since(start).Seconds())
				return
			}
			rt := route(r.URL.Path)
			m.httpRequests.WithLabelValues(rt, methodLabel(r.Method), codeLabel(code)).Inc()
			m.httpDuration.WithLabelValues(rt).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorders spare every HTTP request the allocation of its recorder.
var statusRecorders = sync.Pool{New: func() any { return new(statusRecorder) }}

// codeLabels are the status codes' label values, made once rather than per request.
var codeLabels = func() (l [600]string) {
	for c := range l {
		l[c] = strconv.Itoa(c)
	}
	return l
}()

// codeLabel is the label value of status code, 200 for none written (net/http's default).
func codeLabel(code int) string {
	switch {
	case code == 0:
		return codeLabels[http.StatusOK]
	case code > 0 && code < len(codeLabels):
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}

// methodLabel folds unusual methods together so a client cannot invent label values.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return m
	default:
		return "OTHER"
	}
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	m.grpcDuration.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	return resp, err
}
