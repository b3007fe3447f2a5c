package witness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
)

// BenchmarkAddCheckpoint measures the add-checkpoint requests per second
// one witness sustains over HTTP (keep-alive). Each log grows by one to
// three leaves per request and every request carries a real consistency
// proof from the previous size, so the witness does the full work: note
// verification, proof check, cosigning and a synced Pebble write. With one
// log the requests are serialised (each waits for its own fsync); with many
// logs pushing at once Pebble can group their syncs.
func BenchmarkAddCheckpoint(b *testing.B) {
	for _, nlogs := range []int{1, 16} {
		b.Run(fmt.Sprintf("%d_logs", nlogs), func(b *testing.B) {
			var cfg []Log
			bodies := make([][][]byte, nlogs)
			perLog := (b.N + nlogs - 1) / nlogs
			for i := 0; i < nlogs; i++ {
				l := newTestLog(b, fmt.Sprintf("bench.example/log%d", i), fmt.Sprintf("bench %d", i), "b", 0)
				cfg = append(cfg, l.config(b))
				var old uint64
				for j := 0; j < perLog; j++ {
					size := old + 1 + uint64(j%3)
					bodies[i] = append(bodies[i], l.request(b, old, size))
					old = size
				}
			}
			f := startWitness(b, b.TempDir(), 0, 0, cfg...)
			url := f.srv.URL + "/add-checkpoint"
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: nlogs}}
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < nlogs; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, body := range bodies[i] {
						if err := postOK(c, url, body); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(perLog*nlogs)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func postOK(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "text/plain", bytes.NewReader(body))
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("got %d %q", resp.StatusCode, msg)
	}
	return nil
}
