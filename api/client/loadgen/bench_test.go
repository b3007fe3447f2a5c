package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/quirelog/quire/api/client"
)

// BenchmarkGeneratorSign is the cost of one fresh, signed request body (what the pool is built of).
func BenchmarkGeneratorSign(b *testing.B) {
	for _, kt := range []client.KeyType{client.KeyECDSAP256, client.KeyEd25519ph} {
		b.Run(string(kt), func(b *testing.B) {
			g, err := NewGenerator(kt, 1)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Sign(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClosedLoopSink is the generator's ceiling: a closed loop against a loopback server that
// answers 201 at once. It reports requests/s and CPU per request (an upper bound for the generator:
// the sink runs in the same process); a log is only measured fairly well below that ceiling.
func BenchmarkClosedLoopSink(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"logIndex":"0"}`))
	}))
	defer srv.Close()
	for b.Loop() {
		rep, err := Run(context.Background(), Config{URL: srv.URL, Workers: 256, Duration: 2 * time.Second, PoolSize: 60000})
		if err != nil {
			b.Fatal(err)
		}
		if rep.UnexpectedErrors() != 0 {
			b.Fatalf("errors: %v", rep.Errors)
		}
		b.ReportMetric(rep.EntriesPerSecond, "req/s")
		b.ReportMetric(rep.ClientCPUPerRequestMicros, "client-cpu-µs/req")
		b.ReportMetric(float64(rep.SignedDuringRun), "signed-live")
	}
}
