// Command benchgrow is the helper of scripts/bench-scale and scripts/bench-read: it grows a Quire
// log in-process, through Tessera's appender on Quire's Pebble driver, in the data directory
// layout `quire serve --data-dir` uses, so the server can then open it.
//
//	benchgrow grow -data-dir D -entries N [-entry random|signed] [-size 490] [-step 1000000]
//	                                  [-first-step 100000] [-lookups 20000] [-dedup-filter-bytes B]
//	                                  [-cpuprofile FILE [-cpuprofile-from N]]
//	benchgrow ready -url URL -since UNIXNANO [-timeout 5m]
//	benchgrow idle -pid P [-below 0.05] [-window 2s] [-timeout 10m]
//	benchgrow rss -pid P
//
// grow appends entries until the log holds N (resuming a log that holds fewer), with deduplication
// on as `quire serve` runs, signing checkpoints with D/log.key, and prints one line per step: the
// write rate over that step, the CPU the process spent per entry (making entries included), and
// the process's RSS at its end. Then it measures the lookup deduplication makes for each new
// entry (pebble.Storage.DedupIndices): -lookups lookups of absent identities and, for random
// entries, of present ones, in batches as a commit makes them, and prints µs per lookup.
// -dedup-filter-bytes sets the dedup filter's cap as `quire serve --dedup-filter-bytes` does, so a
// 10M log can be grown or resumed past the cap without growing it to the default cap's 27M.
//
// Entries are either "random", deterministic from their index (a label and base64 text, so any
// earlier one can be rebuilt for a lookup), or "signed": hashedrekord v0.0.2 canonical bodies of
// random digests really signed with ECDSA P-256 keys, as the log writes for Rekor v2 requests.
//
// ready polls URL every 5 ms until it answers 200 and prints the seconds since -since (a process
// start, say, from date +%s%N); idle waits until process P has used less than -below of a core
// over a -window (the search index follower catching up after a start, for example); rss prints
// P's resident and peak resident memory in MiB.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/storage/pebble"
)

// The batching quire serve uses by default; the checkpoint interval is longer, since nobody
// waits for checkpoints here.
const (
	workers    = 1024
	batchSize  = 1024
	batchAge   = 50 * time.Millisecond
	checkpoint = 500 * time.Millisecond
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchgrow: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchgrow grow|idle|rss ...")
	}
	rest := args[1:]
	switch args[0] {
	case "grow":
		fs := flag.NewFlagSet("grow", flag.ContinueOnError)
		var c growConfig
		fs.StringVar(&c.dataDir, "data-dir", "", "quire data directory: the log is in DIR/log, signed with DIR/log.key")
		fs.Uint64Var(&c.entries, "entries", 0, "grow the log to this many entries")
		fs.StringVar(&c.kind, "entry", "random", "random or signed")
		fs.IntVar(&c.size, "size", 490, "bytes per random entry")
		fs.Uint64Var(&c.step, "step", 1_000_000, "entries per reported step")
		fs.Uint64Var(&c.firstStep, "first-step", 100_000, "entries in the first reported step (0: -step)")
		fs.IntVar(&c.lookups, "lookups", 20_000, "dedup lookups to time after growing (0: none)")
		fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the growth to `FILE`")
		fs.Uint64Var(&c.profileFrom, "cpuprofile-from", 0, "start the CPU profile at the first step boundary at or past this size, so that it covers a steady stretch without a resumed log's start-up")
		fs.BoolVar(&c.lsm, "lsm", false, "print Pebble's LSM metrics of the log at the end")
		fs.Int64Var(&c.filterBytes, "dedup-filter-bytes", 0, "cap of the in-memory dedup filter (0: the driver's default)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return grow(c, stdout)
	case "ready":
		fs := flag.NewFlagSet("ready", flag.ContinueOnError)
		u := fs.String("url", "", "URL that answers 200 once the server serves")
		since := fs.Int64("since", 0, "start time, Unix nanoseconds")
		timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return ready(*u, *since, *timeout, stdout)
	case "idle":
		fs := flag.NewFlagSet("idle", flag.ContinueOnError)
		pid := fs.Int("pid", 0, "process to watch")
		below := fs.Float64("below", 0.05, "share of one core under which the process counts as idle")
		window := fs.Duration("window", 2*time.Second, "how long it must stay under it")
		timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return idle(*pid, *below, *window, *timeout, stdout)
	case "rss":
		fs := flag.NewFlagSet("rss", flag.ContinueOnError)
		pid := fs.Int("pid", 0, "process to read")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rss, peak, err := memory(*pid)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%.0f %.0f\n", rss, peak)
		return nil
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}

type growConfig struct {
	dataDir         string
	entries         uint64
	kind            string
	size            int
	step, firstStep uint64
	lookups         int
	lsm             bool
	filterBytes     int64
	cpuProfile      string
	profileFrom     uint64
}

// profiler writes a CPU profile of the growth from the first step boundary at or past from.
type profiler struct {
	path string
	from uint64
	f    *os.File
}

// startAt starts the profile if it is wanted, not yet started, and boundary has reached from.
func (p *profiler) startAt(boundary uint64) error {
	if p.path == "" || p.f != nil || boundary < p.from {
		return nil
	}
	f, err := os.Create(p.path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return errors.Join(err, f.Close())
	}
	p.f = f
	return nil
}

func (p *profiler) stop() error {
	if p.f == nil {
		return nil
	}
	pprof.StopCPUProfile()
	return p.f.Close()
}

func grow(c growConfig, stdout io.Writer) error {
	switch {
	case c.dataDir == "" || c.entries == 0:
		return errors.New("grow: -data-dir and a positive -entries are required")
	case c.kind != "random" && c.kind != "signed":
		return fmt.Errorf("grow: -entry %q: want random or signed", c.kind)
	case c.kind == "random" && c.size < 64:
		return fmt.Errorf("grow: -size %d: want at least 64", c.size)
	case c.step == 0:
		return errors.New("grow: -step must be positive")
	}
	if c.firstStep == 0 {
		c.firstStep = c.step
	}
	ctx := context.Background()
	skey, err := os.ReadFile(filepath.Join(c.dataDir, "log.key"))
	if err != nil {
		return fmt.Errorf("grow: reading the log key (make it with quire keygen --out DIR): %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return fmt.Errorf("grow: loading the log key: %w", err)
	}
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(c.dataDir, "log"), DedupFilterBytes: c.filterBytes})
	if err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	storage := drv.(*pebble.Storage)
	appCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	appender, shutdown, reader, err := tessera.NewAppender(appCtx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(batchSize, batchAge).
		WithCheckpointInterval(checkpoint))
	if err != nil {
		return errors.Join(fmt.Errorf("grow: starting the appender: %w", err), storage.Close())
	}
	closeLog := func() error {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Minute)
		defer scancel()
		return errors.Join(shutdown(sctx), storage.Close())
	}
	start, err := reader.IntegratedSize(ctx)
	if err != nil {
		return errors.Join(err, closeLog())
	}
	var newEntry func(i uint64) ([]byte, error)
	if c.kind == "random" {
		newEntry = func(i uint64) ([]byte, error) { return randomEntry(i, c.size), nil }
	} else if newEntry, err = signedEntries(); err != nil {
		return errors.Join(err, closeLog())
	}
	fmt.Fprintf(stdout, "growing %s from %d to %d %s entries (dedup on, batches of %d, %d writers)\n", c.dataDir, start, c.entries, c.kind, batchSize, workers)
	fmt.Fprintf(stdout, "%12s %12s %12s %10s %14s %9s\n", "from", "to", "entries/s", "seconds", "CPU µs/entry", "RSS MiB")
	prof := &profiler{path: c.cpuProfile, from: c.profileFrom}
	growErr := errors.Join(appendUntil(ctx, appender.Add, reader, start, c, newEntry, prof, stdout), prof.stop())
	if growErr == nil && c.lookups > 0 {
		growErr = timeLookups(ctx, storage, c, start, stdout)
	}
	if growErr == nil && c.lsm {
		// Read from the open database: one reopened later has no compaction or cache history.
		fmt.Fprintf(stdout, "Pebble metrics of %s after this growth:\n%s\n", c.dataDir, storage.LSM())
	}
	return errors.Join(growErr, closeLog())
}

// appendUntil adds entries [start, c.entries) from many goroutines, each waiting for its entry's
// index before adding the next, and prints a line at every step boundary the integrated size
// crosses.
func appendUntil(ctx context.Context, add tessera.AddFn, reader tessera.LogReader, start uint64, c growConfig, newEntry func(uint64) ([]byte, error), prof *profiler, stdout io.Writer) error {
	if start >= c.entries {
		return nil
	}
	if err := prof.startAt(start); err != nil {
		return err
	}
	var next atomic.Uint64
	next.Store(start)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	done := make(chan struct{})
	for range min(workers, c.entries-start) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < c.entries; i = next.Add(1) - 1 {
				e, err := newEntry(i)
				if err == nil {
					err = addOne(ctx, add, e)
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("adding entry %d: %w", i, err) })
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	from, fromTime, fromCPU := start, time.Now(), selfCPU()
	boundary := nextBoundary(start, c)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
		case <-tick.C:
		}
		size, err := reader.IntegratedSize(ctx)
		if err != nil {
			return err
		}
		for from < c.entries && size >= boundary {
			now, cpu := time.Now(), selfCPU()
			secs := now.Sub(fromTime).Seconds()
			rss, _, _ := memory(os.Getpid())
			n := float64(boundary - from)
			fmt.Fprintf(stdout, "%12d %12d %12.0f %10.2f %14.1f %9.0f\n", from, boundary, n/secs, secs, (cpu-fromCPU).Seconds()*1e6/n, rss)
			if err := prof.startAt(boundary); err != nil {
				return err
			}
			from, fromTime, fromCPU = boundary, now, cpu
			boundary = nextBoundary(boundary, c)
		}
		select {
		case <-done:
			if firstErr != nil {
				return firstErr
			}
			if size < c.entries {
				return fmt.Errorf("all entries added but the integrated size is %d, want %d", size, c.entries)
			}
			return nil
		default:
		}
	}
}

// nextBoundary is the first step boundary above size: multiples of c.firstStep up to c.step,
// then multiples of c.step, and c.entries at the end.
func nextBoundary(size uint64, c growConfig) uint64 {
	step := c.step
	if size < c.step {
		step = c.firstStep
	}
	return min((size/step+1)*step, c.entries)
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
		time.Sleep(5 * time.Millisecond)
	}
}

// randomEntry is entry i of a random log: a label with its index, then base64 text from a
// generator seeded by i, size bytes in all.
func randomEntry(i uint64, size int) []byte {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], i)
	e := fmt.Appendf(make([]byte, 0, size), "bench entry %d ", i)
	raw := make([]byte, base64.StdEncoding.DecodedLen(size-len(e))+3)
	_, _ = mrand.NewChaCha8(seed).Read(raw)
	e = base64.StdEncoding.AppendEncode(e, raw)
	return e[:size]
}

// signedEntries returns a maker of hashedrekord v0.0.2 canonical bodies for random digests, each
// signed by one of a few ECDSA P-256 keys.
func signedEntries() (func(uint64) ([]byte, error), error) {
	type key struct {
		signer crypto.Signer
		der    []byte
	}
	keys := make([]key, 16)
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			return nil, err
		}
		keys[i] = key{k, der}
	}
	return func(i uint64) ([]byte, error) {
		digest := make([]byte, sha256.Size)
		if _, err := rand.Read(digest); err != nil {
			return nil, err
		}
		k := keys[i%uint64(len(keys))]
		sig, err := client.SignDigest(k.signer, digest)
		if err != nil {
			return nil, err
		}
		return rekor.HashedRekordBody(digest, commonv1.HashAlgorithm_SHA2_256, &rekorpb.Signature{
			Content: sig,
			Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: k.der}},
				KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			},
		})
	}, nil
}

// timeLookups times c.lookups dedup lookups of absent identities and, for a random log, of
// present ones, in batches of 1,024 as the sequencer makes them for a commit, and prints µs per
// lookup.
func timeLookups(ctx context.Context, s *pebble.Storage, c growConfig, start uint64, stdout io.Writer) error {
	rng := mrand.New(mrand.NewPCG(1, 2))
	absent := make([][]byte, c.lookups)
	for i := range absent {
		id := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("absent"), rng.Uint64()))
		absent[i] = id[:]
	}
	measure := func(ids [][]byte, want bool) (float64, error) {
		t0 := time.Now()
		for lo := 0; lo < len(ids); lo += batchSize {
			batch := ids[lo:min(lo+batchSize, len(ids))]
			got, err := s.DedupIndices(ctx, batch)
			if err != nil {
				return 0, err
			}
			for i, idx := range got {
				if (idx >= 0) != want {
					return 0, fmt.Errorf("dedup lookup of %x: index %d, want found=%v", batch[i], idx, want)
				}
			}
		}
		return float64(time.Since(t0).Microseconds()) / float64(len(ids)), nil
	}
	miss, err := measure(absent, false)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("dedup lookups at %d entries: %.1f µs per absent identity", c.entries, miss)
	// Present identities are drawn from the entries this run appended: earlier ones may be another
	// writer's (bench-scale writes signed entries over HTTP between runs).
	if c.kind == "random" && c.entries > start {
		present := make([][]byte, c.lookups)
		for i := range present {
			id := sha256.Sum256(randomEntry(start+rng.Uint64N(c.entries-start), c.size))
			present[i] = id[:]
		}
		hit, err := measure(present, true)
		if err != nil {
			return err
		}
		line += fmt.Sprintf(", %.1f µs per present one", hit)
	}
	fmt.Fprintf(stdout, "%s (%d of each, in batches of %d)\n", line, c.lookups, batchSize)
	return nil
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ready polls u until it answers 200 and prints the seconds since the Unix nanosecond time since.
func ready(u string, since int64, timeout time.Duration, stdout io.Writer) error {
	if u == "" || since == 0 {
		return errors.New("ready: -url and -since are required")
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(stdout, "%.3f\n", time.Since(time.Unix(0, since)).Seconds())
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("ready: %s did not answer 200 within %s", u, timeout)
}

// idle waits until pid has used less than below of a core over window.
func idle(pid int, below float64, window, timeout time.Duration, stdout io.Writer) error {
	if pid <= 0 {
		return errors.New("idle: -pid is required")
	}
	t0 := time.Now()
	for time.Since(t0) < timeout {
		a, err := cpuTime(pid)
		if err != nil {
			return err
		}
		time.Sleep(window)
		b, err := cpuTime(pid)
		if err != nil {
			return err
		}
		if (b - a).Seconds() < below*window.Seconds() {
			fmt.Fprintf(stdout, "%.1f\n", time.Since(t0).Seconds())
			return nil
		}
	}
	return fmt.Errorf("idle: process %d still busy after %s", pid, timeout)
}

// cpuTime is the user and system CPU time of pid, from /proc.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// memory returns pid's resident and peak resident set in MiB, from /proc.
func memory(pid int) (rss, peak float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			rss = kb / 1024
		} else {
			peak = kb / 1024
		}
	}
	return rss, peak, nil
}
