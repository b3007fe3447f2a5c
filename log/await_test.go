package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/tessera"
)

// gatedAwaiter passes the storage's Await through, except that while closed it holds every answer
// until opened or its context ends, while failing it fails every call that ends, and while
// forging it answers with the checkpoint's signature altered. waiting counts the calls under way.
type gatedAwaiter struct {
	Awaiter
	mu      sync.Mutex
	open    chan struct{}
	fail    error
	forge   bool
	waiting atomic.Int32
}

func (g *gatedAwaiter) setForge(forge bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forge = forge
}

func newGatedAwaiter(a Awaiter) *gatedAwaiter {
	g := &gatedAwaiter{Awaiter: a, open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedAwaiter) set(open bool, fail error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail = fail
	select {
	case <-g.open:
		if !open {
			g.open = make(chan struct{})
		}
	default:
		if open {
			close(g.open)
		}
	}
}

func (g *gatedAwaiter) Await(ctx context.Context, f tessera.IndexFuture) (tessera.Index, []byte, error) {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	idx, cp, err := g.Awaiter.Await(ctx, f)
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return tessera.Index{}, nil, ctx.Err()
	}
	g.mu.Lock()
	fail, forge := g.fail, g.forge
	g.mu.Unlock()
	if fail != nil {
		return tessera.Index{}, nil, fail
	}
	if forge && err == nil {
		// The signature line ends in base64 and a newline; changing the last base64 character
		// keeps the note well formed and makes the signature wrong.
		cp = bytes.Clone(cp)
		if c := &cp[len(cp)-2]; *c == 'A' {
			*c = 'B'
		} else {
			*c = 'A'
		}
	}
	return idx, cp, err
}

func TestWritesWaitForTheirCheckpoint(t *testing.T) {
	ctx := context.Background()
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	var gate *gatedAwaiter
	tl := openTestLog(t, t.TempDir(), testLogOpts{pebble: true, writeTimeout: 300 * time.Millisecond,
		awaiter: func(a Awaiter) Awaiter { gate = newGatedAwaiter(a); return gate }})
	write := func(ctx context.Context, i int) error {
		tle, err := tl.CreateEntry(ctx, p256.request(t, fmt.Appendf(nil, "artifact %d", i), p256.pkixVerifier(t)))
		if err != nil {
			return err
		}
		ip := tle.GetInclusionProof()
		return proof.VerifyInclusion(hasher, uint64(ip.GetLogIndex()), uint64(ip.GetTreeSize()), hasher.HashLeaf(tle.GetCanonicalizedBody()), ip.GetHashes(), ip.GetRootHash())
	}
	next := 0
	// waiting starts the next write with ctx behind the closed gate and returns once its entry
	// is appended, so that it is waiting for its checkpoint.
	waiting := func(ctx context.Context) <-chan error {
		gate.set(false, nil)
		errs := make(chan error, 1)
		next++
		go func(i int) { errs <- write(ctx, i) }(next)
		waitForCount(t, "integrated size", tl.store.IntegratedSize, uint64(next))
		return errs
	}
	t.Run("concurrent writes each get a checkpoint that covers them", func(t *testing.T) {
		errs := make(chan error, 50)
		for range 50 {
			next++
			go func(i int) { errs <- write(ctx, i) }(next)
		}
		for range 50 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a write no checkpoint covers within the write timeout is pending with ErrWriteTimeout", func(t *testing.T) {
		gate.set(false, nil)
		defer gate.set(true, nil)
		next++
		var pe *PendingError
		if err := write(ctx, next); !errors.As(err, &pe) || !errors.Is(err, ErrWriteTimeout) {
			t.Fatalf("CreateEntry = %v, want a *PendingError with ErrWriteTimeout", err)
		}
	})
	t.Run("a write whose caller gives up is pending with the caller's cause", func(t *testing.T) {
		defer gate.set(true, nil)
		cause := errors.New("the client went away")
		cctx, cancel := context.WithCancelCause(ctx)
		// The entry is appended before the write waits; cancelling any time after still makes it
		// pending, and cancelling before it appends makes Add fail, which is no PendingError.
		errs := waiting(cctx)
		cancel(cause)
		var pe *PendingError
		if err := <-errs; !errors.As(err, &pe) || !errors.Is(err, cause) {
			t.Fatalf("CreateEntry = %v, want a *PendingError with the caller's cause", err)
		}
	})
	t.Run("a write waiting when the awaiter fails gets a storage error, and the next write succeeds", func(t *testing.T) {
		errs := waiting(ctx)
		gate.set(true, errors.New("storage closed"))
		var se *StorageError
		if err := <-errs; !errors.As(err, &se) {
			t.Fatalf("CreateEntry = %v, want a *StorageError", err)
		}
		gate.set(true, nil)
		next++
		if err := write(ctx, next); err != nil {
			t.Fatalf("the write after the awaiter recovered: %v", err)
		}
	})
	t.Run("a write covered by a checkpoint that fails verification is pending, the log stays writable, and the next write succeeds", func(t *testing.T) {
		gate.setForge(true)
		next++
		var pe *PendingError
		if err := write(ctx, next); !errors.As(err, &pe) || !strings.Contains(err.Error(), "failed verification") {
			t.Fatalf("CreateEntry = %v, want a *PendingError saying the checkpoint failed verification", err)
		}
		if err := tl.Writable(ctx); err != nil {
			t.Fatalf("Writable after a checkpoint failed verification = %v, want nil", err)
		}
		gate.setForge(false)
		next++
		if err := write(ctx, next); err != nil {
			t.Fatalf("the write after checkpoints verify again: %v", err)
		}
	})
	t.Run("Close ends the watch, and a write waiting then fails", func(t *testing.T) {
		errs := waiting(ctx)
		if err := tl.Log.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errs; err == nil {
			t.Fatal("CreateEntry waiting when the log closed succeeded")
		}
		// The gate answers only when its context ends: if Close left the watch running, its
		// Await would still be under way.
		if n := gate.waiting.Load(); n != 0 {
			t.Fatalf("%d Await calls still under way after Close returned, want 0", n)
		}
	})
}
