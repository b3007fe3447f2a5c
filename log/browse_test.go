package log

import (
	"context"
	"errors"
	"fmt"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

func TestCheckpointsAreListedNewestFirst(t *testing.T) {
	ctx := context.Background()
	tl := openTestLog(t, t.TempDir(), testLogOpts{pebble: true})
	s := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	for i := range 3 {
		if _, err := tl.CreateEntry(ctx, s.request(t, fmt.Appendf(nil, "entry %d", i), s.pkixVerifier(t))); err != nil {
			t.Fatal(err)
		}
	}
	all, err := tl.Checkpoints(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 || all[0].Size != 3 {
		t.Fatalf("%d checkpoints, the first of size %d; want the latest, 3, first", len(all), all[0].Size)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Size >= all[i-1].Size {
			t.Fatalf("checkpoint %d has size %d after %d: not newest first", i, all[i].Size, all[i-1].Size)
		}
	}
	t.Run("a page starts below the size given", func(t *testing.T) {
		page, err := tl.Checkpoints(ctx, all[0].Size, 1)
		if err != nil || len(page) != 1 || page[0].Size != all[1].Size {
			t.Fatalf("Checkpoints(%d, 1) = %v, %v; want the one of size %d", all[0].Size, page, err, all[1].Size)
		}
	})
	t.Run("the root of each is its tree's", func(t *testing.T) {
		for _, cp := range all {
			c, err := tl.ConsistencyProof(ctx, cp.Size, 0)
			if err != nil || string(c.FirstRoot) != string(cp.Root) {
				t.Fatalf("checkpoint of size %d: root %x, the tree's %x (%v)", cp.Size, cp.Root, c.FirstRoot, err)
			}
		}
	})
	t.Run("a log whose storage cannot list them says so", func(t *testing.T) {
		posix := openTestLog(t, t.TempDir(), testLogOpts{})
		if _, err := posix.Checkpoints(ctx, 0, 10); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Checkpoints on POSIX storage = %v, want ErrUnsupported", err)
		}
	})
}
