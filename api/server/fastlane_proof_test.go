package server_test

import (
	"bytes"
	"context"
	"testing"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/server"
)

// TestTileProofJSONIsTheProofJSON: the lane's answer to an inclusion proof, put together from
// parts it keeps per tree and per tile, is byte for byte the answer net/http gives through the
// gateway's marshaler, for every entry of every full tile, in the latest tree and in past ones
// (which share tiles but not the hashes above them), from fresh parts and from kept ones.
func TestTileProofJSONIsTheProofJSON(t *testing.T) {
	ctx := context.Background()
	l := startLog(t)
	addEntries(t, rekorpb.NewRekorClient(dialGRPC(t, l)), 700, "parts")
	var parts server.ProofParts
	for range 2 {
		for _, size := range []uint64{0, 700, 256, 512, 513, 300} {
			checked := 0
			for i := range uint64(700) {
				want, err := l.lg.InclusionProof(ctx, i, size)
				if err != nil {
					// Beyond a past tree.
					continue
				}
				p, ok, err := l.lg.TileInclusionProof(ctx, i, size)
				if err != nil {
					t.Fatalf("entry %d in tree of %d: %v", i, size, err)
				}
				inFull := (i/256+1)*256 <= uint64(want.GetTreeSize())
				if ok != inFull {
					t.Fatalf("entry %d in tree of %d: TileInclusionProof answered %t, want %t", i, size, ok, inFull)
				}
				if !ok {
					continue
				}
				got, ok := parts.TileProofJSON(&p)
				if !ok {
					t.Fatalf("entry %d in tree of %d: the lane leaves its proof to net/http", i, size)
				}
				std, _ := server.AnswerJSON(want)
				if !bytes.Equal(got, std) {
					t.Fatalf("entry %d in tree of %d: the lane answers\n%s\nnet/http\n%s", i, size, got, std)
				}
				checked++
			}
			if checked == 0 {
				t.Fatalf("tree of %d: no proof checked", size)
			}
		}
	}
}
