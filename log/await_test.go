package log

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/tessera"
)

// gatedAwaiter passes the storage's Await through, except that while closed it holds every answer
// until opened or its context ends, and while failing it fails every call that ends.
type gatedAwaiter struct {
	Awaiter
	mu   sync.Mutex
	open chan struct{}
	fail error
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
	fail := g.fail
	g.mu.Unlock()
	if fail != nil {
		return tessera.Index{}, nil, fail
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
		gate.set(false, nil)
		defer gate.set(true, nil)
		cause := errors.New("the client went away")
		cctx, cancel := context.WithCancelCause(ctx)
		errs := make(chan error, 1)
		next++
		go func(i int) { errs <- write(cctx, i) }(next)
		// The entry is appended before the write waits; cancelling any time after still makes it
		// pending, and cancelling before it appends makes Add fail, which is no PendingError.
		waitForCount(t, "integrated size", tl.store.IntegratedSize, uint64(next))
		cancel(cause)
		var pe *PendingError
		if err := <-errs; !errors.As(err, &pe) || !errors.Is(err, cause) {
			t.Fatalf("CreateEntry = %v, want a *PendingError with the caller's cause", err)
		}
	})
	t.Run("a write waiting when the awaiter fails gets a storage error, and the next write succeeds", func(t *testing.T) {
		gate.set(false, nil)
		errs := make(chan error, 1)
		next++
		go func(i int) { errs <- write(ctx, i) }(next)
		waitForCount(t, "integrated size", tl.store.IntegratedSize, uint64(next))
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
}
