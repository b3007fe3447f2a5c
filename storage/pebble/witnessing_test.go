package pebble

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"github.com/quirelog/quire/witness"
)

// TestWitnessOutageStallsPublicationOnly runs the driver fail-closed (tessera.WithWitnesses
// without FailOpen) against a real witness that can be switched off: while it is off, entries
// keep being integrated, no checkpoint is published, Await waits, and the publisher retries on its
// own timer rather than once per integrated batch; once it is back, publication covers everything.
func TestWitnessOutageStallsPublicationOnly(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	wskey, wvkey, err := witness.GenerateKey(rand.Reader, "witness.quire.test")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := witness.NewCosigner(wskey, nil)
	if err != nil {
		t.Fatal(err)
	}
	logEntry, err := witness.ParseLog(vkey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Path: filepath.Join(t.TempDir(), "witness"), Signer: cosigner, Logs: []witness.Log{logEntry}, RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var down atomic.Bool
	var requests atomic.Int64
	handler := w.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if down.Load() {
			http.Error(rw, "witness switched off", http.StatusServiceUnavailable)
			return
		}
		handler.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	wit, err := tessera.NewWitness(wvkey, u)
	if err != nil {
		t.Fatal(err)
	}
	group := tessera.NewWitnessGroup(1, wit)
	opts := fastOptions(signer).WithWitnesses(group, &tessera.WitnessOptions{Timeout: time.Second})
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, opts)
	defer l.close(t)
	ctx := context.Background()

	var published uint64
	t.Run("with the witness up every published checkpoint is cosigned", func(t *testing.T) {
		l.appendAll(t, entryData("up", 0, 10))
		_, raw, err := l.s.Await(ctx, func() (tessera.Index, error) { return tessera.Index{Index: 9}, nil })
		if err != nil {
			t.Fatal(err)
		}
		if !group.Satisfied(raw) {
			t.Fatalf("checkpoint not cosigned:\n%s", raw)
		}
		published = parseCheckpoint(t, verifier, raw).Size
	})

	const outage = 2 * time.Second
	t.Run("with the witness down entries integrate but nothing is published", func(t *testing.T) {
		down.Store(true)
		before := requests.Load()
		n := 0
		for start := time.Now(); time.Since(start) < outage; n++ {
			l.appendAll(t, entryData("down", n, 1))
			time.Sleep(10 * time.Millisecond)
		}
		asked := requests.Load() - before
		if size, _ := l.s.IntegratedSize(ctx); size != published+uint64(n) {
			t.Fatalf("integrated size %d, want %d", size, published+uint64(n))
		}
		// The second witness request from now belongs to an attempt that began after the last
		// entry integrated; once it is refused, no publication can still be under way from
		// before, so an unchanged checkpoint means the outage held it back.
		for wantAsked, deadline := requests.Load()+2, time.Now().Add(10*time.Second); requests.Load() < wantAsked; {
			if time.Now().After(deadline) {
				t.Fatalf("the publisher asked the witness %d times in 10s after the last entry, want 2", requests.Load()-wantAsked+2)
			}
			time.Sleep(10 * time.Millisecond)
		}
		raw, err := l.s.ReadCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if size := parseCheckpoint(t, verifier, raw).Size; size != published {
			t.Fatalf("published size went from %d to %d without the witness", published, size)
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, _, err := l.s.Await(wctx, func() (tessera.Index, error) { return tessera.Index{Index: published}, nil }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Await during the outage = %v, want the caller's deadline", err)
		}
		// One attempt per retry pause (publishRetryMin), not one per integrated batch (n of them).
		if limit := int64(outage/publishRetryMin) + 3; asked > limit {
			t.Fatalf("the publisher asked the witness %d times in %v over %d batches, want at most %d", asked, outage, n, limit)
		}
		published += uint64(n)
	})

	t.Run("once the witness is back the waiting entries are published, cosigned", func(t *testing.T) {
		down.Store(false)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, raw, err := l.s.Await(wctx, func() (tessera.Index, error) { return tessera.Index{Index: published - 1}, nil })
		if err != nil {
			t.Fatal(err)
		}
		if !group.Satisfied(raw) || parseCheckpoint(t, verifier, raw).Size < published {
			t.Fatalf("checkpoint after the outage:\n%s", raw)
		}
	})
}
