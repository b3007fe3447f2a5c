package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/storage/index"
)

// written is what the test knows independently of the log: every leaf body
// by index, from the answers.
type written struct {
	bodies map[uint64][]byte
}

func (w *written) add(i uint64, b []byte) {
	if w.bodies == nil {
		w.bodies = map[uint64][]byte{}
	}
	w.bodies[i] = b
}

// root computes the RFC 6962 root of the first size leaves without the log.
func (w *written) root(t *testing.T, size uint64) []byte {
	t.Helper()
	if size == 0 {
		// RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string.
		empty := sha256.Sum256(nil)
		return empty[:]
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for i := uint64(0); i < size; i++ {
		b, ok := w.bodies[i]
		if !ok {
			t.Fatalf("no known body for index %d", i)
		}
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// checkAnswer verifies a CreateEntry answer the way a client would.
func checkAnswer(t *testing.T, tl *testLog, tle *rekorv1.TransparencyLogEntry, wantBody []byte, wantKind string) {
	t.Helper()
	wantID, err := rekor.KeyID(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tl.LogID(), wantID) || tl.Origin() != "quire.test/log" {
		t.Errorf("LogID %x, Origin %q", tl.LogID(), tl.Origin())
	}
	if !bytes.Equal(tle.GetLogId().GetKeyId(), wantID) {
		t.Errorf("logId.keyId = %x, want %x", tle.GetLogId().GetKeyId(), wantID)
	}
	if tle.GetKindVersion().GetKind() != wantKind || tle.GetKindVersion().GetVersion() != "0.0.2" {
		t.Errorf("kindVersion = %v", tle.GetKindVersion())
	}
	if !bytes.Equal(tle.GetCanonicalizedBody(), wantBody) {
		t.Errorf("canonicalizedBody differs from the canonical leaf")
	}
	ip := tle.GetInclusionProof()
	if ip.GetLogIndex() != tle.GetLogIndex() {
		t.Errorf("proof index %d, entry index %d", ip.GetLogIndex(), tle.GetLogIndex())
	}
	v, err := note.NewVerifier(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(ip.GetCheckpoint().GetEnvelope()), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint envelope does not verify: %v", err)
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(ip.GetTreeSize()) || !bytes.Equal(cp.Hash, ip.GetRootHash()) {
		t.Errorf("checkpoint (%d, %x) is not the proof's (%d, %x)", cp.Size, cp.Hash, ip.GetTreeSize(), ip.GetRootHash())
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(wantBody)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), cp.Size, leaf, ip.GetHashes(), cp.Hash); err != nil {
		t.Errorf("inclusion proof does not verify: %v", err)
	}
}

func waitIndexed(t *testing.T, l *Log, size uint64) {
	t.Helper()
	waitForCount(t, "index", l.IndexedSize, size)
}

// waitForCount polls count (for at most 20s) until it reaches size; what names it in the failure.
func waitForCount(t *testing.T, what string, count func(context.Context) (uint64, error), size uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stuck at %d, want %d", what, got, size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogEndToEnd(t *testing.T) {
	for _, backend := range []struct {
		name   string
		pebble bool
	}{{"Tessera's POSIX driver", false}, {"Quire's Pebble driver", true}} {
		t.Run("on "+backend.name, func(t *testing.T) { testLogEndToEnd(t, backend.pebble) })
	}
}

func testLogEndToEnd(t *testing.T, usePebble bool) {
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey := newTestKeys(t)
	idx, err := index.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tl := openTestLog(t, filepath.Join(dir, "log"), testLogOpts{pebble: usePebble, index: idx, skey: skey, vkey: vkey})
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	ed := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ED25519)
	var w written
	seenCPs := map[uint64]string{} // checkpoints handed out in answers, by size

	// More than one entry bundle, so proofs cross full and partial tiles.
	const n = 300
	reqs := make([]*rekorpb.CreateEntryRequest, n)
	for i := range reqs {
		reqs[i] = p256.request(t, fmt.Appendf(nil, "artifact %d", i), p256.pkixVerifier(t))
	}
	t.Run("concurrent writes each get a verifiable answer", func(t *testing.T) {
		// The writers only write; their answers are checked here, on the test's goroutine.
		var wg sync.WaitGroup
		errs := make([]error, n)
		tles := make([]*rekorv1.TransparencyLogEntry, n)
		bodies := make([][]byte, n)
		for i, req := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, bodies[i], errs[i] = tl.Validate(req); errs[i] == nil {
					tles[i], errs[i] = tl.CreateEntry(ctx, req)
				}
			}()
		}
		wg.Wait()
		seen := make(map[int64]bool)
		for i, tle := range tles {
			if errs[i] != nil {
				t.Errorf("request %d: %v", i, errs[i])
				continue
			}
			checkAnswer(t, tl, tle, bodies[i], rekor.KindHashedRekord)
			if seen[tle.GetLogIndex()] {
				t.Errorf("index %d given twice", tle.GetLogIndex())
			}
			seen[tle.GetLogIndex()] = true
			w.add(uint64(tle.GetLogIndex()), bodies[i])
			seenCPs[uint64(tle.GetInclusionProof().GetTreeSize())] = tle.GetInclusionProof().GetCheckpoint().GetEnvelope()
		}
	})
	t.Run("every shared vector is accepted by the log", func(t *testing.T) {
		for _, v := range append(readVectors(t, hashedRekordVectors), readVectors(t, dsseVectors)...) {
			kind, _, _ := tl.Validate(v.req)
			tle, err := tl.CreateEntry(ctx, v.req)
			if err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
			checkAnswer(t, tl, tle, v.leaf, kind)
			w.add(uint64(tle.GetLogIndex()), v.leaf)
		}
	})
	dssePayload := []byte(`{"_type":"https://in-toto.io/Statement/v1","e2e":1}`)
	var dsseIndex uint64
	t.Run("a DSSE envelope is logged as a dsse entry", func(t *testing.T) {
		req := dsseRequest(t, dssePayload, ed)
		_, body, err := tl.Validate(req)
		if err != nil {
			t.Fatal(err)
		}
		tle, err := tl.CreateEntry(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, tl, tle, body, rekor.KindDSSE)
		w.add(uint64(tle.GetLogIndex()), body)
		dsseIndex = uint64(tle.GetLogIndex())
	})
	first := map[string]uint64{}
	for i, b := range w.bodies {
		first[string(b)] = i
	}
	t.Run("a duplicate gets a DuplicateError with the first index", func(t *testing.T) {
		for _, req := range []*rekorpb.CreateEntryRequest{reqs[0], reqs[n-1]} {
			_, body, _ := tl.Validate(req)
			_, err := tl.CreateEntry(ctx, req)
			var de *DuplicateError
			if !errors.As(err, &de) {
				t.Fatalf("CreateEntry(duplicate) = %v, want *DuplicateError", err)
			}
			if want := first[string(body)]; de.Index != want {
				t.Fatalf("duplicate reported at %d, first copy is at %d", de.Index, want)
			}
			if !strings.Contains(de.Error(), fmt.Sprintf("index %d", de.Index)) {
				t.Fatalf("duplicate message %q does not name the index", de.Error())
			}
		}
	})
	t.Run("a bad request appends nothing", func(t *testing.T) {
		before, err := tl.latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bad := p256.request(t, []byte("bad"), p256.pkixVerifier(t))
		bad.GetHashedRekordRequestV002().Digest[0] ^= 1
		var ie *InvalidRequestError
		if _, err := tl.CreateEntry(ctx, bad); !errors.As(err, &ie) {
			t.Fatalf("CreateEntry(bad) = %v", err)
		}
		next, err := tl.reader.NextIndex(ctx)
		if err != nil || next != before.size {
			t.Fatalf("NextIndex = %d, %v; want %d", next, err, before.size)
		}
	})

	cp, err := tl.latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size := cp.size
	if size != uint64(len(w.bodies)) {
		t.Fatalf("log size %d, wrote %d entries", size, len(w.bodies))
	}
	if !bytes.Equal(cp.root, w.root(t, size)) {
		t.Fatal("log root is not the root of the entries written")
	}

	t.Run("Entry answers as CreateEntry does, with a proof to the latest checkpoint", func(t *testing.T) {
		for _, i := range []uint64{0, 255, 256, size - 1} {
			e, err := tl.Entry(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			info, err := rekor.ParseEntry(w.bodies[i])
			if err != nil {
				t.Fatal(err)
			}
			checkAnswer(t, tl, e.TransparencyLogEntry, w.bodies[i], info.Kind)
			if uint64(e.TransparencyLogEntry.GetLogIndex()) != i || !bytes.Equal(e.LeafHash, rfc6962.DefaultHasher.HashLeaf(w.bodies[i])) {
				t.Fatalf("entry %d has index %d, leaf hash %x", i, e.TransparencyLogEntry.GetLogIndex(), e.LeafHash)
			}
			if got := uint64(e.TransparencyLogEntry.GetInclusionProof().GetTreeSize()); got != size {
				t.Fatalf("entry %d is proven to tree size %d, want the latest, %d", i, got, size)
			}
		}
	})
	t.Run("inclusion proofs to past sizes verify against independent roots", func(t *testing.T) {
		for _, tc := range []struct{ index, size uint64 }{{0, 1}, {3, 10}, {100, 257}, {256, 300}, {299, size - 2}, {5, 0}} {
			p, err := tl.InclusionProof(ctx, tc.index, tc.size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", tc.index, tc.size, err)
			}
			s := tc.size
			if s == 0 {
				s = size
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(w.bodies[tc.index])
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, tc.index, s, leaf, p.GetHashes(), w.root(t, s)); err != nil {
				t.Fatalf("InclusionProof(%d, %d) does not verify: %v", tc.index, tc.size, err)
			}
		}
	})
	t.Run("consistency proofs carry independent roots and verify against them", func(t *testing.T) {
		for _, tc := range []struct {
			a, b   uint64
			hashes int // -1: any non-empty proof
		}{{1, 2, -1}, {7, 300, -1}, {256, 257, -1}, {100, size, -1}, {size - 1, 0, -1}, {0, 5, 0}, {0, 0, 0}, {9, 9, 0}, {size, 0, 0}} {
			c, err := tl.ConsistencyProof(ctx, tc.a, tc.b)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", tc.a, tc.b, err)
			}
			b := tc.b
			if b == 0 {
				b = size
			}
			if c.First != tc.a || c.Second != b || !bytes.Equal(c.FirstRoot, w.root(t, tc.a)) || !bytes.Equal(c.SecondRoot, w.root(t, b)) {
				t.Fatalf("ConsistencyProof(%d, %d) links %d (%x) to %d (%x)", tc.a, tc.b, c.First, c.FirstRoot, c.Second, c.SecondRoot)
			}
			if (tc.hashes < 0 && len(c.Hashes) == 0) || (tc.hashes >= 0 && len(c.Hashes) != tc.hashes) {
				t.Fatalf("ConsistencyProof(%d, %d) has %d hashes", tc.a, tc.b, len(c.Hashes))
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, tc.a, b, c.Hashes, w.root(t, tc.a), w.root(t, b)); err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", tc.a, tc.b, err)
			}
			if (b == size) != bytes.Equal(c.Checkpoint, cp.raw) {
				t.Fatalf("ConsistencyProof(%d, %d) carries checkpoint %q", tc.a, tc.b, c.Checkpoint)
			}
		}
	})
	t.Run("a consistency proof from the empty tree is empty and starts at the empty root", func(t *testing.T) {
		c, err := tl.ConsistencyProof(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		empty := sha256.Sum256(nil)
		if len(c.Hashes) != 0 || !bytes.Equal(c.FirstRoot, empty[:]) || c.Second != size {
			t.Fatalf("ConsistencyProof(0, 0) = %+v, want no hashes from root %x to size %d", c, empty, size)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 0, size, [][]byte{cp.root}, c.FirstRoot, c.SecondRoot); err == nil {
			t.Fatal("a non-empty proof from the empty tree verifies")
		}
	})
	t.Run("out-of-range requests get the documented errors", func(t *testing.T) {
		var ie *InvalidRequestError
		if _, err := tl.Entry(ctx, size); !errors.Is(err, ErrNotFound) {
			t.Errorf("Entry(size) = %v, want ErrNotFound", err)
		}
		if _, err := tl.InclusionProof(ctx, 10, 5); !errors.As(err, &ie) || ie.Field != "index" {
			t.Errorf("InclusionProof(10, 5) = %v, want invalid index", err)
		}
		if _, err := tl.InclusionProof(ctx, 1, size+1); !errors.Is(err, ErrNotFound) {
			t.Errorf("InclusionProof beyond the log = %v, want ErrNotFound", err)
		}
		if _, err := tl.ConsistencyProof(ctx, 5, 3); !errors.As(err, &ie) || ie.Field != "first" {
			t.Errorf("ConsistencyProof(5, 3) = %v, want invalid first", err)
		}
		if _, err := tl.ConsistencyProof(ctx, 1, size+1); !errors.Is(err, ErrNotFound) {
			t.Errorf("ConsistencyProof beyond the log = %v, want ErrNotFound", err)
		}
		if _, err := tl.ConsistencyProof(ctx, size+1, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("ConsistencyProof from beyond the log = %v, want ErrNotFound", err)
		}
		if _, err := tl.Checkpoint(ctx, size+1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Checkpoint beyond the log = %v, want ErrNotFound", err)
		}
		if _, err := tl.InclusionProofByLeafHash(ctx, []byte("short"), 0); !errors.As(err, &ie) || ie.Field != "leafHash" {
			t.Errorf("InclusionProofByLeafHash(short) = %v, want invalid leafHash", err)
		}
		if _, err := tl.InclusionProofByLeafHash(ctx, make([]byte, 32), 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("InclusionProofByLeafHash(unknown) = %v, want ErrNotFound", err)
		}
	})
	t.Run("past checkpoints are served from the history, if there is one", func(t *testing.T) {
		for s, env := range seenCPs {
			if s == size {
				continue
			}
			raw, err := tl.Checkpoint(ctx, s)
			if !usePebble {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Checkpoint(%d) without History = %v, want ErrUnsupported", s, err)
				}
				continue
			}
			if err != nil || string(raw) != env {
				t.Fatalf("Checkpoint(%d) = %q, %v; want the checkpoint handed out for that size", s, raw, err)
			}
			p, err := tl.InclusionProof(ctx, 0, s)
			if err != nil {
				t.Fatal(err)
			}
			if p.GetCheckpoint().GetEnvelope() != env {
				t.Fatalf("InclusionProof(0, %d) carries checkpoint %q, want %q", s, p.GetCheckpoint().GetEnvelope(), env)
			}
		}
	})
	t.Run("the latest checkpoint is served", func(t *testing.T) {
		raw, err := tl.Checkpoint(ctx, 0)
		if err != nil || !bytes.Equal(raw, cp.raw) {
			t.Fatalf("Checkpoint(0) = %q, %v", raw, err)
		}
	})

	waitIndexed(t, tl.Log, size)
	digestOf := func(req *rekorpb.CreateEntryRequest) string {
		k, err := rekor.FormatDigest(commonv1.HashAlgorithm_SHA2_256, req.GetHashedRekordRequestV002().GetDigest())
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	t.Run("search finds entries by artifact digest", func(t *testing.T) {
		for _, i := range []int{0, 150, n - 1} {
			_, body, _ := tl.Validate(reqs[i])
			got, err := tl.Search(ctx, SearchQuery{Digest: digestOf(reqs[i])}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Indices, []uint64{first[string(body)]}) || got.More {
				t.Fatalf("Search = %+v, want [%d] and no more", got, first[string(body)])
			}
		}
		ph := sha256.Sum256(dssePayload)
		got, err := tl.Search(ctx, SearchQuery{Digest: fmt.Sprintf("sha256:%x", ph)}, 0)
		if err != nil || !slices.Equal(got.Indices, []uint64{dsseIndex}) {
			t.Fatalf("Search(DSSE payload hash) = %v, %v; want [%d]", got, err, dsseIndex)
		}
		got, err = tl.Search(ctx, SearchQuery{Digest: "sha256:" + fmt.Sprintf("%064x", 0)}, 0)
		if err != nil || len(got.Indices) != 0 || got.More {
			t.Fatalf("Search(unknown) = %v, %v", got, err)
		}
	})
	t.Run("inclusion proofs by leaf hash verify", func(t *testing.T) {
		i := uint64(42)
		leaf := rfc6962.DefaultHasher.HashLeaf(w.bodies[i])
		p, err := tl.InclusionProofByLeafHash(ctx, leaf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(p.GetLogIndex()) != i {
			t.Fatalf("found at %d, want %d", p.GetLogIndex(), i)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leaf, p.GetHashes(), cp.root); err != nil {
			t.Fatal(err)
		}
	})

	tl.close()
	if err := idx.Close(); err != nil {
		t.Fatal(err)
	}
	idx2, err := index.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx2.Close() })
	tl2 := openTestLog(t, filepath.Join(dir, "log"), testLogOpts{pebble: usePebble, index: idx2, skey: skey, vkey: vkey})
	t.Run("search finds old entries after restart and indexes new ones", func(t *testing.T) {
		got, err := tl2.Search(ctx, SearchQuery{Digest: digestOf(reqs[7])}, 0)
		if err != nil || len(got.Indices) != 1 {
			t.Fatalf("Search after restart = %v, %v", got, err)
		}
		req := p256.request(t, []byte("after restart"), p256.pkixVerifier(t))
		tle, err := tl2.CreateEntry(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(tle.GetLogIndex()) != size {
			t.Fatalf("first entry after restart at %d, want %d", tle.GetLogIndex(), size)
		}
		waitIndexed(t, tl2.Log, size+1)
		got, err = tl2.Search(ctx, SearchQuery{Digest: digestOf(req)}, 0)
		if err != nil || !slices.Equal(got.Indices, []uint64{size}) {
			t.Fatalf("Search(new) = %v, %v", got, err)
		}
	})
	if usePebble {
		t.Run("a duplicate after restart gets the first index", func(t *testing.T) {
			_, body, _ := tl2.Validate(reqs[3])
			_, err := tl2.CreateEntry(ctx, reqs[3])
			var de *DuplicateError
			if !errors.As(err, &de) || de.Index != first[string(body)] {
				t.Fatalf("CreateEntry(old duplicate) = %v, want DuplicateError{%d}", err, first[string(body)])
			}
		})
	}
	t.Run("a read-only log refuses writes and still reads", func(t *testing.T) {
		ro, err := New(ctx, Config{Reader: tl2.reader, VerifierKey: vkey, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		before, err := tl2.reader.NextIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ro.CreateEntry(ctx, p256.request(t, []byte("frozen"), p256.pkixVerifier(t))); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("CreateEntry on a read-only log = %v, want ErrReadOnly", err)
		}
		if after, _ := tl2.reader.NextIndex(ctx); after != before {
			t.Fatalf("read-only write moved the log from %d to %d", before, after)
		}
		if _, err := ro.Entry(ctx, 0); err != nil {
			t.Fatalf("read-only Entry: %v", err)
		}
		if _, err := ro.Search(ctx, SearchQuery{Digest: digestOf(reqs[0])}, 0); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Search without an index = %v, want ErrUnsupported", err)
		}
	})
}

func TestCheckpointOfAnotherKeyIsRefused(t *testing.T) {
	tl := openTestLog(t, t.TempDir(), testLogOpts{})
	req := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	if _, err := tl.CreateEntry(context.Background(), req.request(t, []byte("x"), req.pkixVerifier(t))); err != nil {
		t.Fatal(err)
	}
	_, otherV := newTestKeys(t)
	l, err := New(context.Background(), Config{Reader: tl.reader, VerifierKey: otherV, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Entry(context.Background(), 0); err == nil {
		t.Fatal("a checkpoint signed by another key was accepted")
	}
}

func TestPushbackIsReported(t *testing.T) {
	tl := openTestLog(t, t.TempDir(), testLogOpts{pebble: true, pushback: 1})
	s := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	v := s.pkixVerifier(t)
	const n = 200
	reqs := make([]*rekorpb.CreateEntryRequest, n)
	for i := range reqs {
		reqs[i] = s.request(t, fmt.Appendf(nil, "pushback %d", i), v)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = tl.CreateEntry(context.Background(), req)
		}()
	}
	wg.Wait()
	var pushed, ok int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, tessera.ErrPushback):
			pushed++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if pushed == 0 || ok == 0 {
		t.Fatalf("%d accepted, %d pushed back; want some of each", ok, pushed)
	}
}

func TestFollowerRefusesAnIndexAheadOfTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	idx, err := index.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	if err := idx.Add(ctx, nil, nil, 1000); err != nil {
		t.Fatal(err)
	}
	tl := openTestLog(t, filepath.Join(dir, "log"), testLogOpts{pebble: true})
	s := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	if _, err := tl.CreateEntry(ctx, s.request(t, []byte("one"), s.pkixVerifier(t))); err != nil {
		t.Fatal(err)
	}
	tl.index = idx
	f := &follower{l: tl.Log, bundles: 1}
	if _, err := f.step(ctx); err == nil || !strings.Contains(err.Error(), "index covers 1000 entries but the log has 1") {
		t.Fatalf("step() = %v, want the index-ahead error", err)
	}
}
