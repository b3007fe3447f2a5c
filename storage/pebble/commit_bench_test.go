package pebble

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
)

// BenchmarkSequencerCommit measures the driver's own cost per entry (dedup, bundles, tiles, one
// synced Pebble batch per 1024 entries) without the queue or the futures around it. An op is one
// entry of 300 bytes.
func BenchmarkSequencerCommit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		dedup bool
	}{{"dedup", true}, {"nodedup", false}} {
		b.Run(tc.name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "db")
			d, err := New(context.Background(), Config{Path: dir, DisableDedup: !tc.dedup})
			if err != nil {
				b.Fatal(err)
			}
			s := d.(*Storage)
			q, err := newSequencer(s)
			if err != nil {
				b.Fatal(err)
			}
			const batchSize = 1024
			rng := rand.NewChaCha8([32]byte{'q'})
			entries := make([]*tessera.Entry, b.N)
			for i := range entries {
				// Random bytes, so compression does not flatter the disk figure.
				data := make([]byte, 300)
				rng.Read(data)
				entries[i] = tessera.NewEntry(data)
			}
			b.ReportAllocs()
			b.SetBytes(300)
			b.ResetTimer()
			start := time.Now()
			for from := 0; from < len(entries); from += batchSize {
				bt := &batch{entries: entries[from:min(from+batchSize, len(entries))], done: make(chan struct{})}
				if err := q.commit([]*batch{bt}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
			b.StopTimer()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(dirBytes(b, dir))/float64(b.N), "disk-B/entry")
		})
	}
}

// dirBytes is the total size of the files under dir (the database, WAL included).
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatalf("measuring %s: %v", dir, err)
	}
	return n
}
