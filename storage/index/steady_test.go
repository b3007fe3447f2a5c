package index

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSteadyState feeds the index what Quire's follower gives it, one op an entry: a leaf
// hash and an artifact digest (random keys, "leaf:" + 32 bytes and "sha256:" + 64 hex digits)
// and a signer key shared by many entries (clustered), in batches the size the follower commits
// under load. Flushes and compactions run on Pebble's goroutines, so a wall-clock ns/op hides
// them; cpu-ns/entry is the process's CPU time (user + system) over the run. The cost grows
// with the index, so run it long enough for compactions to reach the levels a log reaches:
//
//	go test ./storage/index -run '^$' -bench SteadyState -benchtime 2000000x
//
// write-amp is the bytes Pebble wrote to sstables (flushes and compactions) over the bytes of
// the postings themselves; debt-MiB is the compaction work still owed when the run ends, which
// a configuration that only defers work would grow.
func BenchmarkSteadyState(b *testing.B) {
	const (
		batch   = 1024 // about a quarter second of writes under bench-server
		signers = 64
	)
	ctx := context.Background()
	d, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewChaCha8([32]byte{}))
	var signerKeys [signers][]byte
	for i := range signerKeys {
		signerKeys[i] = append([]byte("pkix-sha256:"), randomBytes(rng, 32)...)
	}
	keys := make([][]byte, 0, 3*batch)
	idx := make([]uint64, 0, 3*batch)
	var postingBytes int64
	b.ResetTimer()
	start, wall := cpuTime(b), time.Now()
	for next := 0; next < b.N; {
		keys, idx = keys[:0], idx[:0]
		n := min(batch, b.N-next)
		for i := range n {
			li := uint64(next + i)
			leaf := append([]byte("leaf:"), randomBytes(rng, 32)...)
			digest := hex.AppendEncode([]byte("sha256:"), randomBytes(rng, 32))
			keys = append(keys, leaf, digest, signerKeys[rng.IntN(signers)])
			idx = append(idx, li, li, li)
		}
		for _, k := range keys {
			postingBytes += int64(len(postingPrefix(k)) + 8)
		}
		next += n
		if err := d.Add(ctx, keys, idx, uint64(next)); err != nil {
			b.Fatal(err)
		}
	}
	cpu, elapsed := cpuTime(b)-start, time.Since(wall)
	b.StopTimer()
	m := d.db.Metrics()
	total := m.Total()
	written := total.TableBytesFlushed + total.TableBytesCompacted + total.BlobBytesFlushed + total.BlobBytesCompacted
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/entry")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "wall-ns/entry")
	b.ReportMetric(float64(written)/float64(postingBytes), "write-amp")
	b.ReportMetric(float64(m.Compact.EstimatedDebt)/(1<<20), "debt-MiB")
	b.ReportMetric(float64(m.DiskSpaceUsage())/float64(b.N), "disk-B/entry")
}

func randomBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// cpuTime is the CPU time the process has used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
