package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCreateEntryREST measures whole writes through the real HTTP server: gateway decoding,
// signature check, append, wait for the covering checkpoint, proof and answer. Requests are signed
// before the clock starts so the figure is the server's, not the client's. Run with e.g.
// `go test -run '^$' -bench CreateEntryREST -benchtime 20000x ./api/server`.
func BenchmarkCreateEntryREST(b *testing.B) {
	l := startLog(b)
	k := newSigner(b)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = signArtifact(b, k, []byte(fmt.Sprintf("bench %d %d", time.Now().UnixNano(), i))).json()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	var next atomic.Int64
	var failed atomic.Int64
	b.SetParallelism(128)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			resp, err := client.Post(l.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(bodies[i]))
			if err != nil {
				failed.Add(1)
				continue
			}
			if resp.StatusCode != http.StatusCreated {
				failed.Add(1)
			}
			_, _ = new(bytes.Buffer).ReadFrom(resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d writes failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}
