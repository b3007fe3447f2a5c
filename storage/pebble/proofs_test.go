package pebble

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
)

// TestProofsFromTilesVerify builds inclusion and consistency proofs with Tessera's client package
// from this driver's tiles, and verifies them with transparency-dev/merkle against signed
// checkpoints fetched through the client, for every tree size published along the way.
func TestProofsFromTilesVerify(t *testing.T) {
	signer, verifier := testKeys(t)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "db")}, fastOptions(signer))
	defer l.close(t)
	ctx := context.Background()

	type tree struct {
		size uint64
		root []byte
	}
	var all [][]byte
	var trees []tree
	for _, n := range []int{1, 2, 253, 256, 1, 700, 31} {
		entries := entryData("proofs", len(all), n)
		l.appendAll(t, entries)
		all = append(all, entries...)
		l.awaitSize(t, verifier, uint64(len(all)))
		cp, _, _, err := client.FetchCheckpoint(ctx, l.reader.ReadCheckpoint, verifier, testOrigin)
		if err != nil {
			t.Fatalf("FetchCheckpoint: %v", err)
		}
		trees = append(trees, tree{size: cp.Size, root: cp.Hash})
	}

	for _, tr := range trees {
		t.Run("inclusion proofs verify at size "+itoa(tr.size), func(t *testing.T) {
			pb, err := client.NewProofBuilder(ctx, tr.size, l.reader.ReadTile)
			if err != nil {
				t.Fatalf("NewProofBuilder: %v", err)
			}
			for _, i := range sampleIndices(tr.size) {
				p, err := pb.InclusionProof(ctx, i)
				if err != nil {
					t.Fatalf("InclusionProof(%d): %v", i, err)
				}
				leaf := rfc6962.DefaultHasher.HashLeaf(all[i])
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, tr.size, leaf, p, tr.root); err != nil {
					t.Fatalf("inclusion of %d in %d: %v", i, tr.size, err)
				}
			}
		})
	}
	for i, older := range trees {
		for _, newer := range trees[i+1:] {
			t.Run("consistency proof verifies from "+itoa(older.size)+" to "+itoa(newer.size), func(t *testing.T) {
				pb, err := client.NewProofBuilder(ctx, newer.size, l.reader.ReadTile)
				if err != nil {
					t.Fatalf("NewProofBuilder: %v", err)
				}
				p, err := pb.ConsistencyProof(ctx, older.size, newer.size)
				if err != nil {
					t.Fatalf("ConsistencyProof: %v", err)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.size, newer.size, p, older.root, newer.root); err != nil {
					t.Fatalf("consistency: %v", err)
				}
			})
		}
	}
}

// sampleIndices picks the edges of the tree and of its bundles, and a spread in between.
func sampleIndices(size uint64) []uint64 {
	idx := []uint64{0, size - 1, size / 2}
	for i := uint64(255); i < size; i += 256 {
		idx = append(idx, i)
	}
	for i := uint64(7); i < size; i += 97 {
		idx = append(idx, i)
	}
	return idx
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
