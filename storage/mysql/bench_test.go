package mysql_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/quirelog/quire/storage/mysql/mysqltest"
)

// BenchmarkIntegrateTransaction measures what bounds one MySQL primary: Tessera's driver
// sequences and integrates each batch in one transaction under the lock of the tree state row,
// so the transactions of all front ends run one at a time, and batches/s × batch size is the most
// a database can take. Each iteration adds exactly one full batch and waits for its index, which
// the driver hands out when the transaction has committed. Deduplication is off: it adds a point
// read per entry and, in the antispam follower, an inserted row per entry in batches, beside
// this transaction rather than in it. scripts/bench-scaleout reports it.
func BenchmarkIntegrateTransaction(b *testing.B) {
	for _, size := range []int{1, 16, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := context.Background()
			db := frontEnd(b, mysqltest.Database(b))
			drv, err := db.Driver(ctx)
			if err != nil {
				b.Fatal(err)
			}
			k := newKey(b, "bench.example")
			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			appender, shutdown, _, err := tessera.NewAppender(actx, drv, tessera.NewAppendOptions().
				WithCheckpointSigner(k.signer).WithCheckpointInterval(time.Second).
				WithBatching(uint(size), time.Second))
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := shutdown(ctx); err != nil {
					b.Error(err)
				}
			}()
			futures := make([]tessera.IndexFuture, size)
			n := 0
			b.ResetTimer()
			for b.Loop() {
				for i := range futures {
					n++
					futures[i] = appender.Add(ctx, tessera.NewEntry(fmt.Appendf(nil, "bench entry %d with some padding to be about the size of a small log entry", n)))
				}
				for _, f := range futures {
					if _, err := f(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/tx")
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
