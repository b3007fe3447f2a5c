package pebble_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quirelog/quire/storage/pebble"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

const (
	// crashChildEnv, when set, turns the test binary into the appending child
	// of TestCrash (see TestMain); its value is the directory the child works in.
	crashChildEnv = "QUIRE_CRASH_CHILD_DIR"
	// crashCyclesEnv raises the number of kill/reopen cycles for longer soaks.
	crashCyclesEnv     = "QUIRE_CRASH_CYCLES"
	defaultCrashCycles = 20
	// The child is killed at a uniformly random moment in this window after it
	// starts, so kills land during start-up and recovery as well as mid-batch.
	crashMaxLife = 1200 * time.Millisecond
	// crashDupSample is how many acknowledged entries each child resubmits
	// first, to check that dedup survives crashes.
	crashDupSample = 16
	crashWorkers   = 16
	crashBurst     = 8
)

// crashOptions are shared by the child and the parent's reopen so both run the
// log the same way; small batches make many batch boundaries to crash between.
func crashOptions(signer note.Signer) *tessera.AppendOptions {
	return tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(64, 10*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond)
}

// seenCheckpoint is a checkpoint some reader was shown, by the child's Await or
// by a reopen.
type seenCheckpoint struct {
	size uint64
	root []byte
	from string
}

// crashState is what the parent knows the log has promised so far.
type crashState struct {
	acked map[uint64][]byte // index → entry bytes, for every index a child reported
	// checkpoints holds one checkpoint per tree size: two different roots
	// for one size is a fork and fails at once.
	checkpoints map[uint64]seenCheckpoint
	maxSize     uint64
}

// TestCrash kills an appending child process with SIGKILL at random moments and
// checks, after each kill, the promises the log made before it: every index
// whose future resolved and whose Await returned is there with the same bytes;
// every checkpoint shown is consistent with the latest and still in the log's
// history; the tree never shrinks; and a resubmitted acknowledged entry still
// gets its index.
func TestCrash(t *testing.T) {
	cycles := defaultCrashCycles
	if v := os.Getenv(crashCyclesEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of cycles", crashCyclesEnv, v)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d cycles, kill-delay seed %d", cycles, seed)
	rng := mrand.New(mrand.NewPCG(seed, seed>>1))

	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "crash.quire.test/log")
	if err != nil {
		t.Fatalf("generating log key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.key"), []byte(skey), 0o600); err != nil {
		t.Fatalf("writing log key: %v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("loading verifier: %v", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("loading signer: %v", err)
	}

	st := &crashState{acked: map[uint64][]byte{}, checkpoints: map[uint64]seenCheckpoint{}}
	start := time.Now()
	for cycle := range cycles {
		life := time.Duration(rng.Int64N(int64(crashMaxLife)))
		out := runCrashChild(t, dir, st, life, rng)
		if err := st.absorb(out, verifier, cycle); err != nil {
			t.Fatalf("cycle %d (killed after %v): %v", cycle, life, err)
		}
		if err := st.reopenAndCheck(dir, signer, verifier, cycle); err != nil {
			t.Fatalf("cycle %d (killed after %v), on reopen: %v", cycle, life, err)
		}
	}
	if len(st.acked) == 0 {
		t.Fatalf("no child acknowledged any entry in %d cycles: nothing was tested", cycles)
	}
	t.Logf("%d cycles in %v: %d acknowledged entries, %d distinct checkpoints, final size %d", cycles, time.Since(start).Round(time.Millisecond), len(st.acked), len(st.checkpoints), st.maxSize)
}

// runCrashChild starts the child on dir, kills it after life and returns
// everything it printed.
func runCrashChild(t *testing.T, dir string, st *crashState, life time.Duration, rng *mrand.Rand) []byte {
	t.Helper()
	if err := writeCrashDups(dir, st, rng); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child: %v", err)
	}
	time.Sleep(life)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("killing child: %v", err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child was not killed (wait: %v); stderr:\n%s", err, stderr.Bytes())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended on its own before the kill (%v); stderr:\n%s", err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// writeCrashDups gives the next child a sample of acknowledged entries to
// resubmit, one "index base64(entry)" per line.
func writeCrashDups(dir string, st *crashState, rng *mrand.Rand) error {
	var b strings.Builder
	idx := make([]uint64, 0, len(st.acked))
	for i := range st.acked {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for range min(crashDupSample, len(idx)) {
		i := idx[rng.IntN(len(idx))]
		fmt.Fprintf(&b, "%d %s\n", i, base64.StdEncoding.EncodeToString(st.acked[i]))
	}
	if err := os.WriteFile(filepath.Join(dir, "dups"), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing resubmissions for the child: %w", err)
	}
	return nil
}

// absorb records what a killed child reported. The child only writes whole
// lines in single writes of under PIPE_BUF bytes, so a kill never leaves half a
// line.
func (st *crashState) absorb(out []byte, v note.Verifier, cycle int) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "ACK" && len(f) == 3:
			idx, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return fmt.Errorf("child line %q: %w", sc.Text(), err)
			}
			e, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil {
				return fmt.Errorf("child line %q: %w", sc.Text(), err)
			}
			if prev, ok := st.acked[idx]; ok && !bytes.Equal(prev, e) {
				return fmt.Errorf("index %d acknowledged for two different entries: %q and %q", idx, prev, e)
			}
			st.acked[idx] = e
		case f[0] == "CP" && len(f) == 2:
			raw, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil {
				return fmt.Errorf("child line %q: %w", sc.Text(), err)
			}
			cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
			if err != nil {
				return fmt.Errorf("checkpoint the child was given by Await: %w", err)
			}
			if err := st.see(cp, fmt.Sprintf("Await in child %d", cycle)); err != nil {
				return err
			}
		case f[0] == "DUP" && len(f) == 4:
			if f[1] != f[2] || f[3] != "true" {
				return fmt.Errorf("resubmitted entry acknowledged at index %s got index %s, IsDup %s", f[1], f[2], f[3])
			}
		default:
			return fmt.Errorf("unexpected child line %q", sc.Text())
		}
	}
	return sc.Err()
}

// see records a checkpoint someone was shown and fails on a fork.
func (st *crashState) see(cp *log.Checkpoint, from string) error {
	if prev, ok := st.checkpoints[cp.Size]; ok {
		if !bytes.Equal(prev.root, cp.Hash) {
			return fmt.Errorf("fork at size %d: root %x (%s) and %x (%s)", cp.Size, prev.root, prev.from, cp.Hash, from)
		}
		return nil
	}
	st.checkpoints[cp.Size] = seenCheckpoint{size: cp.Size, root: cp.Hash, from: from}
	st.maxSize = max(st.maxSize, cp.Size)
	return nil
}

// reopenAndCheck opens the killed child's log in this process and checks it
// against everything promised so far.
func (st *crashState) reopenAndCheck(dir string, signer note.Signer, v note.Verifier, cycle int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(dir, "log")})
	if err != nil {
		return fmt.Errorf("opening driver: %w", err)
	}
	s := drv.(*pebble.Storage)
	appCtx, appCancel := context.WithCancel(ctx)
	_, shutdown, reader, err := tessera.NewAppender(appCtx, drv, crashOptions(signer))
	if err != nil {
		appCancel()
		return errors.Join(fmt.Errorf("creating appender: %w", err), s.Close())
	}
	defer func() {
		err = errors.Join(err, shutdown(ctx))
		appCancel()
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing driver: %w", cerr))
		}
	}()

	integrated, err := reader.IntegratedSize(ctx)
	if err != nil {
		return fmt.Errorf("reading integrated size: %w", err)
	}
	cp, err := readCheckpoint(ctx, reader, v)
	if err != nil {
		return err
	}
	if cp.Size < st.maxSize {
		return fmt.Errorf("log shrank: checkpoint size %d after a checkpoint of size %d was shown (%s)", cp.Size, st.maxSize, st.checkpoints[st.maxSize].from)
	}
	if integrated < cp.Size {
		return fmt.Errorf("integrated size %d is behind the published checkpoint size %d", integrated, cp.Size)
	}
	// Entries the child integrated without publishing before it died must be
	// published by the reopened log without waiting for new appends.
	for deadline := time.Now().Add(5 * time.Second); cp.Size < integrated; {
		if time.Now().After(deadline) {
			return fmt.Errorf("reopened log integrated to %d but still publishes size %d after 5s", integrated, cp.Size)
		}
		time.Sleep(20 * time.Millisecond)
		if cp, err = readCheckpoint(ctx, reader, v); err != nil {
			return err
		}
	}
	if err := st.see(cp, fmt.Sprintf("reopen after child %d", cycle)); err != nil {
		return err
	}
	for idx := range st.acked {
		if idx >= cp.Size {
			return fmt.Errorf("acknowledged index %d is beyond the reopened checkpoint size %d", idx, cp.Size)
		}
	}
	if err := st.checkEntries(ctx, reader, cp); err != nil {
		return err
	}
	if err := st.checkHistory(ctx, s, v); err != nil {
		return err
	}
	return st.checkConsistency(ctx, reader, cp)
}

// checkHistory asks the reopened log for each checkpoint anyone was shown:
// a published checkpoint must have been durable before it was shown.
func (st *crashState) checkHistory(ctx context.Context, s *pebble.Storage, v note.Verifier) error {
	for size, seen := range st.checkpoints {
		raw, err := s.CheckpointAt(ctx, size)
		if err != nil {
			return fmt.Errorf("checkpoint of size %d (%s) is not in the log's history: %w", size, seen.from, err)
		}
		cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
		if err != nil {
			return fmt.Errorf("opening the log's stored checkpoint of size %d: %w", size, err)
		}
		if cp.Size != size || !bytes.Equal(cp.Hash, seen.root) {
			return fmt.Errorf("log's stored checkpoint for size %d has size %d root %x; %s was shown root %x", size, cp.Size, cp.Hash, seen.from, seen.root)
		}
	}
	return nil
}

func readCheckpoint(ctx context.Context, reader tessera.LogReader, v note.Verifier) (*log.Checkpoint, error) {
	cp, _, _, err := client.FetchCheckpoint(ctx, reader.ReadCheckpoint, v, v.Name())
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return cp, nil
}

// checkEntries reads every bundle up to the checkpoint, compares acknowledged
// entries byte for byte, recomputes the root from the entries alone, and checks
// the level-0 tiles hold the same leaf hashes.
func (st *crashState) checkEntries(ctx context.Context, reader tessera.LogReader, cp *log.Checkpoint) error {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	leaves := make([][]byte, 0, cp.Size)
	for b := uint64(0); b*256 < cp.Size; b++ {
		bundle, err := client.GetEntryBundle(ctx, reader.ReadEntryBundle, b, cp.Size)
		if err != nil {
			return fmt.Errorf("reading entry bundle %d at size %d: %w", b, cp.Size, err)
		}
		for j, e := range bundle.Entries {
			idx := b*256 + uint64(j)
			if want, ok := st.acked[idx]; ok && !bytes.Equal(e, want) {
				return fmt.Errorf("acknowledged index %d holds %q, the child was given it for %q", idx, e, want)
			}
			h := rfc6962.DefaultHasher.HashLeaf(e)
			leaves = append(leaves, h)
			if err := r.Append(h, nil); err != nil {
				return fmt.Errorf("hashing entry %d: %w", idx, err)
			}
		}
	}
	if uint64(len(leaves)) != cp.Size {
		return fmt.Errorf("entry bundles hold %d entries, checkpoint says %d", len(leaves), cp.Size)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("computing root of %d entries: %w", cp.Size, err)
	}
	if cp.Size > 0 && !bytes.Equal(root, cp.Hash) {
		return fmt.Errorf("entries hash to root %x, checkpoint of size %d says %x", root, cp.Size, cp.Hash)
	}
	tiled, err := client.FetchLeafHashes(ctx, reader.ReadTile, 0, cp.Size, cp.Size)
	if err != nil {
		return fmt.Errorf("reading leaf hashes from tiles at size %d: %w", cp.Size, err)
	}
	for i := range leaves {
		if !bytes.Equal(tiled[i], leaves[i]) {
			return fmt.Errorf("tile leaf hash %d is %s, entry hashes to %s", i, hex.EncodeToString(tiled[i]), hex.EncodeToString(leaves[i]))
		}
	}
	return nil
}

// checkConsistency proves, from the reopened log's tiles, that every earlier
// checkpoint anyone was shown is a prefix of the current one.
func (st *crashState) checkConsistency(ctx context.Context, reader tessera.LogReader, cp *log.Checkpoint) error {
	pb, err := client.NewProofBuilder(ctx, cp.Size, reader.ReadTile)
	if err != nil {
		return fmt.Errorf("creating proof builder at size %d: %w", cp.Size, err)
	}
	for size, old := range st.checkpoints {
		if size == 0 || size >= cp.Size {
			continue
		}
		p, err := pb.ConsistencyProof(ctx, size, cp.Size)
		if err != nil {
			return fmt.Errorf("building consistency proof %d→%d: %w", size, cp.Size, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.Size, p, old.root, cp.Hash); err != nil {
			return fmt.Errorf("checkpoint of size %d (%s) is not consistent with size %d: %w", size, old.from, cp.Size, err)
		}
	}
	return nil
}

// TestMain lets TestCrash re-execute this test binary as its appending child, without a test
// that would otherwise show as skipped in every ordinary run.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		// Anything but a SIGKILL from the parent is a failure it reports, so the
		// child exits non-zero on any error of its own.
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild appends until it is killed, and reports each index only after its
// future resolved and Await returned the checkpoint that covers it.
func crashChild(dir string) error {
	// A child the parent forgot to kill must not run forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	skey, err := os.ReadFile(filepath.Join(dir, "log.key"))
	if err != nil {
		return fmt.Errorf("reading log key: %w", err)
	}
	signer, err := note.NewSigner(string(skey))
	if err != nil {
		return fmt.Errorf("loading signer: %w", err)
	}
	dups, err := os.ReadFile(filepath.Join(dir, "dups"))
	if err != nil {
		return fmt.Errorf("reading resubmissions: %w", err)
	}
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(dir, "log")})
	if err != nil {
		return fmt.Errorf("opening driver: %w", err)
	}
	s := drv.(*pebble.Storage)
	appender, _, _, err := tessera.NewAppender(ctx, drv, crashOptions(signer))
	if err != nil {
		return fmt.Errorf("creating appender: %w", err)
	}

	var mu sync.Mutex
	var lastCP []byte
	// say writes one line in one write(2), so a SIGKILL cannot split it.
	say := func(line string) error {
		if _, err := io.WriteString(os.Stdout, line+"\n"); err != nil {
			return fmt.Errorf("reporting to parent: %w", err)
		}
		return nil
	}

	for _, line := range strings.Split(strings.TrimSpace(string(dups)), "\n") {
		if line == "" {
			continue
		}
		want, enc, _ := strings.Cut(line, " ")
		e, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return fmt.Errorf("decoding resubmission %q: %w", line, err)
		}
		idx, err := appender.Add(ctx, tessera.NewEntry(e))()
		if err != nil {
			return fmt.Errorf("resubmitting index %s: %w", want, err)
		}
		if err := say(fmt.Sprintf("DUP %s %d %t", want, idx.Index, idx.IsDup)); err != nil {
			return err
		}
	}

	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("making nonce: %w", err)
	}
	errc := make(chan error, crashWorkers)
	for w := range crashWorkers {
		go func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := 0; ctx.Err() == nil; seq++ {
				entries := make([][]byte, crashBurst)
				futures := make([]tessera.IndexFuture, crashBurst)
				for i := range entries {
					// Varying lengths exercise the bundle encoding; the
					// nonce keeps entries distinct across children. The
					// burst's last entry repeats its first while that is
					// still in flight: a concurrent identical submission.
					e := fmt.Appendf(nil, "crash %x w%d s%d.%d ", nonce, w, seq, i)
					pad := make([]byte, rng.IntN(300))
					for j := range pad {
						pad[j] = byte(rng.Uint32())
					}
					entries[i] = append(e, pad...)
					if i == crashBurst-1 {
						entries[i] = entries[0]
					}
					futures[i] = appender.Add(ctx, tessera.NewEntry(entries[i]))
				}
				got := make([]tessera.Index, crashBurst)
				for i, f := range futures {
					idx, cp, err := s.Await(ctx, f)
					if err != nil {
						errc <- fmt.Errorf("awaiting entry %.40q: %w", entries[i], err)
						return
					}
					got[i] = idx
					if first, again := got[0], got[crashBurst-1]; i == crashBurst-1 && (again.Index != first.Index || again.IsDup == first.IsDup) {
						errc <- fmt.Errorf("two concurrent submissions of %.40q got %+v and %+v, want one index and one duplicate", entries[0], first, again)
						return
					}
					mu.Lock()
					if !bytes.Equal(cp, lastCP) {
						err = say("CP " + base64.StdEncoding.EncodeToString(cp))
						lastCP = cp
					}
					if err == nil {
						err = say(fmt.Sprintf("ACK %d %s", idx.Index, base64.StdEncoding.EncodeToString(entries[i])))
					}
					mu.Unlock()
					if err != nil {
						errc <- err
						return
					}
				}
			}
			errc <- nil
		}()
	}
	for range crashWorkers {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}
