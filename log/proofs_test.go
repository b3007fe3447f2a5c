package log

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// gcReader hides every partial tile and bundle narrower than the one the
// latest checkpoint implies, as a driver that garbage collects them would.
type gcReader struct {
	tessera.LogReader
	size uint64
}

func (r gcReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	if p != 0 && p != layout.PartialTileSize(level, index, r.size) {
		return nil, fmt.Errorf("tile %d/%d.p/%d: %w", level, index, p, fs.ErrNotExist)
	}
	return r.LogReader.ReadTile(ctx, level, index, p)
}

func (r gcReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	if p != 0 && p != layout.PartialTileSize(0, index, r.size) {
		return nil, fmt.Errorf("bundle %d.p/%d: %w", index, p, fs.ErrNotExist)
	}
	return r.LogReader.ReadEntryBundle(ctx, index, p)
}

func TestProofs(t *testing.T) {
	ctx := context.Background()
	tl := openTestLog(t, t.TempDir(), testLogOpts{})
	// Appended in rounds so that several checkpoints, and partial tiles of
	// several widths, are published on the way.
	const n = 700
	w := appendRounds(t, tl, 7, n/7)
	pairs := []struct{ a, b uint64 }{{0, 1}, {1, 2}, {5, 9}, {255, 256}, {256, 257}, {0, 511}, {511, 512}, {300, 513}, {100, 699}, {699, 700}, {17, 700}, {256, 700}}

	t.Run("proofs equal Tessera's ProofBuilder and verify against independent roots", func(t *testing.T) {
		for _, tc := range pairs {
			ref, err := client.NewProofBuilder(ctx, tc.b, tl.readTile)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.InclusionProof(ctx, tc.a)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tl.proofs.inclusion(ctx, tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalHashes(got, want) {
				t.Fatalf("inclusion(%d, %d) differs from ProofBuilder", tc.a, tc.b)
			}
			// Asked again, the proof comes from the nodes the first one cached.
			if again, err := tl.proofs.inclusion(ctx, tc.a, tc.b); err != nil || !equalHashes(again, want) {
				t.Fatalf("inclusion(%d, %d) asked again differs from ProofBuilder (%v)", tc.a, tc.b, err)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(w.bodies[tc.a])
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, tc.a, tc.b, leaf, got, w.root(t, tc.b)); err != nil {
				t.Fatalf("inclusion(%d, %d): %v", tc.a, tc.b, err)
			}
			// Twice: once checking the part above the level-0 tile, once from
			// the part kept.
			for range 2 {
				if checked, err := tl.proofs.verifiedInclusion(ctx, tc.a, tc.b, leaf, w.root(t, tc.b)); err != nil || !equalHashes(checked, want) {
					t.Fatalf("verifiedInclusion(%d, %d) differs from ProofBuilder (%v)", tc.a, tc.b, err)
				}
			}
			if tc.a == 0 {
				continue
			}
			want, err = ref.ConsistencyProof(ctx, tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			got, err = tl.proofs.consistency(ctx, tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalHashes(got, want) {
				t.Fatalf("consistency(%d, %d) differs from ProofBuilder", tc.a, tc.b)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, tc.a, tc.b, got, w.root(t, tc.a), w.root(t, tc.b)); err != nil {
				t.Fatalf("consistency(%d, %d): %v", tc.a, tc.b, err)
			}
		}
	})
	t.Run("past sizes are served when narrow partial tiles are gone", func(t *testing.T) {
		l, err := New(ctx, Config{Reader: gcReader{LogReader: tl.reader, size: n}, VerifierKey: tl.vkey, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range pairs {
			p, err := l.InclusionProof(ctx, tc.a, tc.b)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", tc.a, tc.b, err)
			}
			if !bytes.Equal(p.GetRootHash(), w.root(t, tc.b)) {
				t.Fatalf("root of size %d differs", tc.b)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(w.bodies[tc.a])
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, tc.a, tc.b, leaf, p.GetHashes(), w.root(t, tc.b)); err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", tc.a, tc.b, err)
			}
		}
	})
}

// faultReader flips one bit of the hash at slot of every version of hash
// tile level/index it reads, or with bundle set the byte at slot of entry
// bundle index, as a storage fault would.
type faultReader struct {
	tessera.LogReader
	bundle             bool
	level, index, slot uint64
}

func (r faultReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	b, err := r.LogReader.ReadEntryBundle(ctx, index, p)
	if err != nil || !r.bundle || index != r.index || uint64(len(b)) <= r.slot {
		return b, err
	}
	b = bytes.Clone(b)
	b[r.slot] ^= 1
	return b, nil
}

func (r faultReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	t, err := r.LogReader.ReadTile(ctx, level, index, p)
	if err != nil || r.bundle || level != r.level || index != r.index || uint64(len(t)) <= r.slot*hashSize {
		return t, err
	}
	t = bytes.Clone(t)
	t[r.slot*hashSize+7] ^= 1
	return t, nil
}

func TestProofsNeverServeAStorageFault(t *testing.T) {
	ctx := context.Background()
	tl := openTestLog(t, t.TempDir(), testLogOpts{})
	const n = 700
	w := appendRounds(t, tl, 1, n)
	root := w.root(t, n)
	for _, tc := range []struct {
		name string
		r    faultReader
		// bad are the entries whose proofs or leaf hashes use the flipped hash,
		// badEntry those Entry must refuse.
		bad, badEntry func(i uint64) bool
	}{
		// Entry hashes the leaf from its bundle, and the proof of the flipped
		// leaf itself does not contain its hash: it may serve that proof, which
		// verifies, and does so at the right edge.
		{name: "a wrong leaf hash fails the proofs of its full tile", r: faultReader{level: 0, index: 1, slot: 9}, bad: func(i uint64) bool { return i/256 == 1 }, badEntry: func(i uint64) bool { return i/256 == 1 }},
		// Entries 0 to 511 have the root of entries 512 to 699 in their proofs.
		{name: "a wrong leaf hash in the right edge's partial tile fails every proof", r: faultReader{level: 0, index: 2, slot: 100}, bad: func(uint64) bool { return true }, badEntry: func(i uint64) bool { return i != 612 }},
		// Entries 256 to 511 have tile 0's root in their proofs, and entries 512
		// to 699 its parent.
		{name: "a wrong tile root one level up fails the proofs that use it", r: faultReader{level: 1, index: 0, slot: 0}, bad: func(i uint64) bool { return i >= 256 }, badEntry: func(i uint64) bool { return i >= 256 }},
		// Byte 5 of bundle 1 is in entry 256's data, after its 2-byte length.
		{name: "a wrong entry in a bundle is not served with a proof", r: faultReader{bundle: true, index: 1, slot: 5}, bad: func(uint64) bool { return false }, badEntry: func(i uint64) bool { return i == 256 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.LogReader = tl.reader
			l, err := New(ctx, Config{Reader: tc.r, VerifierKey: tl.vkey, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			// Twice, so that proofs also come from what the first pass kept.
			for range 2 {
				for i := range uint64(n) {
					leaf := rfc6962.DefaultHasher.HashLeaf(w.bodies[i])
					p, err := l.InclusionProof(ctx, i, 0)
					e, eErr := l.Entry(ctx, i)
					if tc.bad(i) != (err != nil) {
						t.Fatalf("entry %d: InclusionProof gave error %v, want one: %t", i, err, tc.bad(i))
					}
					if tc.badEntry(i) != (eErr != nil) {
						t.Fatalf("entry %d: Entry gave error %v, want one: %t", i, eErr, tc.badEntry(i))
					}
					if err == nil {
						if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, n, leaf, p.GetHashes(), root); err != nil {
							t.Fatalf("entry %d: proof InclusionProof served does not verify: %v", i, err)
						}
					}
					// The lane's proof in parts answers only entries of full
					// tiles, and refuses what InclusionProof refuses there.
					tp, ok, tErr := l.TileInclusionProof(ctx, i, 0)
					if full := inFullTile(i, n); ok != (full && !tc.bad(i)) || (tErr != nil) != (full && tc.bad(i)) {
						t.Fatalf("entry %d: TileInclusionProof answered %t with error %v, want an answer: %t", i, ok, tErr, full && !tc.bad(i))
					}
					if ok {
						if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, n, leaf, append(tp.Lower[:], tp.Upper...), root); err != nil {
							t.Fatalf("entry %d: proof TileInclusionProof served does not verify: %v", i, err)
						}
					}
					if eErr == nil {
						leaf := rfc6962.DefaultHasher.HashLeaf(e.TransparencyLogEntry.GetCanonicalizedBody())
						if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, n, leaf, e.TransparencyLogEntry.GetInclusionProof().GetHashes(), root); err != nil {
							t.Fatalf("entry %d: proof Entry served does not verify: %v", i, err)
						}
					}
				}
			}
		})
	}
}

// appendRounds appends rounds of perRound entries to tl, each round
// integrated before the next starts, and returns what it wrote.
func appendRounds(t *testing.T, tl *testLog, rounds, perRound int) written {
	t.Helper()
	ctx := context.Background()
	var w written
	for round := range rounds {
		var futures []tessera.IndexFuture
		var datas [][]byte
		for i := range perRound {
			d := fmt.Appendf(nil, "leaf %d/%d", round, i)
			futures = append(futures, tl.appender.Add(ctx, tessera.NewEntry(d)))
			datas = append(datas, d)
		}
		for i, f := range futures {
			idx, _, err := tl.awaiter.Await(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			w.add(idx.Index, datas[i])
		}
	}
	cp, err := tl.latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(rounds * perRound); cp.size != want {
		t.Fatalf("log size %d, want %d", cp.size, want)
	}
	return w
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestNodeHasherIsRFC6962(t *testing.T) {
	for i := range 64 {
		l, r := bytes.Repeat([]byte{byte(i)}, 32), bytes.Repeat([]byte{byte(255 - i)}, 32)
		if got, want := hasher.HashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Fatalf("HashChildren(%x, %x) = %x, want %x", l, r, got, want)
		}
	}
}
