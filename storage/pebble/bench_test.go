package pebble_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quirelog/quire/storage/pebble"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	// The package is named badger, not after its folder.
	posixantispam "github.com/transparency-dev/tessera/storage/posix/antispam"
	"golang.org/x/mod/sumdb/note"
)

const (
	benchEntrySize = 300
	// benchWorkers concurrent adders keep every batch full, as a busy server's
	// request handlers would.
	benchWorkers      = 1024
	benchBatchSize    = 1024
	benchBatchAge     = 50 * time.Millisecond
	benchCheckpoint   = 500 * time.Millisecond
	benchRunTimeLimit = 10 * time.Minute
)

// BenchmarkAppend measures entries/s through tessera.NewAppender on the Pebble
// driver and on Tessera's POSIX driver, with the same entry stream and the
// same batching. With dedup, POSIX uses Tessera's badger antispam and Pebble
// its built-in strong dedup; without, POSIX has no antispam and Pebble runs
// with DisableDedup. An op is one entry, resolved and integrated.
func BenchmarkAppend(b *testing.B) {
	for _, driver := range []string{"pebble", "posix"} {
		b.Run(driver, func(b *testing.B) {
			for _, dedup := range []bool{true, false} {
				name := "nodedup"
				if dedup {
					name = "dedup"
				}
				b.Run(name, func(b *testing.B) { benchAppend(b, driver, dedup) })
			}
		})
	}
}

func benchAppend(b *testing.B, driver string, dedup bool) {
	entries := benchEntries(b.N)
	ctx, cancel := context.WithTimeout(context.Background(), benchRunTimeLimit)
	defer cancel()
	l, err := openBenchLog(ctx, driver, dedup, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchEntrySize)
	b.ResetTimer()
	start := time.Now()
	if err := appendAll(ctx, l.add, entries); err != nil {
		b.Fatal(err)
	}
	if err := waitIntegrated(ctx, l.reader, uint64(len(entries))); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(len(entries))/elapsed.Seconds(), "entries/s")
	if err := l.close(ctx); err != nil {
		b.Fatal(err)
	}
}

// benchEntries returns n distinct, incompressible entries; the fixed seed
// gives every driver the same stream.
func benchEntries(n int) [][]byte {
	buf := make([]byte, n*benchEntrySize)
	rng := mrand.NewChaCha8([32]byte{'q', 'u', 'i', 'r', 'e'})
	_, _ = rng.Read(buf)
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = buf[i*benchEntrySize : (i+1)*benchEntrySize : (i+1)*benchEntrySize]
	}
	return entries
}

// benchLog is an appender on one of the two drivers under comparison.
type benchLog struct {
	add    tessera.AddFn
	reader tessera.LogReader
	close  func(context.Context) error
}

func openBenchLog(ctx context.Context, driver string, dedup bool, dir string) (*benchLog, error) {
	skey, _, err := note.GenerateKey(rand.Reader, "bench.quire.test/log")
	if err != nil {
		return nil, fmt.Errorf("generating log key: %w", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("loading signer: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(benchBatchSize, benchBatchAge).
		WithCheckpointInterval(benchCheckpoint)

	var drv tessera.Driver
	closeDriver := func() error { return nil }
	switch driver {
	case "pebble":
		drv, err = pebble.New(ctx, pebble.Config{Path: filepath.Join(dir, "log"), DisableDedup: !dedup})
		if err != nil {
			return nil, fmt.Errorf("opening pebble driver: %w", err)
		}
		closeDriver = drv.(*pebble.Storage).Close
	case "posix":
		drv, err = posix.New(ctx, posix.Config{Path: filepath.Join(dir, "log")})
		if err != nil {
			return nil, fmt.Errorf("opening posix driver: %w", err)
		}
		if dedup {
			// The badger store has no Close; it lives until the process
			// ends, which only costs the benchmark binary some memory.
			as, err := posixantispam.NewAntispam(ctx, filepath.Join(dir, "antispam"), posixantispam.AntispamOpts{})
			if err != nil {
				return nil, fmt.Errorf("opening badger antispam: %w", err)
			}
			opts = opts.WithAntispam(tessera.DefaultAntispamInMemorySize, as)
		}
	default:
		return nil, fmt.Errorf("unknown driver %q", driver)
	}
	appCtx, appCancel := context.WithCancel(ctx)
	appender, shutdown, reader, err := tessera.NewAppender(appCtx, drv, opts)
	if err != nil {
		appCancel()
		return nil, errors.Join(fmt.Errorf("creating %s appender: %w", driver, err), closeDriver())
	}
	return &benchLog{
		add:    appender.Add,
		reader: reader,
		close: func(ctx context.Context) error {
			err := shutdown(ctx)
			appCancel()
			return errors.Join(err, closeDriver())
		},
	}, nil
}

// appendAll adds every entry from benchWorkers goroutines, each waiting for its
// entry's index before taking the next, and retrying on pushback as a client
// would. Every entry is distinct, so a duplicate answer is a failure.
func appendAll(ctx context.Context, add tessera.AddFn, entries [][]byte) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range min(benchWorkers, len(entries)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(entries)); i = next.Add(1) - 1 {
				idx, err := addWithRetry(ctx, add, entries[i])
				if err == nil && idx.IsDup {
					err = fmt.Errorf("distinct entry %d reported as a duplicate of index %d", i, idx.Index)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func addWithRetry(ctx context.Context, add tessera.AddFn, e []byte) (tessera.Index, error) {
	for {
		idx, err := add(ctx, tessera.NewEntry(e))()
		if !errors.Is(err, tessera.ErrPushback) {
			return idx, err
		}
		select {
		case <-ctx.Done():
			return idx, fmt.Errorf("still pushed back when the run's time ran out: %w", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitIntegrated returns once the tree holds size entries, so a driver that
// resolves futures before integrating is charged for the integration too.
func waitIntegrated(ctx context.Context, r tessera.LogReader, size uint64) error {
	for {
		got, err := r.IntegratedSize(ctx)
		if err != nil {
			return fmt.Errorf("reading integrated size: %w", err)
		}
		if got >= size {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("integrated size %d of %d when the run's time ran out: %w", got, size, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}
