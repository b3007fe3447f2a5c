package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// witnessConfig says how hard and how long to crash `quire-witness serve`.
type witnessConfig struct {
	WitnessBin string
	WorkDir    string
	Cycles     int
	MaxUp      time.Duration
	Logf       func(format string, args ...any)
}

type witnessResult struct {
	Cycles       int
	Cosigned     int
	Inconsistent int
	ForkRefused  int
}

const witnessLogOrigin = "crash-witnessed.quire.local"

// cosigned is a checkpoint the witness returned a valid cosignature for.
type cosigned struct {
	size   uint64
	root   []byte
	source string
}

// treeLog is one POSIX Tessera log the test grows: the honest log, or a fork of it signed with
// the same key (what a compromised log would show some witnesses).
type treeLog struct {
	name     string
	dir      string
	appender *tessera.Appender
	shutdown func(context.Context) error
	fetcher  tclient.FileFetcher
}

type witnessTest struct {
	cfg        witnessConfig
	logSigner  note.Signer
	logVerif   note.Verifier
	witVerif   note.Verifier
	witVKey    string
	honest     *treeLog
	fork       *treeLog
	url        string
	args       []string
	logPath    string
	hc         *http.Client
	rng        *mrand.Rand
	mu         sync.Mutex
	cosigs     []cosigned
	problems   []string
	forkRefuse atomic.Int64
}

func runWitnessCrash(ctx context.Context, cfg witnessConfig) (*witnessResult, error) {
	t := &witnessTest{
		cfg:     cfg,
		logPath: filepath.Join(cfg.WorkDir, "witness.log"),
		hc:      &http.Client{Timeout: 10 * time.Second},
		rng:     mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
	}
	if err := t.setup(ctx); err != nil {
		return nil, err
	}
	logCtx, stopLogs := context.WithCancel(ctx)
	defer func() {
		// Tessera's appender goroutines stop on their context, not on shutdown, and finish their
		// last file write asynchronously; wait a little so the caller can delete the directory.
		stopLogs()
		time.Sleep(300 * time.Millisecond)
	}()
	var err error
	if t.honest, err = openTreeLog(logCtx, "honest", filepath.Join(cfg.WorkDir, "log-honest"), t.logSigner); err != nil {
		return nil, err
	}
	if t.fork, err = openTreeLog(logCtx, "fork", filepath.Join(cfg.WorkDir, "log-fork"), t.logSigner); err != nil {
		return nil, err
	}
	defer t.honest.close()
	defer t.fork.close()

	p, err := t.start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.kill() }()

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }()
	wg.Add(4)
	go func() { defer wg.Done(); t.grow(loadCtx) }()
	go func() { defer wg.Done(); t.honestPusher(loadCtx) }()
	go func() { defer wg.Done(); t.honestPusher(loadCtx) }()
	go func() { defer wg.Done(); t.forkPusher(loadCtx) }()

	for cycle := 1; cycle <= cfg.Cycles; cycle++ {
		up := time.Duration(t.rng.Int64N(int64(cfg.MaxUp)))
		sleep(ctx, up)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if p.exited() {
			return nil, fmt.Errorf("cycle %d: quire-witness died on its own (%v); log tail:\n%s", cycle, p.err, tail(t.logPath, 4000))
		}
		if err := p.kill(); err != nil {
			return nil, fmt.Errorf("cycle %d: %w", cycle, err)
		}
		// Every cosignature returned before the kill was promised durable: the restarted witness
		// must remember at least the largest of them.
		promised := t.largestCosigned()
		restartAt := time.Now()
		if p, err = t.start(ctx); err != nil {
			return nil, fmt.Errorf("cycle %d: restarting after SIGKILL: %w", cycle, err)
		}
		restartTook := time.Since(restartAt)
		if err := t.checkRemembers(ctx, promised); err != nil {
			return nil, fmt.Errorf("cycle %d: %w", cycle, err)
		}
		t.mu.Lock()
		n, bad := len(t.cosigs), len(t.problems)
		t.mu.Unlock()
		cfg.Logf("witness cycle %d/%d: killed after %s, back in %s, cosigned %d (largest size %d), fork pushes refused %d, problems %d",
			cycle, cfg.Cycles, up.Round(time.Millisecond), restartTook.Round(time.Millisecond), n, promised.size, t.forkRefuse.Load(), bad)
	}
	// After its last crash the witness must still cosign the log and still refuse the fork.
	t.mu.Lock()
	before, refusedBefore := len(t.cosigs), t.forkRefuse.Load()
	t.mu.Unlock()
	if err := waitFor(ctx, 15*time.Second, func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return len(t.cosigs) > before && t.forkRefuse.Load() > refusedBefore
	}); err != nil {
		return nil, fmt.Errorf("no cosignature and fork refusal after the last restart: %w; log tail:\n%s", err, tail(t.logPath, 4000))
	}
	stopLoad()
	wg.Wait()
	if err := p.stop(10 * time.Second); err != nil {
		return nil, fmt.Errorf("stopping quire-witness: %w", err)
	}
	inconsistent := t.checkCosigned(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, pr := range t.problems {
		cfg.Logf("WITNESS PROBLEM: %s", pr)
	}
	if len(t.cosigs) == 0 {
		return nil, errors.New("the witness cosigned nothing: the test proved nothing")
	}
	return &witnessResult{Cycles: cfg.Cycles, Cosigned: len(t.cosigs), Inconsistent: inconsistent + len(t.problems), ForkRefused: int(t.forkRefuse.Load())}, nil
}

func (t *witnessTest) setup(ctx context.Context) error {
	skey, vkey, err := note.GenerateKey(rand.Reader, witnessLogOrigin)
	if err != nil {
		return fmt.Errorf("generating log key: %w", err)
	}
	if t.logSigner, err = note.NewSigner(skey); err != nil {
		return fmt.Errorf("loading log key: %w", err)
	}
	if t.logVerif, err = note.NewVerifier(vkey); err != nil {
		return fmt.Errorf("loading log verifier: %w", err)
	}
	keys := filepath.Join(t.cfg.WorkDir, "witness-keys")
	out, err := exec.CommandContext(ctx, t.cfg.WitnessBin, "keygen", "--name", "crash-witness", "--out", keys).CombinedOutput()
	if err != nil {
		return fmt.Errorf("quire-witness keygen: %w: %s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(keys, "witness.pub"))
	if err != nil {
		return fmt.Errorf("reading witness vkey: %w", err)
	}
	t.witVKey = strings.TrimSpace(string(pub))
	if t.witVerif, err = fnote.NewVerifierForCosignatureV1(t.witVKey); err != nil {
		return fmt.Errorf("parsing witness vkey: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	t.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	t.args = []string{"serve", "--data-dir", filepath.Join(t.cfg.WorkDir, "witness-data"),
		"--key", filepath.Join(keys, "witness.key"), "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--log", witnessLogOrigin + " " + vkey,
		// The test is about crashes, not rate limits.
		"--rate-limit", "100000", "--rate-burst", "100000"}
	return nil
}

func (t *witnessTest) start(ctx context.Context) (*proc, error) {
	return startHealthy(ctx, t.hc, t.cfg.WitnessBin, t.args, t.logPath, t.url+"/healthz")
}

func openTreeLog(ctx context.Context, name, dir string, signer note.Signer) (*treeLog, error) {
	drv, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return nil, fmt.Errorf("opening %s POSIX log: %w", name, err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(64, 10*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond)
	app, shutdown, _, err := tessera.NewAppender(ctx, drv, opts)
	if err != nil {
		return nil, fmt.Errorf("starting %s appender: %w", name, err)
	}
	return &treeLog{name: name, dir: dir, appender: app, shutdown: shutdown, fetcher: tclient.FileFetcher{Root: dir}}, nil
}

func (l *treeLog) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.shutdown(ctx)
}

// checkpoint reads the log's latest published checkpoint.
func (l *treeLog) checkpoint(ctx context.Context, v note.Verifier) (*log.Checkpoint, []byte, error) {
	raw, err := l.fetcher.ReadCheckpoint(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s checkpoint: %w", l.name, err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, witnessLogOrigin, v)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing %s checkpoint: %w", l.name, err)
	}
	return cp, raw, nil
}

// consistency proves that size m is a prefix of size n in this log's tree.
func (l *treeLog) consistency(ctx context.Context, m, n uint64) ([][]byte, error) {
	if m == 0 || m == n {
		return nil, nil
	}
	pb, err := tclient.NewProofBuilder(ctx, n, l.readTilePrefix)
	if err != nil {
		return nil, fmt.Errorf("%s proof builder at %d: %w", l.name, n, err)
	}
	p, err := pb.ConsistencyProof(ctx, m, n)
	if err != nil {
		return nil, fmt.Errorf("%s consistency proof %d -> %d: %w", l.name, m, n, err)
	}
	return p, nil
}

// rootAt computes this log's root hash at size n from its tiles.
func (l *treeLog) rootAt(ctx context.Context, n uint64) ([]byte, error) {
	nodes, err := tclient.FetchRangeNodes(ctx, n, l.readTilePrefix)
	if err != nil {
		return nil, fmt.Errorf("%s range nodes at %d: %w", l.name, n, err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, n, nodes)
	if err != nil {
		return nil, fmt.Errorf("%s compact range at %d: %w", l.name, n, err)
	}
	return r.GetRootHash(nil)
}

// readTilePrefix reads the first p hashes of a tile. A log only writes partial tiles for the sizes
// it integrated to, so a size in between (a fork's checkpoint forged at the witness's size) is read
// from any wider version of the tile: tile hashes are complete subtrees, so a wider tile starts
// with the narrower one.
func (l *treeLog) readTilePrefix(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	b, err := l.fetcher.ReadTile(ctx, level, index, p)
	if err == nil || p == 0 || !errors.Is(err, os.ErrNotExist) {
		return truncateTile(b, p), err
	}
	matches, gerr := filepath.Glob(filepath.Join(l.dir, layout.TilePath(level, index, 0)+".p", "*"))
	if gerr != nil {
		return nil, fmt.Errorf("listing partial tiles %d/%d: %w", level, index, gerr)
	}
	for _, m := range matches {
		w, perr := strconv.Atoi(filepath.Base(m))
		if perr != nil || w < int(p) {
			continue
		}
		b, rerr := os.ReadFile(m)
		if rerr != nil {
			return nil, fmt.Errorf("reading tile %s: %w", m, rerr)
		}
		return truncateTile(b, p), nil
	}
	return nil, err
}

func truncateTile(b []byte, p uint8) []byte {
	if p != 0 && len(b) > int(p)*sha256.Size {
		return b[:int(p)*sha256.Size]
	}
	return b
}

// grow appends random entries to both logs; the fork gets a few more, so it is always big enough
// to claim a size the witness has cosigned for the honest log.
func (t *witnessTest) grow(ctx context.Context) {
	for ctx.Err() == nil {
		for i := range 4 {
			e := make([]byte, 32)
			_, _ = rand.Read(e)
			t.honest.appender.Add(ctx, tessera.NewEntry(e))
			e2 := make([]byte, 33)
			_, _ = rand.Read(e2)
			t.fork.appender.Add(ctx, tessera.NewEntry(e2))
			if i == 0 {
				e3 := make([]byte, 34)
				_, _ = rand.Read(e3)
				t.fork.appender.Add(ctx, tessera.NewEntry(e3))
			}
		}
		sleep(ctx, 5*time.Millisecond)
	}
}

// addCheckpoint is one tlog-witness add-checkpoint call: the status, and the body (cosignature
// lines on 200, the recorded size on 409).
func (t *witnessTest) addCheckpoint(ctx context.Context, oldSize uint64, prf [][]byte, cp []byte) (int, []byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range prf {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/add-checkpoint", &b)
	if err != nil {
		return 0, nil, fmt.Errorf("building add-checkpoint: %w", err)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("posting add-checkpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("reading add-checkpoint answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

// honestPusher does what a log's witness client does: push the latest checkpoint with a proof
// from the size the witness last cosigned, learning that size from 409 answers.
func (t *witnessTest) honestPusher(ctx context.Context) {
	var old uint64
	for ctx.Err() == nil {
		cp, raw, err := t.honest.checkpoint(ctx, t.logVerif)
		if err != nil || cp.Size <= old {
			sleep(ctx, 5*time.Millisecond)
			continue
		}
		prf, err := t.honest.consistency(ctx, old, cp.Size)
		if err != nil {
			t.problem("honest pusher: %v", err)
			return
		}
		status, body, err := t.addCheckpoint(ctx, old, prf, raw)
		switch {
		case err != nil:
			sleep(ctx, 10*time.Millisecond)
		case status == http.StatusOK:
			t.recordCosignature(raw, body, cp, "honest")
			old = cp.Size
		case status == http.StatusConflict:
			n, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
			if err != nil {
				t.problem("409 without a size: %q", body)
				return
			}
			old = n
		case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
			sleep(ctx, 20*time.Millisecond)
		default:
			// The honest log only grows; any other refusal means the witness holds something that
			// is not a prefix of it.
			t.problem("honest checkpoint %d (old %d) refused with %d: %s", cp.Size, old, status, bytes.TrimSpace(body))
			sleep(ctx, 50*time.Millisecond)
		}
	}
}

// forkPusher plays a compromised log: once the witness has cosigned the honest log, it shows the
// witness a fork signed with the same key, both as a larger tree with a proof from the fork and as
// a different root at the very size the witness holds. The witness must refuse every one.
func (t *witnessTest) forkPusher(ctx context.Context) {
	for ctx.Err() == nil {
		sleep(ctx, 20*time.Millisecond)
		if t.largestCosigned().size == 0 {
			continue
		}
		fcp, fraw, err := t.fork.checkpoint(ctx, t.logVerif)
		if err != nil {
			continue
		}
		// Old size 0 is never the recorded size once something is cosigned: the 409 says what is.
		status, body, err := t.addCheckpoint(ctx, 0, nil, fraw)
		if err != nil {
			continue
		}
		if status == http.StatusOK {
			t.recordCosignature(fraw, body, fcp, "fork, as if new")
			continue
		}
		if status != http.StatusConflict {
			continue
		}
		held, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
		if err != nil || held == 0 || held >= fcp.Size {
			continue
		}
		prf, err := t.fork.consistency(ctx, held, fcp.Size)
		if err != nil {
			t.problem("fork pusher: %v", err)
			return
		}
		t.pushFork(ctx, held, prf, fraw, fcp, "fork, larger")

		root, err := t.fork.rootAt(ctx, held)
		if err != nil {
			t.problem("fork pusher: %v", err)
			return
		}
		same := log.Checkpoint{Origin: witnessLogOrigin, Size: held, Hash: root}
		signed, err := note.Sign(&note.Note{Text: string(same.Marshal())}, t.logSigner)
		if err != nil {
			t.problem("fork pusher: signing: %v", err)
			return
		}
		t.pushFork(ctx, held, nil, signed, &same, "fork, same size")
	}
}

func (t *witnessTest) pushFork(ctx context.Context, old uint64, prf [][]byte, raw []byte, cp *log.Checkpoint, source string) {
	status, body, err := t.addCheckpoint(ctx, old, prf, raw)
	switch {
	case err != nil:
	case status == http.StatusOK:
		t.recordCosignature(raw, body, cp, source)
	case status == http.StatusUnprocessableEntity:
		t.forkRefuse.Add(1)
	}
}

// recordCosignature verifies the witness's answer with its vkey and keeps what it cosigned.
func (t *witnessTest) recordCosignature(raw, answer []byte, cp *log.Checkpoint, source string) {
	if _, err := note.Open(append(append([]byte(nil), raw...), answer...), note.VerifierList(t.witVerif)); err != nil {
		t.problem("200 for %s checkpoint %d without a valid cosignature (%v): %q", source, cp.Size, err, answer)
		return
	}
	t.mu.Lock()
	t.cosigs = append(t.cosigs, cosigned{size: cp.Size, root: cp.Hash, source: source})
	t.mu.Unlock()
}

func (t *witnessTest) problem(format string, args ...any) {
	t.mu.Lock()
	t.problems = append(t.problems, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

func (t *witnessTest) largestCosigned() cosigned {
	t.mu.Lock()
	defer t.mu.Unlock()
	var c cosigned
	for _, x := range t.cosigs {
		if x.size > c.size {
			c = x
		}
	}
	return c
}

// checkRemembers reads the witness's monitoring endpoint (tlog-witness "Monitor Retrieval
// Mechanism") after a restart: its latest cosigned checkpoint must not be older than a
// cosignature it returned before the crash.
func (t *witnessTest) checkRemembers(ctx context.Context, promised cosigned) error {
	if promised.size == 0 {
		return nil
	}
	h := sha256.Sum256([]byte(witnessLogOrigin))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/"+hex.EncodeToString(h[:])+"/checkpoint", nil)
	if err != nil {
		return fmt.Errorf("building checkpoint request: %w", err)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reading the witness's checkpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("reading the witness's checkpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.problem("after restart the witness has no checkpoint (%d) though it cosigned size %d", resp.StatusCode, promised.size)
		return nil
	}
	cp, _, _, err := log.ParseCheckpoint(body, witnessLogOrigin, t.logVerif)
	if err != nil {
		t.problem("after restart the witness serves a bad checkpoint: %v", err)
		return nil
	}
	if cp.Size < promised.size || (cp.Size == promised.size && !bytes.Equal(cp.Hash, promised.root)) {
		t.problem("after restart the witness holds size %d, but it had cosigned size %d", cp.Size, promised.size)
	}
	return nil
}

// checkCosigned holds every cosignature the witness returned to the rule of tlog-witness: no two
// cosigned checkpoints of a log are inconsistent. Sorted by size, the set is pairwise consistent
// exactly when each neighbouring pair is (consistency composes), so it proves neighbours, taking
// the proof from whichever of the two trees the larger checkpoint belongs to.
func (t *witnessTest) checkCosigned(ctx context.Context) int {
	t.mu.Lock()
	cs := append([]cosigned(nil), t.cosigs...)
	t.mu.Unlock()
	sort.Slice(cs, func(i, j int) bool { return cs[i].size < cs[j].size })
	bad := 0
	for i := 1; i < len(cs); i++ {
		a, b := cs[i-1], cs[i]
		if a.size == b.size {
			if !bytes.Equal(a.root, b.root) {
				bad++
				t.cfg.Logf("INCONSISTENT cosignatures: size %d with roots %x (%s) and %x (%s)", a.size, a.root, a.source, b.root, b.source)
			}
			continue
		}
		ok := false
		for _, l := range []*treeLog{t.honest, t.fork} {
			prf, err := l.consistency(ctx, a.size, b.size)
			if err != nil {
				// This tree may simply be smaller than b; the other one then holds the proof.
				t.cfg.Logf("no %s proof %d -> %d: %v", l.name, a.size, b.size, err)
				continue
			}
			if proof.VerifyConsistency(rfc6962.DefaultHasher, a.size, b.size, prf, a.root, b.root) == nil {
				ok = true
				break
			}
		}
		if !ok {
			bad++
			t.cfg.Logf("INCONSISTENT cosignatures: size %d root %x (%s) and size %d root %x (%s)", a.size, a.root, a.source, b.size, b.root, b.source)
		}
	}
	return bad
}
