// Command benchstorage writes a log of many fixed-size entries through
// tessera.NewAppender on Quire's Pebble driver or on Tessera's POSIX driver, so
// that scripts/bench-storage can measure the disk each needs per entry. It is a
// measuring tool for that comparison, not part of Quire.
//
// Two modes, run as separate processes so that every store is closed (or, for
// the badger antispam store, which has no Close, abandoned by its process)
// before the next step and before the script measures the directory:
//
//	benchstorage -mode write  -driver pebble -dir D -entries N   (D must not exist)
//	benchstorage -mode settle -driver pebble -dir D -entries N   (reopen, idle, close)
//
// The settle step reopens the log and idles so that background work started by
// opening it (Pebble's WAL replay and compactions, badger's replay) finishes
// before the last measurement.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quirelog/quire/storage/pebble"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	// The package is named badger, not after its folder.
	posixantispam "github.com/transparency-dev/tessera/storage/posix/antispam"
	"golang.org/x/mod/sumdb/note"
)

// The same batching as BenchmarkAppend in storage/pebble.
const (
	workers    = 1024
	batchSize  = 1024
	batchAge   = 50 * time.Millisecond
	checkpoint = 500 * time.Millisecond
)

func main() {
	mode := flag.String("mode", "write", "write: append -entries entries to a new log in -dir; settle: reopen it, idle, close")
	driver := flag.String("driver", "pebble", "pebble or posix")
	dedup := flag.Bool("dedup", true, "pebble: built-in dedup (off = DisableDedup); posix: badger antispam")
	dir := flag.String("dir", "", "directory for the log; its data is under log/ (and antispam/ for posix with dedup)")
	entries := flag.Uint64("entries", 1_000_000, "number of entries to write")
	size := flag.Int("size", 300, "bytes per entry")
	settle := flag.Duration("settle", 10*time.Second, "how long the settle mode idles with the log open")
	limit := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	if *dir == "" || *entries == 0 || *size < 8 {
		fmt.Fprintln(os.Stderr, "benchstorage: -dir, a positive -entries and -size >= 8 are required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	var err error
	switch *mode {
	case "write":
		err = write(ctx, *driver, *dedup, *dir, *entries, *size)
	case "settle":
		err = reopenIdle(ctx, *driver, *dedup, *dir, *entries, *settle)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchstorage:", err)
		os.Exit(1)
	}
}

func write(ctx context.Context, driver string, dedup bool, dir string, n uint64, size int) error {
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("-dir %s must not exist yet, so that only this run's data is measured", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "benchstorage.quire.test/log")
	if err != nil {
		return fmt.Errorf("generating log key: %w", err)
	}
	// The settle step signs with the same key, as a restarted log would; checkers of the log
	// (scripts/bench-verify) read the verifier key.
	if err := os.WriteFile(filepath.Join(dir, "log.key"), []byte(skey), 0o600); err != nil {
		return fmt.Errorf("writing log key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing verifier key: %w", err)
	}
	l, err := open(ctx, driver, dedup, dir)
	if err != nil {
		return err
	}
	start := time.Now()
	addErr := appendN(ctx, l.add, n, size)
	elapsed := time.Since(start)
	var got uint64
	if addErr == nil {
		got, addErr = l.reader.IntegratedSize(ctx)
		if addErr == nil && got != n {
			addErr = fmt.Errorf("integrated size %d after writing %d distinct entries", got, n)
		}
	}
	if err := errors.Join(addErr, l.close(ctx)); err != nil {
		return err
	}
	fmt.Printf("%s dedup=%t: wrote %d entries of %d bytes in %v (%.0f entries/s)\n", driver, dedup, n, size, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return nil
}

func reopenIdle(ctx context.Context, driver string, dedup bool, dir string, n uint64, settle time.Duration) error {
	l, err := open(ctx, driver, dedup, dir)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-time.After(settle):
	}
	got, err := l.reader.IntegratedSize(ctx)
	if err == nil && got != n {
		err = fmt.Errorf("reopened log has size %d, want %d", got, n)
	}
	return errors.Join(err, l.close(ctx))
}

// appendN adds n distinct entries from many goroutines, each waiting for its
// entry's index before the next and retrying on pushback as a client would.
// Entry i is its index followed by random bytes seeded by i: incompressible,
// and the same stream for every driver.
func appendN(ctx context.Context, add tessera.AddFn, n uint64, size int) error {
	var next atomic.Uint64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range min(workers, n) {
		wg.Go(func() {
			e := make([]byte, size)
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				var seed [32]byte
				binary.BigEndian.PutUint64(seed[:], i)
				binary.BigEndian.PutUint64(e, i)
				_, _ = mrand.NewChaCha8(seed).Read(e[8:])
				if err := addOne(ctx, add, e); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("adding entry %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func addOne(ctx context.Context, add tessera.AddFn, e []byte) error {
	for {
		idx, err := add(ctx, tessera.NewEntry(e))()
		if err == nil && idx.IsDup {
			return fmt.Errorf("distinct entry reported as a duplicate of index %d", idx.Index)
		}
		if !errors.Is(err, tessera.ErrPushback) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still pushed back at the time limit: %w", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type benchLog struct {
	add    tessera.AddFn
	reader tessera.LogReader
	close  func(context.Context) error
}

func open(ctx context.Context, driver string, dedup bool, dir string) (*benchLog, error) {
	skey, err := os.ReadFile(filepath.Join(dir, "log.key"))
	if err != nil {
		return nil, fmt.Errorf("reading log key: %w", err)
	}
	signer, err := note.NewSigner(string(skey))
	if err != nil {
		return nil, fmt.Errorf("loading signer: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(batchSize, batchAge).
		WithCheckpointInterval(checkpoint)

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
			as, err := posixantispam.NewAntispam(ctx, filepath.Join(dir, "antispam"), posixantispam.AntispamOpts{})
			if err != nil {
				return nil, fmt.Errorf("opening badger antispam: %w", err)
			}
			opts = opts.WithAntispam(tessera.DefaultAntispamInMemorySize, as)
		}
	default:
		return nil, fmt.Errorf("unknown -driver %q (want pebble or posix)", driver)
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
