package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera/api"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/quirelog/quire/api/server"
)

// addEntries writes n entries for distinct artifacts over gRPC, up to 32 at a time, and waits
// for all of them.
func addEntries(t *testing.T, rekor rekorpb.RekorClient, n int, label string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := newSigner(t)
	reqs := make([]*rekorpb.CreateEntryRequest, n)
	for i := range reqs {
		reqs[i] = signArtifact(t, k, fmt.Appendf(nil, "%s artifact %d", label, i)).proto()
	}
	errs := make(chan error, n)
	slots := make(chan struct{}, 32)
	for _, req := range reqs {
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			_, err := rekor.CreateEntry(ctx, req)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("CreateEntry: %v", err)
		}
	}
}

// TestTileReadsAreTheSameOverRESTAndGRPC reads each tlog-tiles resource over REST (at / and under
// /api/v2/) and through the Rekor v2 gRPC methods, and asks for the same bytes and the same status
// from both, errors included.
func TestTileReadsAreTheSameOverRESTAndGRPC(t *testing.T) {
	l := startLog(t)
	rekor := rekorpb.NewRekorClient(dialGRPC(t, l))
	// 300 entries in two rounds: tile 0/000 and bundle 000 are full, 0/001 and bundle 001 are
	// partial of width 44, and 1/000 of width 1.
	addEntries(t, rekor, 10, "first round")
	addEntries(t, rekor, 290, "second round")
	cp, err := l.openCheckpoint(l.do(http.MethodGet, "/checkpoint", nil).body)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 300 {
		t.Fatalf("checkpoint size %d, want 300", cp.Size)
	}

	const (
		checkpoint = iota
		tile
		bundle
	)
	tests := []struct {
		name  string
		kind  int
		level uint32
		n     string
		// status is the HTTP status both must answer; for 200, size is the number of hashes in
		// the tile or entries in the bundle.
		status int
		size   int
	}{
		{name: "the checkpoint", kind: checkpoint, status: 200},
		{name: "a full tile", kind: tile, n: "000", status: 200, size: 256},
		{name: "a partial width of a full tile", kind: tile, n: "000.p/5", status: 200, size: 5},
		{name: "the widest partial of a full tile", kind: tile, n: "000.p/255", status: 200, size: 255},
		{name: "the current partial tile", kind: tile, n: "001.p/44", status: 200, size: 44},
		{name: "a narrower partial of the current partial tile", kind: tile, n: "001.p/5", status: 200, size: 5},
		{name: "a level 1 partial tile", kind: tile, level: 1, n: "000.p/1", status: 200, size: 1},
		{name: "a full entry bundle", kind: bundle, n: "000", status: 200, size: 256},
		{name: "a partial width of a full entry bundle", kind: bundle, n: "000.p/5", status: 200, size: 5},
		{name: "the current partial entry bundle", kind: bundle, n: "001.p/44", status: 200, size: 44},
		{name: "a narrower partial of the current partial entry bundle", kind: bundle, n: "001.p/1", status: 200, size: 1},

		{name: "a full tile that is still partial", kind: tile, n: "001", status: 404},
		{name: "a partial tile wider than the log", kind: tile, n: "001.p/45", status: 404},
		{name: "a tile beyond the log", kind: tile, n: "x001/000", status: 404},
		{name: "a full level 1 tile that is still partial", kind: tile, level: 1, n: "000", status: 404},
		{name: "a level 2 tile of a log of 300 entries", kind: tile, level: 2, n: "000.p/1", status: 404},
		{name: "a full entry bundle that is still partial", kind: bundle, n: "001", status: 404},
		{name: "a partial entry bundle wider than the log", kind: bundle, n: "001.p/45", status: 404},
		{name: "an entry bundle beyond the log", kind: bundle, n: "x001/000", status: 404},

		{name: "a tile at level 64", kind: tile, level: 64, n: "000", status: 400},
		{name: "a tile at level 63", kind: tile, level: 63, n: "000", status: 400},
		{name: "a tile at level 8, beyond any uint64 tree", kind: tile, level: 8, n: "000", status: 400},
		{name: "a level 7 tile other than the first", kind: tile, level: 7, n: "001", status: 400},
		{name: "a tile index with x on its last group", kind: tile, n: "x001", status: 400},
		{name: "a tile index of two digits", kind: tile, n: "01", status: 400},
		{name: "a tile index not in groups of three", kind: tile, n: "1234", status: 400},
		{name: "a tile index with a leading zero group", kind: tile, n: "x000/001", status: 400},
		{name: "a negative tile index", kind: tile, n: "-01", status: 400},
		{name: "an empty tile index", kind: tile, n: "", status: 400},
		{name: "a partial tile of width 0", kind: tile, n: "000.p/0", status: 400},
		{name: "a partial tile of width 256", kind: tile, n: "000.p/256", status: 400},
		{name: "a partial tile width with a leading zero", kind: tile, n: "000.p/07", status: 400},
		{name: "a partial marker without a width", kind: tile, n: "000.p", status: 400},
		{name: "an entry bundle index with x on its last group", kind: bundle, n: "x001", status: 400},
		{name: "an entry bundle index of one digit", kind: bundle, n: "0", status: 400},
		{name: "a partial entry bundle of width 0", kind: bundle, n: "000.p/0", status: 400},
		{name: "a partial entry bundle of width 256", kind: bundle, n: "000.p/256", status: 400},
		{name: "an entry bundle index with a leading zero group", kind: bundle, n: "x000/001", status: 400},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range tests {
		var path string
		var call func() (*httpbody.HttpBody, error)
		switch tt.kind {
		case checkpoint:
			path = "/checkpoint"
			call = func() (*httpbody.HttpBody, error) { return rekor.GetCheckpoint(ctx, &emptypb.Empty{}) }
		case tile:
			path = fmt.Sprintf("/tile/%d/%s", tt.level, tt.n)
			call = func() (*httpbody.HttpBody, error) {
				return rekor.GetTile(ctx, &rekorpb.TileRequest{L: tt.level, N: tt.n})
			}
		case bundle:
			path = "/tile/entries/" + tt.n
			call = func() (*httpbody.HttpBody, error) {
				return rekor.GetEntryBundle(ctx, &rekorpb.EntryBundleRequest{N: tt.n})
			}
		}
		for _, prefix := range []string{"", "/api/v2"} {
			t.Run(fmt.Sprintf("%s (%s%s) answers %d over REST and gRPC alike", tt.name, prefix, path, tt.status), func(t *testing.T) {
				rest := l.do(http.MethodGet, prefix+path, nil)
				got, err := call()
				grpcStatus := http.StatusOK
				if err != nil {
					grpcStatus = server.HTTPStatusOf(err)
				}
				if rest.status != tt.status || grpcStatus != tt.status {
					t.Fatalf("REST %d (%q), gRPC %d (%v); want %d from both", rest.status, rest.body, grpcStatus, err, tt.status)
				}
				if err != nil {
					if msg := status.Convert(err).Message(); string(rest.body) != msg+"\n" {
						t.Errorf("REST says %q, gRPC %q", rest.body, msg)
					}
					return
				}
				if string(got.GetData()) != string(rest.body) {
					t.Fatalf("gRPC answered %d bytes, REST %d", len(got.GetData()), len(rest.body))
				}
				if ct := rest.header.Get("Content-Type"); got.GetContentType() != ct {
					t.Errorf("gRPC content type %q, REST %q", got.GetContentType(), ct)
				}
				switch tt.kind {
				case tile:
					if len(rest.body) != tt.size*32 {
						t.Errorf("tile of %d bytes, want %d hashes", len(rest.body), tt.size)
					}
				case bundle:
					var b api.EntryBundle
					if err := b.UnmarshalText(rest.body); err != nil || len(b.Entries) != tt.size {
						t.Errorf("bundle of %d entries (%v), want %d", len(b.Entries), err, tt.size)
					}
				}
			})
		}
	}
}
