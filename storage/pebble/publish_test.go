package pebble

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
)

// TestPublishedCheckpointsOnlyGrow reads the checkpoint as fast as it can while writers append:
// sizes seen never go down, and each one is the checkpoint kept in the history for its size.
func TestPublishedCheckpointsOnlyGrow(t *testing.T) {
	signer, verifier := testKeys(t)
	opts := fastOptions(signer).WithBatching(64, 2*time.Millisecond).WithCheckpointInterval(5 * time.Millisecond)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, opts)
	defer l.close(t)
	ctx := context.Background()

	const writers, perWriter = 8, 300
	done := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for _, e := range entryData("grow", w*perWriter, perWriter) {
				if _, err := l.add(ctx, tessera.NewEntry(e))(); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[uint64][]byte{}
	var last uint64
	deadline := time.Now().Add(time.Minute)
	for reading := true; reading && time.Now().Before(deadline); {
		select {
		case <-done:
			reading = false
		default:
		}
		raw, err := l.s.ReadCheckpoint(ctx)
		if err != nil {
			t.Fatalf("ReadCheckpoint: %v", err)
		}
		cp := parseCheckpoint(t, verifier, raw)
		if cp.Size < last {
			t.Fatalf("checkpoint size went from %d down to %d", last, cp.Size)
		}
		last = cp.Size
		seen[cp.Size] = raw
		time.Sleep(time.Millisecond)
	}
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	if final := l.awaitSize(t, verifier, writers*perWriter); final.Size != writers*perWriter {
		t.Fatalf("final checkpoint size %d, want %d", final.Size, writers*perWriter)
	}
	for size, raw := range seen {
		got, err := l.s.CheckpointAt(ctx, size)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("CheckpointAt(%d) = %q, %v; want the checkpoint read while live", size, got, err)
		}
	}
}

// TestRepublishesAnUnchangedTree checks that a quiet log re-signs its checkpoint once the
// republish interval passes (Ed25519 notes are deterministic, so the record's time tells).
func TestRepublishesAnUnchangedTree(t *testing.T) {
	signer, verifier := testKeys(t)
	opts := fastOptions(signer).WithCheckpointRepublishInterval(100 * time.Millisecond)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, opts)
	defer l.close(t)

	l.appendAll(t, entryData("republish", 0, 3))
	l.awaitSize(t, verifier, 3)
	first := l.s.pub.Load()
	deadline := time.Now().Add(10 * time.Second)
	for l.s.pub.Load() == first && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	again := l.s.pub.Load()
	if again == first || again.size != 3 || again.atNano <= first.atNano {
		t.Fatalf("after the republish interval: size %d at %d, want size 3 republished after %d", again.size, again.atNano, first.atNano)
	}
}

// TestAddAfterCloseFails checks that a closed log refuses entries instead of hanging.
func TestAddAfterCloseFails(t *testing.T) {
	signer, _ := testKeys(t)
	ctx := context.Background()
	d, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := d.(*Storage)
	a, _, err := s.Appender(ctx, fastOptions(signer))
	if err != nil {
		t.Fatalf("Appender: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := a.Add(ctx, tessera.NewEntry([]byte("late")))(); err == nil {
		t.Fatal("Add after Close succeeded, want an error")
	}
	if _, err := s.ReadTile(ctx, 0, 0, 1); err == nil {
		t.Fatal("ReadTile after Close succeeded, want an error")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
