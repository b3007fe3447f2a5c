package pebble

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/transparency-dev/tessera"
)

// TestHealthAndMetricsDescribeTheDriver writes a known number of entries (some twice) and checks
// what the driver says of itself: readiness, the latest publication, its metrics and the
// publication callback.
func TestHealthAndMetricsDescribeTheDriver(t *testing.T) {
	signer, v := testKeys(t)
	reg := prometheus.NewRegistry()
	const n = 20
	var mu sync.Mutex
	var published []uint64
	// The publisher makes a checkpoint visible before it counts it and calls OnPublish, so the
	// test waits for the call, not only for the checkpoint.
	heardN := make(chan struct{})
	var once sync.Once
	cfg := Config{Path: filepath.Join(t.TempDir(), "db"), Metrics: reg, OnPublish: func(size uint64, cp []byte, err error) {
		if err == nil && cp != nil {
			mu.Lock()
			published = append(published, size)
			if size == n {
				once.Do(func() { close(heardN) })
			}
			mu.Unlock()
		}
	}}
	l := openTestLog(t, cfg, fastOptions(signer))
	closed := false
	defer func() {
		if !closed {
			l.close(t)
		}
	}()
	ctx := context.Background()

	l.appendAll(t, entryData("health", 0, n))
	l.appendAll(t, entryData("health", 0, 5)) // duplicates of the first five
	l.awaitSize(t, v, n)
	select {
	case <-heardN:
	case <-time.After(time.Minute):
		t.Fatalf("OnPublish never heard of size %d", n)
	}

	t.Run("the driver is writable and its checkpoint fresh", func(t *testing.T) {
		if err := l.s.Writable(ctx); err != nil {
			t.Fatalf("Writable = %v", err)
		}
		size, at, ok := l.s.Published()
		if !ok || size != n || time.Since(at) > time.Minute {
			t.Fatalf("Published = %d, %v, %t; want %d, just now", size, at, ok, n)
		}
		if err := l.s.Fresh(time.Minute); err != nil {
			t.Fatalf("Fresh(1m) = %v", err)
		}
		if err := l.s.Fresh(time.Nanosecond); err == nil || !strings.Contains(err.Error(), "tree size 20") {
			t.Fatalf("Fresh(1ns) = %v, want an error naming the stale checkpoint's size", err)
		}
	})
	t.Run("the metrics count what was written", func(t *testing.T) {
		for name, want := range map[string]float64{
			"quire_integrated_tree_size":          n,
			"quire_published_tree_size":           n,
			"quire_sequencer_outstanding_entries": 0,
		} {
			got, err := gaugeValue(reg, name)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		if got := testutil.ToFloat64(l.s.metrics.publications.WithLabelValues(publishOK)); got < 2 {
			t.Errorf("%v publications, want the first and at least one with entries", got)
		}
		if got := histogramSum(t, reg, "quire_sequencer_batch_entries", "new"); got != n {
			t.Errorf("new entries in batches sum to %v, want %d", got, n)
		}
		if got := histogramSum(t, reg, "quire_sequencer_batch_entries", "duplicate"); got != 5 {
			t.Errorf("duplicates in batches sum to %v, want 5", got)
		}
		if free, err := gaugeValue(reg, "quire_storage_disk_free_bytes"); err != nil || free <= 0 {
			t.Errorf("disk free %v, %v", free, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(published) < 2 || published[len(published)-1] != n {
			t.Errorf("OnPublish heard of sizes %v, want the last to be %d", published, n)
		}
	})
	t.Run("a closed driver is not writable", func(t *testing.T) {
		l.close(t)
		closed = true
		if err := l.s.Writable(ctx); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("Writable after Close = %v", err)
		}
	})
}

// gaugeValue reads an unlabelled gauge from reg.
func gaugeValue(reg *prometheus.Registry, name string) (float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no gauge %s", name)
}

// histogramSum reads the sum of the histogram series whose only label has value label.
func histogramSum(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// TestWritableSeesStorageFaults removes the database directory under a running driver.
func TestWritableSeesStorageFaults(t *testing.T) {
	ctx := context.Background()
	signer, _ := testKeys(t)
	dir := filepath.Join(t.TempDir(), "log")
	l := openTestLog(t, Config{Path: dir}, fastOptions(signer))
	defer l.close(t)
	l.appendAll(t, entryData("healthy", 0, 3))
	t.Run("a working store is writable", func(t *testing.T) {
		if err := l.s.Writable(ctx); err != nil {
			t.Fatalf("Writable() = %v", err)
		}
	})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	t.Run("a store whose directory is gone is not, before any write", func(t *testing.T) {
		if err := l.s.Writable(ctx); err == nil {
			t.Fatal("Writable() = nil with the database directory removed")
		}
	})
	t.Run("a failed commit keeps it unwritable after the directory is back", func(t *testing.T) {
		if _, err := l.add(ctx, tessera.NewEntry([]byte("lost")))(); err == nil {
			t.Fatal("an entry was sequenced with the database directory removed")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := l.s.Writable(ctx); err == nil {
			t.Fatal("Writable() = nil after a failed commit and no successful one")
		}
	})
}
