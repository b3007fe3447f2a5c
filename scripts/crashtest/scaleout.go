package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	tclient "github.com/transparency-dev/tessera/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/client"
)

// scaleoutConfig says how to run several `quire serve` front ends on one MySQL database and crash
// one of them.
type scaleoutConfig struct {
	QuireBin string
	// FsckBin is Tessera's cmd/fsck binary (v1.0.4), run against the log at the end.
	FsckBin string
	WorkDir string
	// DSN is the database's go-sql-driver DSN; it reaches the front ends as QUIRE_STORAGE.
	DSN       string
	FrontEnds int
	Writers   int
	// Load is how long writes run before the SIGKILL, and again after it.
	Load time.Duration
	Logf func(format string, args ...any)
}

// scaleoutResult is what the run found.
type scaleoutResult struct {
	FrontEnds    int
	Acknowledged int
	Lost         int
	Inconsistent int
	Checkpoints  int
	TreeSize     uint64
	// Duplicates counts copies of acknowledged entries sent to another front end; DupWrong those
	// not answered 409 with the first copy's index.
	Duplicates, DupWrong int
	// RacedPairs counts entries sent to two front ends at once and answered by both; RacedOnce
	// those logged once (a 201 and a 409 with its index), RacedTwice those both front ends
	// logged (each 201 is a true promise, checked like any other), RacedWrong any other pair.
	RacedPairs, RacedOnce, RacedTwice, RacedWrong int
	// HistoryChecked counts (front end, answered checkpoint) pairs looked up in
	// /quire/v1/checkpoints; HistoryWrong those not served as answered.
	HistoryChecked, HistoryWrong int
	// FsckSize is the size Tessera's fsck command says it checked.
	FsckSize uint64
}

// frontEnd is one `quire serve` process of the scale-out log.
type frontEnd struct {
	name    string
	baseURL string
	args    []string
	logPath string
	proc    *proc
	client  *client.Client
	fetcher *tclient.HTTPFetcher
	down    atomic.Bool
}

// scaleoutTest is one run: front ends, their clients, and a serverTest reading the log through
// front end 0 to hold it to what every client saw.
type scaleoutTest struct {
	cfg   scaleoutConfig
	st    *serverTest
	env   []string
	fes   []*frontEnd
	rng   *mrand.Rand
	mu    sync.Mutex
	res   scaleoutResult
	wrong []string // what each wrong duplicate answer was
	// answered are the checkpoints of 201 answers, by size, to look up in every history.
	answered map[uint64]*seenCheckpoint
}

func runScaleout(ctx context.Context, cfg scaleoutConfig) (*scaleoutResult, error) {
	if cfg.FrontEnds < 2 || cfg.DSN == "" {
		return nil, errors.New("scale-out test: needs a DSN and at least two front ends")
	}
	t := &scaleoutTest{
		cfg: cfg,
		st: &serverTest{
			cfg:     serverConfig{QuireBin: cfg.QuireBin, FsckBin: cfg.FsckBin, WorkDir: cfg.WorkDir, Writers: cfg.Writers, Logf: cfg.Logf},
			ledger:  newLedger(),
			catchUp: 30 * time.Second,
		},
		env:      []string{"QUIRE_STORAGE=mysql://" + cfg.DSN},
		rng:      mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		answered: map[uint64]*seenCheckpoint{},
	}
	t.res.FrontEnds = cfg.FrontEnds
	// serverTest.setup makes the key and the HTTP client; its own server arguments go unused.
	if err := t.st.setup(ctx); err != nil {
		return nil, err
	}
	for i := range cfg.FrontEnds {
		fe, err := t.newFrontEnd(i)
		if err != nil {
			return nil, err
		}
		t.fes = append(t.fes, fe)
	}
	defer func() {
		for _, fe := range t.fes {
			if fe.proc != nil {
				_ = fe.proc.kill()
			}
		}
	}()
	for _, fe := range t.fes {
		if err := t.start(ctx, fe); err != nil {
			return nil, err
		}
	}
	// The checks read the log through front end 0, which stays up.
	t.st.baseURL, t.st.fetcher = t.fes[0].baseURL, t.fes[0].fetcher

	// Drawn before the writers share the generator.
	victim := t.fes[len(t.fes)-1]
	up := cfg.Load/2 + time.Duration(t.rng.Int64N(int64(cfg.Load/2)))
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }()
	for w := range cfg.Writers {
		wg.Go(func() { t.writer(loadCtx, w) })
	}
	for _, fe := range t.fes {
		wg.Go(func() { t.poll(loadCtx, fe) })
	}

	sleep(ctx, up)
	before, _, _, _ := t.st.ledger.counts()
	if before == 0 {
		return nil, fmt.Errorf("no write acknowledged in %s of load; %s log tail:\n%s", up, victim.name, tail(victim.logPath, 4000))
	}
	victim.down.Store(true)
	if err := victim.proc.kill(); err != nil {
		return nil, err
	}
	cfg.Logf("SIGKILLed %s after %s, %d writes acknowledged so far", victim.name, up.Round(time.Millisecond), before)
	sleep(ctx, cfg.Load)
	after, _, _, _ := t.st.ledger.counts()
	if after <= before {
		return nil, fmt.Errorf("no write acknowledged by the other front ends after %s was killed", victim.name)
	}
	// The killed front end comes back on its own data directory and takes writes again.
	if err := t.start(ctx, victim); err != nil {
		return nil, fmt.Errorf("restarting %s: %w", victim.name, err)
	}
	victim.down.Store(false)
	if err := waitFor(ctx, 30*time.Second, func() bool { n, _, _, _ := t.st.ledger.counts(); return n > after }); err != nil {
		return nil, fmt.Errorf("no write acknowledged after %s came back: %w", victim.name, err)
	}
	stopLoad()
	wg.Wait()

	acks, cps := t.st.ledger.snapshot()
	size, err := t.st.check(ctx, acks, cps)
	if err != nil {
		return nil, fmt.Errorf("final check through %s: %w", t.fes[0].name, err)
	}
	// The same promises, read through another front end, against the tree it serves.
	other := *t.st
	other.baseURL, other.fetcher = t.fes[1].baseURL, t.fes[1].fetcher
	if _, err := other.check(ctx, acks, cps); err != nil {
		return nil, fmt.Errorf("final check through %s: %w", t.fes[1].name, err)
	}
	if err := t.checkHistories(ctx); err != nil {
		return nil, err
	}
	if t.res.FsckSize, err = t.fsckCommand(ctx); err != nil {
		return nil, err
	}
	if t.res.FsckSize < size {
		return nil, fmt.Errorf("tessera fsck checked size %d, but the log had %d entries before it ran", t.res.FsckSize, size)
	}
	for _, fe := range t.fes {
		if err := fe.proc.stop(60 * time.Second); err != nil {
			return nil, fmt.Errorf("stopping %s: %w", fe.name, err)
		}
		fe.proc = nil
	}
	for idx, why := range t.st.ledger.lost {
		cfg.Logf("LOST entry %d: %s", idx, why)
	}
	for k, why := range t.st.ledger.inconsistent {
		cfg.Logf("INCONSISTENT checkpoint %s: %s", k, why)
	}
	for _, w := range t.wrong {
		cfg.Logf("WRONG duplicate answer: %s", w)
	}
	t.res.Acknowledged, t.res.Lost, t.res.Inconsistent, t.res.Checkpoints = t.st.ledger.counts()
	t.res.TreeSize = size
	return &t.res, nil
}

func (t *scaleoutTest) newFrontEnd(i int) (*frontEnd, error) {
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	fe := &frontEnd{
		name:    "front end " + strconv.Itoa(i),
		baseURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		logPath: filepath.Join(t.cfg.WorkDir, fmt.Sprintf("quire-%d.log", i)),
	}
	fe.args = []string{"serve",
		"--data-dir", filepath.Join(t.cfg.WorkDir, fmt.Sprintf("fe%d", i)), "--key", t.st.keyPath, "--origin", crashOrigin,
		"--public-url", fe.baseURL,
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "--grpc-listen", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--checkpoint-interval", "1s", "--batch-max-age", "20ms", "--batch-max-size", "256",
	}
	if fe.client, err = client.New(fe.baseURL, client.WithHTTPClient(t.st.hc), client.WithUserAgent("quire-crashtest-scaleout")); err != nil {
		return nil, fmt.Errorf("building client of %s: %w", fe.name, err)
	}
	u, err := url.Parse(fe.baseURL + "/")
	if err != nil {
		return nil, err
	}
	if fe.fetcher, err = tclient.NewHTTPFetcher(u, t.st.hc); err != nil {
		return nil, fmt.Errorf("building tile fetcher of %s: %w", fe.name, err)
	}
	return fe, nil
}

func (t *scaleoutTest) start(ctx context.Context, fe *frontEnd) error {
	p, err := startHealthyEnv(ctx, t.st.hc, t.cfg.QuireBin, fe.args, t.env, fe.logPath, fe.baseURL+"/healthz")
	if err != nil {
		return fmt.Errorf("starting %s: %w", fe.name, err)
	}
	fe.proc = p
	return nil
}

// live returns a front end that is up, starting the search at i.
func (t *scaleoutTest) live(i int) *frontEnd {
	for k := range len(t.fes) {
		if fe := t.fes[(i+k)%len(t.fes)]; !fe.down.Load() {
			return fe
		}
	}
	return t.fes[0]
}

// sentEntry is an acknowledged request a writer may send again elsewhere.
type sentEntry struct {
	request []byte
	index   uint64
	fe      int
}

// writer sends, in turn, a fresh entry to its front end, a fresh entry to two front ends at once,
// and a copy of an acknowledged entry to another front end than the one that logged it.
func (t *scaleoutTest) writer(ctx context.Context, w int) {
	signer, err := client.GenerateKey(client.KeyECDSAP256)
	if err != nil {
		t.cfg.Logf("writer: %v", err)
		return
	}
	home := w % len(t.fes)
	var acked []sentEntry
	for n := 0; ctx.Err() == nil; n++ {
		body, digest, err := freshRequest(signer)
		if err != nil {
			t.cfg.Logf("writer: %v", err)
			return
		}
		switch {
		case n%4 == 3 && len(acked) > 0:
			t.resend(ctx, acked[t.rngIntN(len(acked))])
		case n%8 == 5:
			t.race(ctx, body, digest, home)
		default:
			fe := t.live(home)
			raw, err := fe.client.PostEntry(ctx, body)
			if err != nil {
				if wait, ok := client.RetryAfter(err); ok && wait > 0 {
					sleep(ctx, min(wait, time.Second))
				} else {
					// Down or restarting: the next request goes to the next front end.
					home++
					sleep(ctx, 10*time.Millisecond)
				}
				continue
			}
			t.recordAnswer(raw, digest)
			if idx, ok := indexOf(raw); ok {
				acked = append(acked, sentEntry{request: body, index: idx, fe: home % len(t.fes)})
			}
		}
	}
}

func (t *scaleoutTest) rngIntN(n int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rng.IntN(n)
}

// resend sends an acknowledged entry to another live front end: the answer must be 409 with the
// first copy's index.
func (t *scaleoutTest) resend(ctx context.Context, e sentEntry) {
	fe := t.live(e.fe + 1)
	raw, err := fe.client.PostEntry(ctx, e.request)
	var dup *client.DuplicateError
	var verdict string
	switch {
	case errors.As(err, &dup) && dup.IndexKnown && dup.Index == e.index:
	case errors.As(err, &dup):
		verdict = fmt.Sprintf("%s answered 409 with index %d (known %v), the first copy is at %d", fe.name, dup.Index, dup.IndexKnown, e.index)
	case err == nil:
		idx, _ := indexOf(raw)
		verdict = fmt.Sprintf("%s logged the copy again at %d, the first copy is at %d", fe.name, idx, e.index)
	default:
		// No answer (the front end went down, pushback): nothing was claimed.
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.Duplicates++
	if verdict != "" {
		t.res.DupWrong++
		t.wrong = append(t.wrong, verdict)
	}
}

// race sends one fresh entry to two front ends at the same moment. Tessera's antispam finds a
// copy once its follower has indexed the first, so both may log it; a 409 must still name the
// index the other copy got.
func (t *scaleoutTest) race(ctx context.Context, body, digest []byte, home int) {
	a, b := t.live(home), t.live(home+1)
	if a == b {
		return
	}
	type answer struct {
		raw []byte
		err error
	}
	var ans [2]answer
	var wg sync.WaitGroup
	for i, fe := range []*frontEnd{a, b} {
		wg.Go(func() { ans[i].raw, ans[i].err = fe.client.PostEntry(ctx, body) })
	}
	wg.Wait()
	var created []uint64
	var dups []uint64
	for _, an := range ans {
		var dup *client.DuplicateError
		switch {
		case an.err == nil:
			t.recordAnswer(an.raw, digest)
			if idx, ok := indexOf(an.raw); ok {
				created = append(created, idx)
			}
		case errors.As(an.err, &dup) && dup.IndexKnown:
			dups = append(dups, dup.Index)
		default:
			return
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.RacedPairs++
	switch {
	case len(created) == 2:
		t.res.RacedTwice++
	case len(created) == 1 && len(dups) == 1 && dups[0] == created[0]:
		t.res.RacedOnce++
	default:
		t.res.RacedWrong++
		t.wrong = append(t.wrong, fmt.Sprintf("an entry sent to %s and %s at once: created %v, duplicate of %v", a.name, b.name, created, dups))
	}
}

// recordAnswer checks a 201 as serverTest does and keeps its checkpoint for the history check.
func (t *scaleoutTest) recordAnswer(raw, digest []byte) {
	t.st.recordAnswer(raw, digest)
	tle := &rekorv1.TransparencyLogEntry{}
	if protojson.Unmarshal(raw, tle) != nil {
		return
	}
	cp, err := t.st.parseCheckpoint([]byte(tle.GetInclusionProof().GetCheckpoint().GetEnvelope()), "201")
	if err != nil {
		return
	}
	t.mu.Lock()
	t.answered[cp.size] = cp
	t.mu.Unlock()
}

func indexOf(raw []byte) (uint64, bool) {
	tle, err := client.UnmarshalTransparencyLogEntry(raw)
	if err != nil {
		return 0, false
	}
	return uint64(tle.GetLogIndex()), true
}

// poll records every checkpoint a front end serves at /checkpoint, as a monitor would see them.
func (t *scaleoutTest) poll(ctx context.Context, fe *frontEnd) {
	var last []byte
	for ctx.Err() == nil {
		if !fe.down.Load() {
			raw, err := fe.fetcher.ReadCheckpoint(ctx)
			if err == nil && !bytes.Equal(raw, last) {
				last = raw
				if cp, err := t.st.parseCheckpoint(raw, "poll "+fe.name); err != nil {
					t.st.ledger.markInconsistent("poll:"+string(raw), err.Error())
				} else {
					t.st.ledger.addCheckpoint(cp)
				}
			}
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// checkHistories asks every front end for the checkpoint of each size a write was answered
// with: the front end that answered recorded it before answering, so every front end must serve
// a checkpoint of that size with the same root.
func (t *scaleoutTest) checkHistories(ctx context.Context) error {
	for _, fe := range t.fes {
		for size, want := range t.answered {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/quire/v1/checkpoints?size=%d", fe.baseURL, size), nil)
			if err != nil {
				return err
			}
			resp, err := t.st.hc.Do(req)
			if err != nil {
				return fmt.Errorf("reading the checkpoint of size %d from %s: %w", size, fe.name, err)
			}
			body, err := readAll(resp)
			if err != nil {
				return err
			}
			t.res.HistoryChecked++
			past := &rekorv1.Checkpoint{}
			var got *seenCheckpoint
			if resp.StatusCode == http.StatusOK && protojson.Unmarshal(body, past) == nil {
				got, _ = t.st.parseCheckpoint([]byte(past.GetEnvelope()), "history "+fe.name)
			}
			if got == nil || got.key() != want.key() {
				t.res.HistoryWrong++
				t.wrong = append(t.wrong, fmt.Sprintf("%s: checkpoint of size %d: %d %s", fe.name, size, resp.StatusCode, body))
			}
		}
	}
	return nil
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("reading %s: %w", resp.Request.URL, err)
	}
	return b.Bytes(), nil
}

var fsckSuccess = regexp.MustCompile(`Successfully fsck'd log with size (\d+)`)

// fsckCommand runs Tessera's fsck command against front end 0 and returns the size it says it
// checked. cmd/fsck v1.0.4 exits 0 when the check fails, so only its success line counts.
func (t *scaleoutTest) fsckCommand(ctx context.Context) (uint64, error) {
	if t.cfg.FsckBin == "" {
		return 0, errors.New("no Tessera fsck command given")
	}
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	args := []string{"--storage_url", t.fes[0].baseURL + "/", "--public_key", t.st.pubPath, "--ui=false", "-N", "4"}
	out, err := exec.CommandContext(fctx, t.cfg.FsckBin, args...).CombinedOutput()
	m := fsckSuccess.FindSubmatch(out)
	if err != nil || m == nil {
		return 0, fmt.Errorf("tessera fsck %q did not report success (%v):\n%s", args, err, out)
	}
	n, err := strconv.ParseUint(string(m[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tessera fsck size %q: %w", m[1], err)
	}
	t.cfg.Logf("tessera fsck command: %s", m[0])
	return n, nil
}
