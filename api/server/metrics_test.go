package server

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the metrics.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header       { return w.h }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}

// BenchmarkInstrumentHTTP is what instrumentHTTP adds to a write answered 201.
func BenchmarkInstrumentHTTP(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	h := m.instrumentHTTP(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	r, err := http.NewRequest(http.MethodPost, writePath, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
