package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quirelog/quire/api/client"
)

// failureTally counts how writes failed, with one message of each kind as evidence.
type failureTally struct {
	mu        sync.Mutex
	byKind    map[string]int
	sample    map[string]string
	created   int
	lastOK    time.Time
	noRetry   int
	serverErr int
}

func (f *failureTally) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind, msg := "transport", err.Error()
	var ae *client.APIError
	if errors.As(err, &ae) {
		kind, msg = fmt.Sprintf("%d %s", ae.StatusCode, ae.Code), ae.Message
		if ae.StatusCode >= 500 {
			f.serverErr++
			if ae.RetryAfter == 0 {
				f.noRetry++
			}
		}
	}
	f.byKind[kind]++
	if _, ok := f.sample[kind]; !ok {
		f.sample[kind] = msg
	}
}

func (f *failureTally) ok() {
	f.mu.Lock()
	f.created++
	f.lastOK = time.Now()
	f.mu.Unlock()
}

func (f *failureTally) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	kinds := make([]string, 0, len(f.byKind))
	for k := range f.byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "%d created", f.created)
	for _, k := range kinds {
		fmt.Fprintf(&b, "; %d × %s (%q)", f.byKind[k], k, f.sample[k])
	}
	return b.String()
}

// TestFullDisk puts the log's data directory on a 32 MiB tmpfs, fills it, and checks that
// writes fail with 503 and Retry-After, nothing acknowledged is lost, reads go on, and
// once space returns writes resume in the same process.
func TestFullDisk(t *testing.T) {
	quire, _ := buildBinaries(t)
	root := t.TempDir()
	mnt := filepath.Join(root, "small-disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED, NOT PASSED: cannot mount a 32 MiB tmpfs at %s (%v: %s); the full-disk test needs root", mnt, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := &serverTest{
		cfg:     serverConfig{QuireBin: quire, WorkDir: root, Writers: 16, Logf: t.Logf},
		dataDir: filepath.Join(mnt, "data"),
		logPath: filepath.Join(root, "quire.log"),
		ledger:  newLedger(),
		catchUp: 10 * time.Second,
	}
	if err := st.setup(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := st.start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.kill()

	// The ballast leaves a few MiB free, so the disk fills in seconds, and deleting it is how space
	// comes back.
	ballast := filepath.Join(mnt, "ballast")
	if err := fillBallast(ballast, mnt, 12<<20); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(st.baseURL, client.WithHTTPClient(st.hc))
	if err != nil {
		t.Fatal(err)
	}

	full := &failureTally{byKind: map[string]int{}, sample: map[string]string{}}
	runWriters(ctx, t, st, p, c, full, func() bool {
		full.mu.Lock()
		defer full.mu.Unlock()
		// Full: many server errors and no success for a while.
		return full.serverErr >= 200 && time.Since(full.lastOK) > 3*time.Second
	}, 90*time.Second)
	t.Logf("while the disk filled: %s", full)
	if p.exited() {
		t.Fatalf("quire serve DIED on a full disk (%v); its log:\n%s", p.err, tail(st.logPath, 6000))
	}
	if full.serverErr == 0 {
		t.Fatalf("the disk never filled up: %s", full)
	}
	full.mu.Lock()
	for kind, n := range full.byKind {
		if strings.HasPrefix(kind, "5") && !strings.HasPrefix(kind, "503 ") {
			t.Errorf("%d writes failed with %s (%q), want 503 with Retry-After", n, kind, full.sample[kind])
		}
	}
	if full.noRetry > 0 {
		t.Errorf("%d of %d server errors had no Retry-After", full.noRetry, full.serverErr)
	}
	full.mu.Unlock()

	t.Run("reads go on while the disk is full", func(t *testing.T) {
		raw, err := st.fetcher.ReadCheckpoint(ctx)
		if err != nil {
			t.Fatalf("reading the checkpoint: %v", err)
		}
		cp, err := st.parseCheckpoint(raw, "full disk")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.fetcher.ReadTile(ctx, 0, 0, partialWidth(cp.size)); err != nil {
			t.Fatalf("reading tile 0/0: %v", err)
		}
		if resp, err := st.hc.Get(st.baseURL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz on a full disk: %v %v", resp, err)
		}
	})
	t.Run("nothing acknowledged is lost while the disk is full", func(t *testing.T) {
		acks, cps := st.ledger.snapshot()
		if len(acks) == 0 {
			t.Fatal("no write succeeded before the disk filled")
		}
		if _, err := st.check(ctx, acks, cps); err != nil {
			t.Fatal(err)
		}
		if _, lost, inc, _ := st.ledger.counts(); lost != 0 || inc != 0 {
			t.Fatalf("%d acknowledged entries lost, %d checkpoints inconsistent: %v %v", lost, inc, st.ledger.lost, st.ledger.inconsistent)
		}
	})

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	after := &failureTally{byKind: map[string]int{}, sample: map[string]string{}}
	runWriters(ctx, t, st, p, c, after, func() bool {
		after.mu.Lock()
		defer after.mu.Unlock()
		return after.created >= 50
	}, 60*time.Second)
	t.Logf("after space came back: %s", after)
	t.Run("writes resume by themselves once space returns", func(t *testing.T) {
		if p.exited() {
			t.Fatalf("quire serve exited (%v); its log:\n%s", p.err, tail(st.logPath, 6000))
		}
		if after.created < 50 {
			t.Fatalf("got %d writes through in 60s after freeing space: %s; log:\n%s", after.created, after, tail(st.logPath, 6000))
		}
	})
	t.Run("nothing acknowledged is lost in the end", func(t *testing.T) {
		acks, cps := st.ledger.snapshot()
		if _, err := st.check(ctx, acks, cps); err != nil {
			t.Fatal(err)
		}
		if _, lost, inc, _ := st.ledger.counts(); lost != 0 || inc != 0 {
			t.Fatalf("%d acknowledged entries lost, %d checkpoints inconsistent: %v %v", lost, inc, st.ledger.lost, st.ledger.inconsistent)
		}
		if err := st.fsck(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// runWriters submits entries from st's writer count of goroutines until done says so, limit
// passes or the server exits, recording 201s in st's ledger and failures in tally.
func runWriters(ctx context.Context, t *testing.T, st *serverTest, p *proc, c *client.Client, tally *failureTally, done func() bool, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	for range st.cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			signer, err := client.GenerateKey(client.KeyECDSAP256)
			if err != nil {
				t.Error(err)
				return
			}
			for ctx.Err() == nil && !done() && !p.exited() {
				digest := make([]byte, 32)
				rand.Read(digest)
				req, err := client.NewHashedRekordRequest(signer, digest)
				if err != nil {
					t.Error(err)
					return
				}
				body, err := client.MarshalCreateEntryRequest(req)
				if err != nil {
					t.Error(err)
					return
				}
				raw, err := c.PostEntry(ctx, body)
				if err != nil {
					if ctx.Err() == nil {
						tally.add(err)
					}
					sleep(ctx, 20*time.Millisecond)
					continue
				}
				st.recordAnswer(raw, digest)
				tally.ok()
			}
		}()
	}
	wg.Wait()
}

// fillBallast writes a file that leaves about keep bytes free on the file system holding dir.
func fillBallast(path, dir string, keep uint64) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	free := fs.Bavail * uint64(fs.Bsize)
	if free <= keep {
		return fmt.Errorf("only %d bytes free on %s", free, dir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating ballast: %w", err)
	}
	// tmpfs only takes space for bytes written, so write them rather than truncate.
	if _, err := io.CopyN(f, rand.Reader, int64(free-keep)); err != nil {
		f.Close()
		return fmt.Errorf("writing ballast: %w", err)
	}
	return f.Close()
}

// partialWidth is the width of the rightmost level-0 tile of a tree of size n, 0 for a full one.
func partialWidth(n uint64) uint8 {
	if n >= 256 {
		return 0
	}
	return uint8(n)
}
