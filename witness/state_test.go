package witness

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/storage/pebblelog"
)

// TestRestartKeepsState cosigns, closes the witness, reopens the same
// directory and checks that everything it promised still binds it.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	l := newTestLog(t, "example.com/log", "log", "l", 32)
	fork := newTestLog(t, "example.com/log", "log", "fork", 32)

	f := startWitness(t, dir, 0, 0, l.config(t))
	if r := post(t, f.srv.URL, l.request(t, 0, 11)); r.status != http.StatusOK {
		t.Fatalf("first checkpoint got %d %q", r.status, r.body)
	}
	before, _ := f.w.Checkpoint(OriginHash(l.origin))
	f.stop()

	f = startWitness(t, dir, 0, 0, l.config(t))
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		body2  string
	}{
		{"after a restart old size 0 conflicts with the recorded size", l.request(t, 0, 20), 409, "11\n"},
		{"after a restart a fork at the recorded size is refused", fork.request(t, 11, 11), 422, ""},
		{"after a restart a forked extension is refused", fork.request(t, 11, 20), 422, ""},
		{"after a restart a rollback conflicts", l.request(t, 7, 9), 409, "11\n"},
		{"after a restart a consistent extension is cosigned", l.request(t, 11, 20), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, f.srv.URL, tc.body)
			if r.status != tc.status || (tc.body2 != "" && r.body != tc.body2) {
				t.Fatalf("got %d %q, want %d %q", r.status, r.body, tc.status, tc.body2)
			}
		})
	}
	t.Run("the monitoring read survived the restart and then moved on", func(t *testing.T) {
		if !bytes.HasPrefix(before, []byte(l.origin+"\n11\n")) {
			t.Fatalf("checkpoint before restart = %q", before)
		}
		r := get(t, f.srv.URL+"/"+OriginHash(l.origin)+"/checkpoint")
		if r.status != 200 || !strings.HasPrefix(r.body, l.origin+"\n20\n") {
			t.Fatalf("got %d %q, want the size-20 checkpoint", r.status, r.body)
		}
	})
}

// TestSharedDatabase checks the Config.DB form: state lives in a database
// the caller owns, and Close leaves it open.
func TestSharedDatabase(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: pebblelog.New(quietLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := newTestLog(t, "example.com/log", "log", "l", 8)
	cos := newCosigner(t, "w")
	for i, step := range []struct{ old, size uint64 }{{0, 4}, {4, 8}} {
		w, err := New(Config{DB: db, Signer: cos, Logs: []Log{l.config(t)}, RateLimit: 1000, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.AddCheckpoint(context.Background(), l.request(t, step.old, step.size)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, closer, err := db.Get(stateKey(l.origin)); err != nil {
		t.Fatalf("the caller's database is unusable after Close: %v", err)
	} else {
		closer.Close()
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 1)
	cos := newCosigner(t, "w")
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"a config without a signer is refused", Config{Path: dir, Logs: []Log{l.config(t)}}},
		{"a config without logs is refused", Config{Path: dir, Signer: cos}},
		{"a config without a path or database is refused", Config{Signer: cos, Logs: []Log{l.config(t)}}},
		{"a log without a verifier is refused", Config{Path: dir, Signer: cos, Logs: []Log{{Origin: "x"}}}},
		{"a multi-line origin is refused", Config{Path: dir, Signer: cos, Logs: []Log{{Origin: "a\nb", Verifier: l.config(t).Verifier}}}},
		{"a negative rate is refused", Config{Path: dir, Signer: cos, Logs: []Log{l.config(t)}, RateLimit: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, err := New(tc.cfg); err == nil {
				w.Close()
				t.Fatal("New accepted it")
			}
		})
	}
}

// TestConcurrentPushersNeverGetInconsistentCosignatures has many goroutines
// push checkpoints from two forked histories of one log (both validly signed
// by the log key) and follow the 409 protocol, as racing log frontends would.
// Every cosignature handed out must belong to one single history.
func TestConcurrentPushersNeverGetInconsistentCosignatures(t *testing.T) {
	const maxSize = 200
	const forkAt = 40 // both histories share leaves [0, forkAt)
	main := newTestLog(t, "example.com/log", "log", "shared", maxSize)
	fork := newTestLog(t, "example.com/log", "log", "shared", forkAt)
	fork.prefix = "fork"
	fork.grow(maxSize)
	f := startWitness(t, t.TempDir(), 0, 0, main.config(t))

	type cosigned struct {
		size uint64
		root []byte
	}
	var mu sync.Mutex
	var got []cosigned
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	deadline := time.Now().Add(20 * time.Second)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pushRandomly(main, fork, g, f, deadline, func(c *log.Checkpoint) {
				mu.Lock()
				got = append(got, cosigned{c.Size, c.Hash})
				mu.Unlock()
			}); err != nil {
				errs <- fmt.Errorf("pusher %d: %w", g, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if len(got) < 10 {
		t.Fatalf("only %d cosignatures were handed out; the test did not exercise the witness", len(got))
	}
	onMain, onFork := 0, 0
	for _, c := range got {
		if bytes.Equal(c.root, main.tree.HashAt(c.size)) {
			onMain++
		}
		if bytes.Equal(c.root, fork.tree.HashAt(c.size)) {
			onFork++
		}
	}
	if onMain != len(got) && onFork != len(got) {
		t.Fatalf("of %d cosignatures, %d fit the main history and %d the fork: the witness cosigned both", len(got), onMain, onFork)
	}
	t.Logf("%d cosignatures, all on one history (main %d, fork %d)", len(got), onMain, onFork)
}

// pushRandomly is pusher g of TestConcurrentPushersNeverGetInconsistentCosignatures: it pushes
// checkpoints of random sizes from one of the two histories (both already grown to their full
// size) until deadline, following the witness's answers, and hands each cosigned checkpoint to
// cosigned. It runs on its own goroutine, so it returns what went wrong.
func pushRandomly(main, fork *testLog, g int, f *fixture, deadline time.Time, cosigned func(*log.Checkpoint)) error {
	rng := rand.New(rand.NewPCG(uint64(g), 1))
	l := main
	if g%2 == 1 {
		l = fork
	}
	maxSize := l.tree.Size()
	var old uint64
	for i := 0; i < 40 && time.Now().Before(deadline); i++ {
		size := min(old+uint64(rng.IntN(10)), maxSize)
		cp, err := l.signCheckpoint(size)
		if err != nil {
			return err
		}
		var p [][]byte
		if old > 0 {
			p, _ = l.tree.ConsistencyProof(old, size)
		}
		body := (&Request{OldSize: old, Proof: p, Checkpoint: cp}).Marshal()
		r, err := tryPost(f.srv.URL, body)
		if err != nil {
			return err
		}
		switch r.status {
		case http.StatusOK:
			c, err := verifyCosigned(cp, r.body, f.cos.Verifier())
			if err != nil {
				return err
			}
			cosigned(c)
			old = size
		case http.StatusConflict:
			n, err := strconv.ParseUint(strings.TrimSpace(r.body), 10, 64)
			if err != nil {
				return fmt.Errorf("409 body %q: %w", r.body, err)
			}
			old = n
		case http.StatusUnprocessableEntity, http.StatusBadRequest:
			// The other history got there first, or the
			// recorded size is beyond ours: start again from it.
			old = 0
		default:
			return fmt.Errorf("unexpected answer %d %q", r.status, r.body)
		}
	}
	return nil
}

// TestForkAfterCosigningIsRefused is the split-view attack in one place: the
// log key signs two different trees of the same size.
func TestForkAfterCosigningIsRefused(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 16)
	fork := newTestLog(t, "example.com/log", "log", "evil", 16)
	f := startWitness(t, t.TempDir(), 0, 0, l.config(t))
	if _, err := f.w.AddCheckpoint(context.Background(), l.request(t, 0, 9)); err != nil {
		t.Fatal(err)
	}
	_, err := f.w.AddCheckpoint(context.Background(), fork.request(t, 9, 9))
	if StatusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("fork at the same size: %v (status %d), want 422", err, StatusOf(err))
	}
	forkCP := fork.checkpoint(t, 9)
	if _, err := note.Open(forkCP, note.VerifierList(l.config(t).Verifier)); err != nil {
		t.Fatalf("the fork must be validly signed by the log key for this test to mean anything: %v", err)
	}
	if st := f.w.Logs()[0]; st.Size != 9 || !bytes.Equal(st.Root, l.tree.HashAt(9)) {
		t.Fatalf("the recorded state changed to size %d root %x", st.Size, st.Root)
	}
}
