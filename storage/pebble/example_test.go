package pebble_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"time"

	"github.com/quirelog/quire/storage/pebble"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// What the example submits, as an outside program would: 5,000 submissions, one in ten a
// resubmission of an entry already sent.
const (
	exampleSubmissions = 5000
	exampleDupEvery    = 10
)

// This program uses the driver the way a stranger to the package would: only
// pebble.New, tessera.NewAppender and Tessera's client package, with a real note
// signer. It appends entries with duplicates among them, checks that each
// duplicate is given its first copy's index, verifies every entry's inclusion
// proof built from the log's own tiles against the signed checkpoint, closes the
// log, reopens the directory and finds the same tree.
func Example() {
	dir, err := os.MkdirTemp("", "quire-example-")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer os.RemoveAll(dir)

	if err := appendVerifyReopen(dir); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// submitted 5000 entries: 4500 new, 500 duplicates each given its first copy's index
	// verified 4500 entries and inclusion proofs against the checkpoint of size 4500
	// reopened: size 4500, same root; a resubmitted old entry keeps its index
}

func appendVerifyReopen(dir string) error {
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.quire.test/log")
	if err != nil {
		return fmt.Errorf("generating log key: %w", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return fmt.Errorf("loading signer: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("loading verifier: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(256, 20*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond).
		// Every submission is in flight at once, so the outstanding limit must
		// not push any of them back.
		WithPushback(2 * exampleSubmissions)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Duplicates are drawn only from entries already submitted, so the first
	// copy of each is unambiguous even while both are still in flight.
	var unique [][]byte
	submissions := make([][]byte, 0, exampleSubmissions)
	firstOf := make([]int, 0, exampleSubmissions) // position in unique
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := range exampleSubmissions {
		if i%exampleDupEvery == exampleDupEvery-1 {
			u := rng.IntN(len(unique))
			submissions = append(submissions, unique[u])
			firstOf = append(firstOf, u)
			continue
		}
		unique = append(unique, fmt.Appendf(nil, "example entry %05d", len(unique)))
		submissions = append(submissions, unique[len(unique)-1])
		firstOf = append(firstOf, len(unique)-1)
	}

	drv, err := pebble.New(ctx, pebble.Config{Path: dir})
	if err != nil {
		return fmt.Errorf("opening pebble driver: %w", err)
	}
	st := drv.(*pebble.Storage)
	appCtx, appCancel := context.WithCancel(ctx)
	appender, shutdown, reader, err := tessera.NewAppender(appCtx, drv, opts)
	if err != nil {
		appCancel()
		return errors.Join(fmt.Errorf("creating appender: %w", err), st.Close())
	}

	futures := make([]tessera.IndexFuture, len(submissions))
	for i, e := range submissions {
		futures[i] = appender.Add(ctx, tessera.NewEntry(e))
	}
	uniqueIdx := make([]uint64, len(unique))
	isFirst := make([]bool, len(unique))
	var dups int
	var last tessera.IndexFuture
	var lastIdx uint64
	for i, f := range futures {
		idx, err := f()
		if err != nil {
			return fmt.Errorf("resolving submission %d: %w", i, err)
		}
		u := firstOf[i]
		switch {
		case !isFirst[u]:
			if idx.IsDup {
				return fmt.Errorf("submission %d is the first copy of entry %d but was marked a duplicate of index %d", i, u, idx.Index)
			}
			isFirst[u] = true
			uniqueIdx[u] = idx.Index
		case !idx.IsDup || idx.Index != uniqueIdx[u]:
			return fmt.Errorf("submission %d resubmits entry %d (index %d) but got index %d, IsDup %t", i, u, uniqueIdx[u], idx.Index, idx.IsDup)
		default:
			dups++
		}
		if last == nil || idx.Index > lastIdx {
			last, lastIdx = f, idx.Index
		}
	}
	fmt.Printf("submitted %d entries: %d new, %d duplicates each given its first copy's index\n", len(submissions), len(unique), dups)

	// Await returns once a published checkpoint covers the index, and the
	// checkpoint is the one that does.
	_, cpRaw, err := st.Await(ctx, last)
	if err != nil {
		return fmt.Errorf("awaiting index %d: %w", lastIdx, err)
	}
	cp, _, _, err := client.FetchCheckpoint(ctx, func(context.Context) ([]byte, error) { return cpRaw, nil }, verifier, verifier.Name())
	if err != nil {
		return fmt.Errorf("opening checkpoint for index %d: %w", lastIdx, err)
	}
	if cp.Size != uint64(len(unique)) {
		return fmt.Errorf("checkpoint size %d after %d distinct entries", cp.Size, len(unique))
	}
	if err := verifyEntries(ctx, reader, cp.Size, cp.Hash, unique, uniqueIdx); err != nil {
		return err
	}
	fmt.Printf("verified %d entries and inclusion proofs against the checkpoint of size %d\n", len(unique), cp.Size)

	if err := shutdown(ctx); err != nil {
		return fmt.Errorf("shutting down appender: %w", err)
	}
	appCancel()
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing pebble driver: %w", err)
	}

	drv, err = pebble.New(ctx, pebble.Config{Path: dir})
	if err != nil {
		return fmt.Errorf("reopening pebble driver: %w", err)
	}
	st = drv.(*pebble.Storage)
	appCtx, appCancel = context.WithCancel(ctx)
	defer appCancel()
	appender, shutdown, reader, err = tessera.NewAppender(appCtx, drv, opts)
	if err != nil {
		return errors.Join(fmt.Errorf("recreating appender: %w", err), st.Close())
	}
	reopened, _, _, err := client.FetchCheckpoint(ctx, reader.ReadCheckpoint, verifier, verifier.Name())
	if err != nil {
		return errors.Join(fmt.Errorf("reading checkpoint after reopening: %w", err), st.Close())
	}
	if reopened.Size != cp.Size || !bytes.Equal(reopened.Hash, cp.Hash) {
		return errors.Join(fmt.Errorf("reopened log has size %d root %x, closed with size %d root %x", reopened.Size, reopened.Hash, cp.Size, cp.Hash), st.Close())
	}
	again, err := appender.Add(ctx, tessera.NewEntry(unique[0]))()
	if err != nil {
		return errors.Join(fmt.Errorf("resubmitting entry 0 after reopening: %w", err), st.Close())
	}
	if !again.IsDup || again.Index != uniqueIdx[0] {
		return errors.Join(fmt.Errorf("entry 0 resubmitted after reopening got index %d IsDup %t, want index %d as a duplicate", again.Index, again.IsDup, uniqueIdx[0]), st.Close())
	}
	fmt.Printf("reopened: size %d, same root; a resubmitted old entry keeps its index\n", reopened.Size)

	if err := shutdown(ctx); err != nil {
		return errors.Join(fmt.Errorf("shutting down reopened appender: %w", err), st.Close())
	}
	appCancel()
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing reopened pebble driver: %w", err)
	}
	return nil
}

// verifyEntries reads every entry bundle and checks each entry's bytes at its
// index, then proves each one's inclusion with a proof built from the log's
// tiles, as a client that trusts nothing but the checkpoint would.
func verifyEntries(ctx context.Context, reader tessera.LogReader, size uint64, root []byte, entries [][]byte, indices []uint64) error {
	at := make(map[uint64][]byte, len(entries))
	for i, idx := range indices {
		at[idx] = entries[i]
	}
	var seen uint64
	for b := uint64(0); b*256 < size; b++ {
		bundle, err := client.GetEntryBundle(ctx, reader.ReadEntryBundle, b, size)
		if err != nil {
			return fmt.Errorf("reading entry bundle %d: %w", b, err)
		}
		seen += uint64(len(bundle.Entries))
		for j, got := range bundle.Entries {
			if want := at[b*256+uint64(j)]; !bytes.Equal(got, want) {
				return fmt.Errorf("entry %d is %q, submitted %q", b*256+uint64(j), got, want)
			}
		}
	}
	if seen != size {
		return fmt.Errorf("entry bundles hold %d entries, checkpoint says %d", seen, size)
	}
	pb, err := client.NewProofBuilder(ctx, size, reader.ReadTile)
	if err != nil {
		return fmt.Errorf("creating proof builder at size %d: %w", size, err)
	}
	for i, idx := range indices {
		p, err := pb.InclusionProof(ctx, idx)
		if err != nil {
			return fmt.Errorf("building inclusion proof for index %d: %w", idx, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, rfc6962.DefaultHasher.HashLeaf(entries[i]), p, root); err != nil {
			return fmt.Errorf("verifying inclusion of index %d in size %d: %w", idx, size, err)
		}
	}
	return nil
}
