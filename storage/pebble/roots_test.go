package pebble

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
)

type rootsCase struct {
	name      string
	steps     []int // entries added, then awaited, per step
	batchSize uint
}

func rootsCases() []rootsCase {
	cases := []rootsCase{
		{name: "a single entry", steps: []int{1}, batchSize: 256},
		{name: "exactly one full bundle", steps: []int{256}, batchSize: 256},
		{name: "one short of a full bundle then the last one", steps: []int{255, 1}, batchSize: 64},
		{name: "small batches crossing bundle boundaries", steps: []int{3, 100, 200, 1, 300}, batchSize: 7},
		{name: "one entry per batch", steps: []int{5, 5, 5}, batchSize: 1},
		{name: "a full level-1 tile and the first level-2 node", steps: []int{65536, 300}, batchSize: 4096},
	}
	rng := rand.New(rand.NewPCG(2, 6))
	for i := range 6 {
		c := rootsCase{name: fmt.Sprintf("random split %d", i), batchSize: []uint{1, 13, 256, 1024}[rng.IntN(4)]}
		// One-entry batches cost POSIX a file sync per entry; keep those runs short.
		most := 700
		if c.batchSize == 1 {
			most = 40
		}
		for range 1 + rng.IntN(5) {
			c.steps = append(c.steps, 1+rng.IntN(most))
		}
		cases = append(cases, c)
	}
	return cases
}

// TestRootsAndTilesMatchPOSIX feeds the same entries in the same order to this driver and to
// Tessera's POSIX driver and checks the root against an independent RFC 6962 computation and every
// tile and entry bundle, for every tree size published along the way, byte for byte.
func TestRootsAndTilesMatchPOSIX(t *testing.T) {
	signer, verifier := testKeys(t)
	for _, tc := range rootsCases() {
		t.Run(tc.name, func(t *testing.T) {
			// Cancelling stops the POSIX driver's background publisher before its directory goes.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := func() *tessera.AppendOptions {
				return tessera.NewAppendOptions().
					WithCheckpointSigner(signer).
					WithBatching(tc.batchSize, 2*time.Millisecond).
					WithCheckpointInterval(100 * time.Millisecond).
					WithGarbageCollectionInterval(0).
					WithPushback(1 << 20)
			}
			pl := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "pebble")}, opts())
			defer pl.close(t)
			pd, err := posix.New(ctx, posix.Config{Path: filepath.Join(t.TempDir(), "posix")})
			if err != nil {
				t.Fatalf("posix.New: %v", err)
			}
			pa, pshutdown, preader, err := tessera.NewAppender(ctx, pd, opts())
			if err != nil {
				t.Fatalf("posix NewAppender: %v", err)
			}
			defer func() {
				if err := pshutdown(ctx); err != nil {
					t.Errorf("posix shutdown: %v", err)
				}
			}()
			posixLog := &testLog{add: pa.Add}

			var all [][]byte
			sizes := []uint64{}
			for step, n := range tc.steps {
				// Tessera's queue can hand a batch flushed by its age timer to the sequencer after
				// the next batch, flushed by size, so POSIX may order entries otherwise than they
				// were added; this driver must not. POSIX goes first, and both logs get its order.
				entries := entryData(tc.name, len(all), n)
				ordered := make([][]byte, n)
				for i, idx := range posixLog.appendAll(t, entries) {
					pos := idx.Index - uint64(len(all))
					if idx.IsDup || pos >= uint64(n) || ordered[pos] != nil {
						t.Fatalf("step %d entry %d: posix index %+v, want a distinct one in [%d, %d)", step, i, idx, len(all), len(all)+n)
					}
					ordered[pos] = entries[i]
				}
				for i, idx := range pl.appendAll(t, ordered) {
					if idx.IsDup || idx.Index != uint64(len(all)+i) {
						t.Fatalf("step %d entry %d: pebble index %+v, want %d, the order it was added in", step, i, idx, len(all)+i)
					}
				}
				all = append(all, ordered...)
				size := uint64(len(all))
				sizes = append(sizes, size)

				cp := pl.awaitSize(t, verifier, size)
				if cp.Size != size {
					t.Fatalf("step %d: checkpoint size %d, want %d", step, cp.Size, size)
				}
				if want := rfc6962Root(t, all); !bytes.Equal(cp.Hash, want) {
					t.Fatalf("step %d: root %x, want RFC 6962 root %x", step, cp.Hash, want)
				}
				for _, old := range sizes {
					compareResources(t, pl.reader, preader, old, size)
				}
			}
		})
	}
}

// compareResources checks every tile and bundle a client of a tree of size old would fetch.
// Both drivers return the exact partial resource while the tile is still partial at size cur;
// once it is full, this driver answers with the full tile, as POSIX does after its garbage
// collector removes the partial file.
func compareResources(t *testing.T, got, want tessera.LogReader, old, cur uint64) {
	t.Helper()
	ctx := context.Background()
	wantWidth := func(level, index uint64, p uint8) uint8 {
		if p != 0 && layout.PartialTileSize(level, index, cur) == 0 {
			return 0
		}
		return p
	}
	for level := uint64(0); old>>(layout.TileHeight*level) > 0; level++ {
		nodes := old >> (layout.TileHeight * level)
		for index := uint64(0); index*layout.TileWidth < nodes; index++ {
			p := layout.PartialTileSize(level, index, old)
			g, err := got.ReadTile(ctx, level, index, p)
			if err != nil {
				t.Fatalf("size %d: pebble tile %d/%d.p/%d: %v", old, level, index, p, err)
			}
			w, err := want.ReadTile(ctx, level, index, wantWidth(level, index, p))
			if err != nil {
				t.Fatalf("size %d: posix tile %d/%d: %v", old, level, index, err)
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("size %d (now %d): tile %d/%d.p/%d differs: pebble %d bytes, posix %d bytes", old, cur, level, index, p, len(g), len(w))
			}
		}
	}
	for index := uint64(0); index*layout.EntryBundleWidth < old; index++ {
		p := layout.PartialTileSize(0, index, old)
		g, err := got.ReadEntryBundle(ctx, index, p)
		if err != nil {
			t.Fatalf("size %d: pebble bundle %d.p/%d: %v", old, index, p, err)
		}
		w, err := want.ReadEntryBundle(ctx, index, wantWidth(0, index, p))
		if err != nil {
			t.Fatalf("size %d: posix bundle %d: %v", old, index, err)
		}
		if !bytes.Equal(g, w) {
			t.Fatalf("size %d (now %d): bundle %d.p/%d differs: pebble %d bytes, posix %d bytes", old, cur, index, p, len(g), len(w))
		}
	}
}
