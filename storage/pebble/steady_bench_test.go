package pebble

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
)

// BenchmarkSteadyState commits b.N entries with fresh identities through the sequencer in synced
// batches of 1024, as a log growing under load does (scripts/bench-scale's entries: 490 bytes),
// and reports the CPU the whole process spent per entry, Pebble's flushes and compactions
// included, over the last quarter of them and over all; the sstable bytes compactions wrote per
// entry (nearly all of them dedup records, the values being in blob files); the write
// amplification; and the compaction debt left at the end, which the sequencer, committing
// faster than compactions keep up, leaves larger than a paced log would. An op is one entry;
// -benchtime 3000000x takes about 40 s. The bytes compacted per entry grow with the log; the
// CPU that costs shows clearly only past several million entries (scripts/bench-scale).
func BenchmarkSteadyState(b *testing.B) {
	const (
		batchSize = 1024
		entrySize = 490
	)
	dir := filepath.Join(b.TempDir(), "db")
	d, err := New(context.Background(), Config{Path: dir})
	if err != nil {
		b.Fatal(err)
	}
	s := d.(*Storage)
	defer s.Close()
	<-s.filterDone
	q, err := newSequencer(s)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{'s'})
	entries := make([]*tessera.Entry, batchSize)
	lastQuarter := b.N - b.N/4
	b.ResetTimer()
	start := processCPU(b)
	var late time.Duration
	for from := 0; from < b.N; from += batchSize {
		if from <= lastQuarter && lastQuarter < from+batchSize {
			late = processCPU(b)
		}
		n := min(batchSize, b.N-from)
		for i := range n {
			// Random bytes: a fresh identity each, and nothing for compression to flatter.
			data := make([]byte, entrySize)
			rng.Read(data)
			entries[i] = tessera.NewEntry(data)
		}
		if err := q.commit([]*batch{{entries: entries[:n], done: make(chan struct{})}}); err != nil {
			b.Fatal(err)
		}
	}
	end := processCPU(b)
	b.StopTimer()
	m := s.db.Metrics()
	total := m.Total()
	b.ReportMetric(float64((end-late).Nanoseconds())/float64(b.N-lastQuarter), "late-cpu-ns/entry")
	b.ReportMetric(float64((end-start).Nanoseconds())/float64(b.N), "cpu-ns/entry")
	b.ReportMetric(float64(total.TableBytesCompacted)/float64(b.N), "compacted-B/entry")
	b.ReportMetric(total.WriteAmp(), "write-amp")
	b.ReportMetric(float64(m.Compact.EstimatedDebt)/(1<<20), "debt-MiB")
}

// processCPU is the CPU time the process has used so far, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
