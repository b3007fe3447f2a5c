package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/client"
)

// serverConfig says how hard and how long to crash `quire serve`.
type serverConfig struct {
	QuireBin string
	// FsckBin, when set, is Tessera's cmd/fsck binary, run against the log at the end on top of the
	// in-process fsck.
	FsckBin string
	WorkDir string
	Cycles  int
	Writers int
	// MaxUp bounds how long the server runs between restart and SIGKILL; each cycle draws a
	// uniform time in [0, MaxUp), so some kills land during recovery itself.
	MaxUp time.Duration
	// Sample is how many earlier acknowledged entries are re-read after each restart, beyond those
	// acknowledged since the last check (every entry is re-read at the end).
	Sample int
	Logf   func(format string, args ...any)
}

// serverResult is what the run found.
type serverResult struct {
	Cycles       int
	Acknowledged int
	Lost         int
	Inconsistent int
	Checkpoints  int
	TreeSize     uint64
}

const crashOrigin = "crash.quire.local"

// ackedEntry is a 201 answer: the log promised that body is at index for good.
type ackedEntry struct {
	index uint64
	body  []byte
}

// seenCheckpoint is a signed checkpoint some client saw; the log must never show a history that
// contradicts it.
type seenCheckpoint struct {
	size   uint64
	root   []byte
	source string
}

func (c *seenCheckpoint) key() string {
	return strconv.FormatUint(c.size, 10) + "/" + hex.EncodeToString(c.root)
}

// ledger is everything the clients saw, and what the checks found wrong. Writers, the poller and
// the checker share it under mu.
type ledger struct {
	mu          sync.Mutex
	acks        []ackedEntry
	checkpoints []*seenCheckpoint
	cpIndex     map[string]bool
	// lost and inconsistent are sets, so an entry or checkpoint found wrong by several checks
	// counts once.
	lost         map[uint64]string
	inconsistent map[string]string
}

func newLedger() *ledger {
	return &ledger{cpIndex: map[string]bool{}, lost: map[uint64]string{}, inconsistent: map[string]string{}}
}

func (l *ledger) addAck(a ackedEntry) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
}

func (l *ledger) addCheckpoint(c *seenCheckpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := c.key(); !l.cpIndex[k] {
		l.cpIndex[k] = true
		l.checkpoints = append(l.checkpoints, c)
	}
}

func (l *ledger) markLost(idx uint64, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.lost[idx]; !ok {
		l.lost[idx] = why
	}
}

func (l *ledger) markInconsistent(key, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.inconsistent[key]; !ok {
		l.inconsistent[key] = why
	}
}

func (l *ledger) snapshot() ([]ackedEntry, []*seenCheckpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ackedEntry(nil), l.acks...), append([]*seenCheckpoint(nil), l.checkpoints...)
}

func (l *ledger) counts() (acks, lost, inconsistent, cps int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks), len(l.lost), len(l.inconsistent), len(l.checkpoints)
}

// serverTest is one crash run against one data directory.
type serverTest struct {
	cfg      serverConfig
	dataDir  string
	keyPath  string
	pubPath  string
	logPath  string
	args     []string
	baseURL  string
	verifier note.Verifier
	hc       *http.Client
	fetcher  *tclient.HTTPFetcher
	ledger   *ledger
	rng      *mrand.Rand
	// catchUp is how long check waits for the log to reach the size its promises need.
	catchUp time.Duration
}

func runServerCrash(ctx context.Context, cfg serverConfig) (*serverResult, error) {
	t := &serverTest{
		cfg:     cfg,
		dataDir: filepath.Join(cfg.WorkDir, "data"),
		logPath: filepath.Join(cfg.WorkDir, "quire.log"),
		ledger:  newLedger(),
		rng:     mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		catchUp: 10 * time.Second,
	}
	if err := t.setup(ctx); err != nil {
		return nil, err
	}
	p, err := t.start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.kill() }()

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }()
	if err := t.startLoad(loadCtx, &wg); err != nil {
		return nil, err
	}

	checkedAcks := 0
	for cycle := 1; cycle <= cfg.Cycles; cycle++ {
		up := time.Duration(t.rng.Int64N(int64(cfg.MaxUp)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(up):
		}
		if p.exited() {
			return nil, fmt.Errorf("cycle %d: quire serve died on its own (%v); log tail:\n%s", cycle, p.err, tail(t.logPath, 4000))
		}
		if err := p.kill(); err != nil {
			return nil, fmt.Errorf("cycle %d: %w", cycle, err)
		}
		restartAt := time.Now()
		if p, err = t.start(ctx); err != nil {
			return nil, fmt.Errorf("cycle %d: restarting after SIGKILL: %w", cycle, err)
		}
		restartTook := time.Since(restartAt)
		acks, cps := t.ledger.snapshot()
		toCheck := append([]ackedEntry(nil), acks[checkedAcks:]...)
		for i := 0; i < cfg.Sample && checkedAcks > 0; i++ {
			toCheck = append(toCheck, acks[t.rng.IntN(checkedAcks)])
		}
		size, err := t.check(ctx, toCheck, cps)
		if err != nil {
			return nil, fmt.Errorf("cycle %d: checking after restart: %w", cycle, err)
		}
		checkedAcks = len(acks)
		nAck, nLost, nInc, nCP := t.ledger.counts()
		cfg.Logf("cycle %d/%d: killed after %s, back in %s, tree size %d, acknowledged %d, checkpoints seen %d, lost %d, inconsistent %d",
			cycle, cfg.Cycles, up.Round(time.Millisecond), restartTook.Round(time.Millisecond), size, nAck, nCP, nLost, nInc)
	}

	// The log must also take writes after its last crash, before the final check.
	if err := waitFor(ctx, 15*time.Second, func() bool { n, _, _, _ := t.ledger.counts(); return n > checkedAcks }); err != nil {
		return nil, fmt.Errorf("no write acknowledged after the last restart: %w; log tail:\n%s", err, tail(t.logPath, 4000))
	}

	// The last word: stop the writers so nothing is in flight, then re-read every entry, prove
	// every checkpoint against the final tree and let Tessera's fsck rebuild the whole tree.
	stopLoad()
	wg.Wait()
	acks, cps := t.ledger.snapshot()
	size, err := t.check(ctx, acks, cps)
	if err != nil {
		return nil, fmt.Errorf("final check: %w", err)
	}
	if err := t.fsck(ctx); err != nil {
		return nil, err
	}
	if err := p.stop(30 * time.Second); err != nil {
		return nil, fmt.Errorf("stopping quire serve: %w", err)
	}
	for idx, why := range t.ledger.lost {
		cfg.Logf("LOST entry %d: %s", idx, why)
	}
	for k, why := range t.ledger.inconsistent {
		cfg.Logf("INCONSISTENT checkpoint %s: %s", k, why)
	}
	nAck, nLost, nInc, nCP := t.ledger.counts()
	return &serverResult{Cycles: cfg.Cycles, Acknowledged: nAck, Lost: nLost, Inconsistent: nInc, Checkpoints: nCP, TreeSize: size}, nil
}

func (t *serverTest) setup(ctx context.Context) error {
	keys := filepath.Join(t.cfg.WorkDir, "keys")
	out, err := exec.CommandContext(ctx, t.cfg.QuireBin, "keygen", "--origin", crashOrigin, "--out", keys).CombinedOutput()
	if err != nil {
		return fmt.Errorf("quire keygen: %w: %s", err, out)
	}
	t.keyPath, t.pubPath = filepath.Join(keys, "log.key"), filepath.Join(keys, "log.pub")
	vkey, err := os.ReadFile(t.pubPath)
	if err != nil {
		return fmt.Errorf("reading log verifier key: %w", err)
	}
	if t.verifier, err = note.NewVerifier(strings.TrimSpace(string(vkey))); err != nil {
		return fmt.Errorf("parsing log verifier key: %w", err)
	}
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	grpcPort, err := freePort()
	if err != nil {
		return err
	}
	t.baseURL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	t.args = []string{"serve",
		"--data-dir", t.dataDir, "--key", t.keyPath, "--origin", crashOrigin, "--public-url", t.baseURL,
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "--grpc-listen", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--metrics-listen", "127.0.0.1:0",
		"--checkpoint-interval", "50ms", "--batch-max-age", "20ms", "--batch-max-size", "256",
	}
	t.hc = &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: t.cfg.Writers + 4, IdleConnTimeout: 30 * time.Second},
	}
	u, err := url.Parse(t.baseURL + "/")
	if err != nil {
		return fmt.Errorf("parsing log URL: %w", err)
	}
	if t.fetcher, err = tclient.NewHTTPFetcher(u, t.hc); err != nil {
		return fmt.Errorf("building tile fetcher: %w", err)
	}
	return nil
}

func (t *serverTest) start(ctx context.Context) (*proc, error) {
	return startHealthy(ctx, t.hc, t.cfg.QuireBin, t.args, t.logPath, t.baseURL+"/healthz")
}

// startLoad runs the writers and the checkpoint poller until ctx ends.
func (t *serverTest) startLoad(ctx context.Context, wg *sync.WaitGroup) error {
	c, err := client.New(t.baseURL, client.WithHTTPClient(t.hc), client.WithUserAgent("quire-crashtest"))
	if err != nil {
		return fmt.Errorf("building log client: %w", err)
	}
	for range t.cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.writer(ctx, c)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.poller(ctx)
	}()
	return nil
}

// writer submits really signed hashedrekord entries, each for a fresh random digest so that no
// answer is a 409, and records every 201 after checking what it promises.
func (t *serverTest) writer(ctx context.Context, c *client.Client) {
	signer, err := client.GenerateKey(client.KeyECDSAP256)
	if err != nil {
		t.cfg.Logf("writer: %v", err)
		return
	}
	for ctx.Err() == nil {
		body, digest, err := freshRequest(signer)
		if err != nil {
			t.cfg.Logf("writer: %v", err)
			return
		}
		raw, err := c.PostEntry(ctx, body)
		if err != nil {
			// The server is down or restarting, or pushed back: nothing was promised.
			if wait, ok := client.RetryAfter(err); ok && wait > 0 {
				sleep(ctx, min(wait, time.Second))
			} else {
				sleep(ctx, 10*time.Millisecond)
			}
			continue
		}
		t.recordAnswer(raw, digest)
	}
}

// freshRequest is a really signed hashedrekord request for a new random digest, and the digest.
func freshRequest(signer crypto.Signer) ([]byte, []byte, error) {
	digest := make([]byte, crypto.SHA256.Size())
	_, _ = rand.Read(digest)
	req, err := client.NewHashedRekordRequest(signer, digest)
	if err != nil {
		return nil, nil, err
	}
	body, err := client.MarshalCreateEntryRequest(req)
	if err != nil {
		return nil, nil, err
	}
	return body, digest, nil
}

// recordAnswer keeps a 201 as acknowledged, and first checks it on its own terms: the inclusion
// proof must put the body at its index under the root, and the checkpoint must be the log's,
// signed, for that root. A 201 that fails is recorded as inconsistent evidence.
func (t *serverTest) recordAnswer(raw, digest []byte) {
	tle, err := client.UnmarshalTransparencyLogEntry(raw)
	if err != nil {
		t.ledger.markInconsistent("answer:"+hex.EncodeToString(digest), fmt.Sprintf("undecodable 201: %v", err))
		return
	}
	ip := tle.GetInclusionProof()
	idx := uint64(tle.GetLogIndex())
	body := tle.GetCanonicalizedBody()
	// Every acknowledged entry is checked later, even if its answer looks wrong now.
	t.ledger.addAck(ackedEntry{index: idx, body: body})
	if !bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString(digest))) {
		t.ledger.markInconsistent("answer:"+hex.EncodeToString(digest), fmt.Sprintf("201 for index %d has a body without our digest", idx))
		return
	}
	if ip == nil || uint64(ip.GetLogIndex()) != idx {
		t.ledger.markInconsistent("answer:"+hex.EncodeToString(digest), fmt.Sprintf("201 for index %d has no inclusion proof for it", idx))
		return
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, uint64(ip.GetTreeSize()), leaf, ip.GetHashes(), ip.GetRootHash()); err != nil {
		t.ledger.markInconsistent("answer:"+hex.EncodeToString(digest), fmt.Sprintf("201 for index %d: inclusion proof fails: %v", idx, err))
		return
	}
	cp, err := t.parseCheckpoint([]byte(ip.GetCheckpoint().GetEnvelope()), "201")
	if err != nil {
		t.ledger.markInconsistent("answer:"+hex.EncodeToString(digest), fmt.Sprintf("201 for index %d: %v", idx, err))
		return
	}
	if cp.size != uint64(ip.GetTreeSize()) || !bytes.Equal(cp.root, ip.GetRootHash()) {
		t.ledger.markInconsistent("answer:"+hex.EncodeToString(digest), fmt.Sprintf("201 for index %d: checkpoint %s does not match proof tree %d", idx, cp.key(), ip.GetTreeSize()))
	}
	t.ledger.addCheckpoint(cp)
}

// poller records every checkpoint GET /checkpoint serves, as a monitor would see them.
func (t *serverTest) poller(ctx context.Context) {
	var last []byte
	for ctx.Err() == nil {
		raw, err := t.fetcher.ReadCheckpoint(ctx)
		if err == nil && !bytes.Equal(raw, last) {
			last = raw
			if cp, err := t.parseCheckpoint(raw, "poll"); err != nil {
				t.ledger.markInconsistent("poll:"+hex.EncodeToString(raw), err.Error())
			} else {
				t.ledger.addCheckpoint(cp)
			}
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

func (t *serverTest) parseCheckpoint(raw []byte, source string) (*seenCheckpoint, error) {
	cp, _, _, err := log.ParseCheckpoint(raw, crashOrigin, t.verifier)
	if err != nil {
		return nil, fmt.Errorf("checkpoint from %s does not verify: %w", source, err)
	}
	return &seenCheckpoint{size: cp.Size, root: cp.Hash, source: source}, nil
}

// check reads the log as it is now and holds it to every promise in acks and cps: each entry at
// its index with the same bytes, each checkpoint a prefix of the current tree. It returns the
// current tree size. Errors are for a check that could not run; findings go to the ledger.
func (t *serverTest) check(ctx context.Context, acks []ackedEntry, cps []*seenCheckpoint) (uint64, error) {
	var need uint64
	for _, a := range acks {
		need = max(need, a.index+1)
	}
	for _, c := range cps {
		need = max(need, c.size)
	}
	// Right after a restart the server may publish a checkpoint before it has caught up with
	// entries it had integrated; give it a few checkpoint intervals.
	var cur *seenCheckpoint
	deadline := time.Now().Add(t.catchUp)
	for {
		raw, err := t.fetcher.ReadCheckpoint(ctx)
		if err != nil {
			return 0, fmt.Errorf("reading checkpoint: %w", err)
		}
		if cur, err = t.parseCheckpoint(raw, "check"); err != nil {
			t.ledger.markInconsistent("check:"+hex.EncodeToString(raw), err.Error())
			return 0, err
		}
		t.ledger.addCheckpoint(cur)
		if cur.size >= need || time.Now().After(deadline) {
			break
		}
		sleep(ctx, 50*time.Millisecond)
	}

	if err := t.checkEntries(ctx, acks, cur.size); err != nil {
		return 0, err
	}
	pb, err := tclient.NewProofBuilder(ctx, cur.size, t.fetcher.ReadTile)
	if err != nil {
		return 0, fmt.Errorf("building proofs at size %d: %w", cur.size, err)
	}
	for _, c := range cps {
		switch {
		case c.size > cur.size:
			t.ledger.markInconsistent(c.key(), fmt.Sprintf("seen via %s, but the log went back to size %d", c.source, cur.size))
		case c.size == cur.size:
			if !bytes.Equal(c.root, cur.root) {
				t.ledger.markInconsistent(c.key(), fmt.Sprintf("seen via %s; same size as the current tree, other root %x", c.source, cur.root))
			}
		case c.size == 0:
		default:
			p, err := pb.ConsistencyProof(ctx, c.size, cur.size)
			if err != nil {
				return 0, fmt.Errorf("consistency proof %d -> %d: %w", c.size, cur.size, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.size, cur.size, p, c.root, cur.root); err != nil {
				t.ledger.markInconsistent(c.key(), fmt.Sprintf("seen via %s; not a prefix of the tree at %d: %v", c.source, cur.size, err))
			}
		}
	}
	return cur.size, nil
}

// checkEntries reads the entry bundles holding acks, Tessera's client choosing partial or full
// bundles for the tree size, and compares bytes.
func (t *serverTest) checkEntries(ctx context.Context, acks []ackedEntry, size uint64) error {
	byBundle := map[uint64][]ackedEntry{}
	for _, a := range acks {
		if a.index >= size {
			t.ledger.markLost(a.index, fmt.Sprintf("acknowledged, but the tree has only %d entries", size))
			continue
		}
		b := a.index / layout.EntryBundleWidth
		byBundle[b] = append(byBundle[b], a)
	}
	bundles := make([]uint64, 0, len(byBundle))
	for b := range byBundle {
		bundles = append(bundles, b)
	}
	sort.Slice(bundles, func(i, j int) bool { return bundles[i] < bundles[j] })
	for _, b := range bundles {
		bundle, err := tclient.GetEntryBundle(ctx, t.fetcher.ReadEntryBundle, b, size)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				for _, a := range byBundle[b] {
					t.ledger.markLost(a.index, fmt.Sprintf("entry bundle %d is missing at tree size %d", b, size))
				}
				continue
			}
			return fmt.Errorf("reading entry bundle %d: %w", b, err)
		}
		for _, a := range byBundle[b] {
			off := a.index % layout.EntryBundleWidth
			switch {
			case off >= uint64(len(bundle.Entries)):
				t.ledger.markLost(a.index, fmt.Sprintf("entry bundle %d has only %d entries", b, len(bundle.Entries)))
			case !bytes.Equal(bundle.Entries[off], a.body):
				t.ledger.markLost(a.index, fmt.Sprintf("entry bytes differ: log has %q, answer said %q", bundle.Entries[off], a.body))
			}
		}
	}
	return nil
}

// fsck rebuilds the whole tree from the entry bundles with Tessera's fsck package, and, when
// given, runs Tessera's fsck command too: a peer's reading of the tiles, not ours.
func (t *serverTest) fsck(ctx context.Context) error {
	f := fsck.New(crashOrigin, t.verifier, t.fetcher, bundleLeafHashes, fsck.Opts{N: 4})
	if err := f.Check(ctx); err != nil {
		return fmt.Errorf("tessera fsck (package): %w", err)
	}
	t.cfg.Logf("tessera fsck package: the tiles and bundles at the final checkpoint verify")
	if t.cfg.FsckBin == "" {
		return nil
	}
	args := []string{"--storage_url", t.baseURL + "/", "--public_key", t.pubPath, "--ui=false", "-N", "4", "-v", "1"}
	out, err := exec.CommandContext(ctx, t.cfg.FsckBin, args...).CombinedOutput()
	// cmd/fsck v1.0.4 logs "fsck failed" and still exits 0, so its output is the verdict.
	if err != nil || bytes.Contains(out, []byte("fsck failed")) {
		return fmt.Errorf("tessera fsck command %s %q failed (%v):\n%s", t.cfg.FsckBin, args, err, out)
	}
	t.cfg.Logf("tessera fsck command: passed (%s %s)", t.cfg.FsckBin, strings.Join(args, " "))
	return nil
}

// bundleLeafHashes is the leaf hasher Tessera's fsck command uses: RFC 6962 leaf hashes of the
// entries of a tlog-tiles entry bundle.
func bundleLeafHashes(bundle []byte) ([][]byte, error) {
	eb := &api.EntryBundle{}
	if err := eb.UnmarshalText(bundle); err != nil {
		return nil, fmt.Errorf("parsing entry bundle: %w", err)
	}
	hashes := make([][]byte, 0, len(eb.Entries))
	for _, e := range eb.Entries {
		h := rfc6962.DefaultHasher.HashLeaf(e)
		hashes = append(hashes, h)
	}
	return hashes, nil
}

// waitFor polls cond until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still waiting after %s", limit)
		}
		sleep(ctx, 20*time.Millisecond)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
