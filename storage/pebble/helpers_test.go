package pebble

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "quire.test/pebble"

// testKeys returns a fresh Ed25519 note signer and verifier for testOrigin.
func testKeys(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatalf("generating note key: %v", err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("loading note signer: %v", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("loading note verifier: %v", err)
	}
	return s, v
}

// testLog is a running appender on a real Pebble database.
type testLog struct {
	s        *Storage
	add      tessera.AddFn
	reader   tessera.LogReader
	shutdown func(context.Context) error
}

// fastOptions publishes promptly and batches briefly, as an interactive log would.
func fastOptions(signer note.Signer) *tessera.AppendOptions {
	return tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(256, 5*time.Millisecond).
		WithCheckpointInterval(20 * time.Millisecond)
}

// openTestLog opens dir and starts an appender; closing is the caller's job (closeTestLog), so
// restart tests can reopen the same directory.
func openTestLog(t testing.TB, cfg Config, opts *tessera.AppendOptions) *testLog {
	t.Helper()
	ctx := context.Background()
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", cfg.Path, err)
	}
	a, shutdown, r, err := tessera.NewAppender(ctx, d, opts)
	if err != nil {
		t.Fatalf("NewAppender: %v", err)
	}
	return &testLog{s: d.(*Storage), add: a.Add, reader: r, shutdown: shutdown}
}

func (l *testLog) close(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.shutdown(ctx); err != nil {
		t.Errorf("appender shutdown: %v", err)
	}
	if err := l.s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// appendAll adds entries in order from one goroutine (so their order in the log is theirs) and
// resolves every future.
func (l *testLog) appendAll(t testing.TB, entries [][]byte) []tessera.Index {
	t.Helper()
	ctx := context.Background()
	futures := make([]tessera.IndexFuture, len(entries))
	for i, e := range entries {
		futures[i] = l.add(ctx, tessera.NewEntry(e))
	}
	out := make([]tessera.Index, len(entries))
	for i, f := range futures {
		idx, err := f()
		if err != nil {
			t.Fatalf("resolving entry %d: %v", i, err)
		}
		out[i] = idx
	}
	return out
}

// awaitSize blocks until a checkpoint for at least size is published and returns it, verified.
func (l *testLog) awaitSize(t testing.TB, v note.Verifier, size uint64) *log.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if size == 0 {
		raw, err := l.s.ReadCheckpoint(ctx)
		if err != nil {
			t.Fatalf("ReadCheckpoint: %v", err)
		}
		return parseCheckpoint(t, v, raw)
	}
	_, raw, err := l.s.Await(ctx, func() (tessera.Index, error) { return tessera.Index{Index: size - 1}, nil })
	if err != nil {
		t.Fatalf("Await(index %d): %v", size-1, err)
	}
	return parseCheckpoint(t, v, raw)
}

func parseCheckpoint(t testing.TB, v note.Verifier, raw []byte) *log.Checkpoint {
	t.Helper()
	cp, _, _, err := log.ParseCheckpoint(raw, testOrigin, v)
	if err != nil {
		t.Fatalf("parsing checkpoint %q: %v", raw, err)
	}
	return cp
}

// entryData returns n distinct entries of varied length, labelled so runs never collide.
func entryData(label string, from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		k := from + i
		out[i] = fmt.Appendf(nil, "%s entry %d %s", label, k, make([]byte, k%37))
	}
	return out
}

// rfc6962Root computes the RFC 6962 root of entries independently of the driver.
func rfc6962Root(t testing.TB, entries [][]byte) []byte {
	t.Helper()
	if len(entries) == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, e := range entries {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
			t.Fatalf("compact append: %v", err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatalf("compact root: %v", err)
	}
	return root
}
