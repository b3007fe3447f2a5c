// Package loadgen drives a Rekor v2 compatible log with really signed hashedrekord writes and
// measures what it absorbs: entries/s (201 answers), errors by status, and latency percentiles.
//
// Two shapes of load:
//   - closed loop (Rate == 0): Workers goroutines each send a request, wait for the answer, send
//     the next; throughput is what the log sustains at that concurrency.
//   - open loop (Rate > 0): arrivals on a fixed schedule of Rate per second, at most Workers in
//     flight. Latency is measured from each request's scheduled time, not from when a free worker
//     sent it, so a stalling server is charged for the queue it causes (no coordinated omission).
//
// Requests are signed before the clock starts (a pool sized from Rate×Duration, or from PoolSize),
// so the generator spends its CPU on HTTP, not on ECDSA, while the log is measured. If the pool runs
// dry, background signers top it up and the report says how many were signed during the run.
// Every request goes through one http.Transport with an idle pool as large as Workers; several
// front ends of one log (a comma-separated URL) get the requests in turn.
//
// The wire format is the client package's (rekor-tiles v2.3 CreateEntry over REST).
package loadgen

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quirelog/quire/api/client"
)

// Defaults for Config fields left zero.
const (
	DefaultWorkers        = 64
	DefaultDuration       = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	// DefaultClosedLoopRate is the throughput assumed when sizing the pool for a closed-loop run:
	// above what a 2-core machine's log can verify (about 12,400 ECDSA P-256 verifications/s).
	DefaultClosedLoopRate = 15000
	// MaxRate bounds the open-loop arrival rate (one arrival per microsecond).
	MaxRate = 1_000_000
	// MaxPoolSize bounds the pre-signed pool (about 400 bytes per request).
	MaxPoolSize = 2_000_000
	// drainTimeout bounds how long requests in flight at the end of the run may take to finish.
	drainTimeout = 15 * time.Second
)

// Config describes one run.
type Config struct {
	// URL is the log's base URL (http://127.0.0.1:3000), or the base URLs of several front ends
	// of one log separated by commas, which get the requests in turn.
	URL string
	// Workers is the number of concurrent requests (closed loop) or the most in flight (open loop).
	Workers int
	// Duration is how long requests are sent.
	Duration time.Duration
	// Rate, when positive, makes the run open loop at Rate arrivals per second.
	Rate float64
	// DupFraction is the share of requests (0 to 1) that resend an earlier request, which the log
	// should answer with 409 and the first copy's index.
	DupFraction float64
	// KeyType is the signing key; default ECDSA P-256.
	KeyType client.KeyType
	// Keys is how many distinct signing keys the requests are spread over; default 1.
	Keys int
	// PoolSize is how many requests to sign before the clock starts; 0 sizes it from the rate.
	PoolSize int
	// RequestTimeout bounds each request.
	RequestTimeout time.Duration
	// HTTPClient overrides the client built for the run (tests, TLS settings).
	HTTPClient *http.Client
	// OnResult, when set, is called from the worker goroutines after each answer.
	OnResult func(Result)
}

// Result is one request's outcome, for OnResult.
type Result struct {
	// Request is the JSON body that was sent.
	Request []byte
	// Status is the HTTP status, 0 for a transport failure.
	Status int
	// Body is the 201 answer (a TransparencyLogEntry in protojson); nil otherwise.
	Body []byte
	// Err is the error for anything but 201.
	Err error
	// Latency is from the scheduled send time to the end of the answer.
	Latency time.Duration
	// Duplicate is true when the request deliberately repeated an earlier one.
	Duplicate bool
}

// ErrInvalidConfig is wrapped by Run's error for a Config it cannot run with, so that a caller can
// tell a wrong request from a failed run.
var ErrInvalidConfig = errors.New("invalid load generator config")

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("missing log URL")
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.KeyType == "" {
		c.KeyType = client.KeyECDSAP256
	}
	if c.Keys == 0 {
		c.Keys = 1
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case c.Workers < 0:
		return fmt.Errorf("workers %d: must be positive", c.Workers)
	case c.Duration < 0:
		return fmt.Errorf("duration %s: must be positive", c.Duration)
	case c.Rate < 0 || c.Rate > MaxRate || math.IsNaN(c.Rate):
		return fmt.Errorf("rate %v: must be between 0 and %d requests per second", c.Rate, MaxRate)
	case c.DupFraction < 0 || c.DupFraction >= 1 || math.IsNaN(c.DupFraction):
		return fmt.Errorf("dup fraction %v: must be in [0, 1)", c.DupFraction)
	case c.Keys < 0:
		return fmt.Errorf("keys %d: must be positive", c.Keys)
	case c.PoolSize < 0 || c.PoolSize > MaxPoolSize:
		return fmt.Errorf("pool size %d: must be in [0, %d]", c.PoolSize, MaxPoolSize)
	}
	if c.PoolSize == 0 {
		rate := c.Rate
		if rate == 0 {
			rate = DefaultClosedLoopRate
		}
		n := rate*c.Duration.Seconds()*(1-c.DupFraction)*1.1 + float64(c.Workers)
		c.PoolSize = int(math.Min(n, MaxPoolSize))
	}
	return nil
}

// NewTransport is the one transport of a run: keep-alive connections, as many idle per host as
// there are workers so none is closed and redialled between requests.
func NewTransport(workers int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        workers + 16,
		MaxIdleConnsPerHost: workers + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// Run sends load as cfg says until cfg.Duration has passed or ctx ends, and reports.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := NewTransport(cfg.Workers)
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	var clients []*client.Client
	for _, u := range strings.Split(cfg.URL, ",") {
		c, err := client.New(strings.TrimSpace(u), client.WithHTTPClient(hc), client.WithUserAgent("quirectl-bench"))
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	gen, err := NewGenerator(cfg.KeyType, cfg.Keys)
	if err != nil {
		return nil, err
	}
	src, err := newSource(ctx, gen, cfg.PoolSize, cfg.DupFraction)
	if err != nil {
		return nil, err
	}
	defer src.stop()

	r := &run{cfg: cfg, clients: clients, src: src, errs: map[string]int64{}}
	cpu0, cpuOK := processCPU()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	runCtx, cancel := context.WithDeadline(ctx, deadline.Add(drainTimeout))
	defer cancel()
	if cfg.Rate > 0 {
		r.openLoop(runCtx, start, deadline)
	} else {
		r.closedLoop(runCtx, deadline)
	}
	elapsed := time.Since(start)
	rep := r.report(elapsed)
	if cpu1, ok := processCPU(); ok && cpuOK {
		rep.ClientCPUSeconds = (cpu1 - cpu0).Seconds()
		if rep.Sent > 0 {
			rep.ClientCPUPerRequestMicros = rep.ClientCPUSeconds * 1e6 / float64(rep.Sent)
		}
	}
	return rep, nil
}

// run is the state shared by the workers of one Run.
type run struct {
	cfg     Config
	clients []*client.Client
	next    atomic.Uint64 // which client sends the next request
	src     *source

	mu         sync.Mutex
	latencies  []time.Duration // of 201s, all workers; appended in per-worker chunks
	errs       map[string]int64
	created    int64 // 201s completed before the deadline
	createdAll int64
	dupsSent   int64
	sent       int64
	unsent     int64 // open loop: scheduled arrivals never sent because Workers were all busy
	maxBehind  time.Duration
}

// workerStats is one worker's tally, merged into run once at the end so that workers do not
// contend on a lock per request.
type workerStats struct {
	latencies  []time.Duration
	errs       map[string]int64
	created    int64
	createdAll int64
	dupsSent   int64
	sent       int64
}

func newWorkerStats() *workerStats {
	return &workerStats{latencies: make([]time.Duration, 0, 256), errs: map[string]int64{}}
}

func (r *run) merge(ws *workerStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latencies = append(r.latencies, ws.latencies...)
	for k, v := range ws.errs {
		r.errs[k] += v
	}
	r.created += ws.created
	r.createdAll += ws.createdAll
	r.dupsSent += ws.dupsSent
	r.sent += ws.sent
}

// do sends one request scheduled at sched and tallies its outcome.
func (r *run) do(ctx context.Context, ws *workerStats, sched, deadline time.Time) {
	body, dup, err := r.src.next(ctx)
	if err != nil {
		ws.errs["generator"]++
		return
	}
	reqCtx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	c := r.clients[r.next.Add(1)%uint64(len(r.clients))]
	raw, err := c.PostEntry(reqCtx, body)
	cancel()
	done := time.Now()
	lat := done.Sub(sched)
	ws.sent++
	if dup {
		ws.dupsSent++
	}
	status := http.StatusCreated
	if err != nil {
		status = 0
		var ae *client.APIError
		if errors.As(err, &ae) {
			status = ae.StatusCode
		}
		ws.errs[errorClass(status, err)]++
	} else {
		ws.createdAll++
		if !done.After(deadline) {
			ws.created++
		}
		ws.latencies = append(ws.latencies, lat)
		if !dup {
			r.src.markCreated(body)
		}
	}
	if r.cfg.OnResult != nil {
		r.cfg.OnResult(Result{Request: body, Status: status, Body: raw, Err: err, Latency: lat, Duplicate: dup})
	}
}

// errorClass names an error for the report: the HTTP status, or "timeout" / "transport".
func errorClass(status int, err error) string {
	if status != 0 {
		return strconv.Itoa(status)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "transport"
}

func (r *run) closedLoop(ctx context.Context, deadline time.Time) {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			ws := newWorkerStats()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				r.do(ctx, ws, time.Now(), deadline)
			}
			r.merge(ws)
		})
	}
	wg.Wait()
}

// openLoop schedules arrival i at start + i/Rate. A dispatcher wakes about every millisecond and
// hands every arrival that is due to an idle worker; when none is idle the arrival waits in the
// queue, and its latency (counted from its scheduled time) includes that wait.
func (r *run) openLoop(ctx context.Context, start, deadline time.Time) {
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	total := int64(r.cfg.Duration / interval)
	queue := make(chan time.Time, r.cfg.Workers)
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			ws := newWorkerStats()
			for sched := range queue {
				r.do(ctx, ws, sched, deadline)
			}
			r.merge(ws)
		})
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	var i int64
dispatch:
	for i < total && ctx.Err() == nil {
		now := time.Now()
		for ; i < total; i++ {
			sched := start.Add(time.Duration(i) * interval)
			if sched.After(now) || !sched.Before(deadline) {
				break
			}
			if behind := now.Sub(sched); behind > r.maxBehind {
				r.maxBehind = behind
			}
			select {
			case queue <- sched:
			case <-ctx.Done():
				break dispatch
			case <-end.C:
				break dispatch
			}
		}
		if !now.Before(deadline) {
			break
		}
		select {
		case <-tick.C:
		case <-end.C:
			// Go round once more: that pass sends the arrivals that fell due just before the
			// deadline, then stops.
		case <-ctx.Done():
			break dispatch
		}
	}
	r.unsent = total - i
	close(queue)
	wg.Wait()
}

// source hands out request bodies: fresh ones from the pre-signed pool (topped up by background
// signers if it runs dry) and, with probability dupFraction, one that already got a 201.
type source struct {
	pool        chan []byte
	signedLive  atomic.Int64
	dupFraction float64
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	prepTime    time.Duration
	prepCount   int

	mu      sync.Mutex
	created [][]byte // bodies that got a 201, candidates for duplicates
}

// maxDupCandidates bounds the memory kept for choosing duplicates.
const maxDupCandidates = 1 << 16

func newSource(ctx context.Context, gen *Generator, poolSize int, dupFraction float64) (*source, error) {
	t0 := time.Now()
	bodies, err := gen.SignMany(ctx, poolSize, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	s := &source{
		pool:        make(chan []byte, len(bodies)),
		dupFraction: dupFraction,
		prepTime:    time.Since(t0),
		prepCount:   len(bodies),
	}
	for _, b := range bodies {
		s.pool <- b
	}
	liveCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	// Background signers only run once the pool is empty; they then feed it one body at a time.
	for range runtime.GOMAXPROCS(0) {
		s.wg.Go(func() {
			for liveCtx.Err() == nil {
				if len(s.pool) > 0 {
					select {
					case <-liveCtx.Done():
						return
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				b, err := gen.Sign()
				if err != nil {
					return
				}
				select {
				case s.pool <- b:
					s.signedLive.Add(1)
				case <-liveCtx.Done():
					return
				}
			}
		})
	}
	return s, nil
}

func (s *source) stop() {
	s.cancel()
	s.wg.Wait()
}

func (s *source) next(ctx context.Context) ([]byte, bool, error) {
	if s.dupFraction > 0 && mrand.Float64() < s.dupFraction {
		s.mu.Lock()
		n := len(s.created)
		var b []byte
		if n > 0 {
			b = s.created[mrand.IntN(n)]
		}
		s.mu.Unlock()
		if b != nil {
			return b, true, nil
		}
	}
	select {
	case b := <-s.pool:
		return b, false, nil
	case <-ctx.Done():
		return nil, false, fmt.Errorf("waiting for a signed request: %w", ctx.Err())
	}
}

func (s *source) markCreated(body []byte) {
	if s.dupFraction == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.created) < maxDupCandidates {
		s.created = append(s.created, body)
	} else {
		s.created[mrand.IntN(len(s.created))] = body
	}
}

// Generator signs distinct hashedrekord requests: each has a fresh random artifact digest.
type Generator struct {
	signers []crypto.Signer
	alg     client.Algorithm
	next    atomic.Uint64
}

// NewGenerator makes keys signing keys of type kt.
func NewGenerator(kt client.KeyType, keys int) (*Generator, error) {
	if keys < 1 {
		return nil, fmt.Errorf("need at least one key, got %d", keys)
	}
	g := &Generator{}
	for range keys {
		s, err := client.GenerateKey(kt)
		if err != nil {
			return nil, err
		}
		g.signers = append(g.signers, s)
	}
	alg, err := client.AlgorithmFor(g.signers[0].Public())
	if err != nil {
		return nil, err
	}
	g.alg = alg
	return g, nil
}

// Sign returns the JSON body of one new, really signed request.
func (g *Generator) Sign() ([]byte, error) {
	digest := make([]byte, g.alg.Hash.Size())
	if _, err := rand.Read(digest); err != nil {
		return nil, fmt.Errorf("drawing a random digest: %w", err)
	}
	signer := g.signers[g.next.Add(1)%uint64(len(g.signers))]
	req, err := client.NewHashedRekordRequest(signer, digest)
	if err != nil {
		return nil, err
	}
	return client.MarshalCreateEntryRequest(req)
}

// SignMany signs n requests on the given number of goroutines.
func (g *Generator) SignMany(ctx context.Context, n, parallel int) ([][]byte, error) {
	if parallel < 1 {
		parallel = 1
	}
	out := make([][]byte, n)
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		errOnce sync.Once
		first   error
	)
	for range parallel {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				b, err := g.Sign()
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				out[i] = b
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("signing request pool: %w", first)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("signing request pool: %w", err)
	}
	return out, nil
}

func (r *run) report(elapsed time.Duration) *Report {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	mode := "closed"
	if r.cfg.Rate > 0 {
		mode = "open"
	}
	rep := &Report{
		URL:                 r.cfg.URL,
		Mode:                mode,
		Workers:             r.cfg.Workers,
		OfferedRate:         r.cfg.Rate,
		KeyType:             string(r.cfg.KeyType),
		DupFraction:         r.cfg.DupFraction,
		DurationSeconds:     r.cfg.Duration.Seconds(),
		ElapsedSeconds:      elapsed.Seconds(),
		Sent:                r.sent,
		DuplicatesSent:      r.dupsSent,
		Created:             r.created,
		CreatedAfterEnd:     r.createdAll - r.created,
		Unsent:              r.unsent,
		Errors:              r.errs,
		PoolSigned:          r.src.prepCount,
		SignedDuringRun:     r.src.signedLive.Load(),
		MaxDispatchBehindMs: ms(r.maxBehind),
	}
	// An interrupted run (ctx cancelled) is rated over the time it actually ran.
	if window := min(elapsed, r.cfg.Duration); window > 0 {
		rep.EntriesPerSecond = float64(r.created) / window.Seconds()
	}
	if r.src.prepTime > 0 {
		rep.SignPerSecond = float64(r.src.prepCount) / r.src.prepTime.Seconds()
	}
	rep.Latency = summarize(r.latencies)
	return rep
}
