package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

func (e signedEntry) proto() *rekorpb.CreateEntryRequest {
	return &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest: e.digest,
			Signature: &rekorpb.Signature{
				Content: e.sig,
				Verifier: &rekorpb.Verifier{
					Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: e.pubDER}},
					KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				},
			},
		},
	}}
}

func dialGRPC(t *testing.T, l *testLog) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(l.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing gRPC: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestGRPC(t *testing.T) {
	l := startLog(t)
	rekor := rekorpb.NewRekorClient(dialGRPC(t, l))
	quire := quirev1.NewLogClient(dialGRPC(t, l))
	k := newSigner(t)
	e := signArtifact(t, k, []byte("over gRPC"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var created int64
	t.Run("CreateEntry returns a verifiable entry", func(t *testing.T) {
		tle, err := rekor.CreateEntry(ctx, e.proto())
		if err != nil {
			t.Fatalf("CreateEntry: %v", err)
		}
		if err := l.verifyAnswer(tle); err != nil {
			t.Fatal(err)
		}
		created = tle.GetLogIndex()
	})

	t.Run("a duplicate is AlreadyExists with x-log-index metadata", func(t *testing.T) {
		var hdr metadata.MD
		_, err := rekor.CreateEntry(ctx, e.proto(), grpc.Header(&hdr))
		if status.Code(err) != codes.AlreadyExists {
			t.Fatalf("error %v, want AlreadyExists", err)
		}
		if got := hdr.Get("x-log-index"); len(got) != 1 || got[0] != strconv.FormatInt(created, 10) {
			t.Errorf("x-log-index %v, want %d", got, created)
		}
	})

	t.Run("a bad signature is InvalidArgument naming the signature", func(t *testing.T) {
		bad := e
		bad.sig = signArtifact(t, newSigner(t), []byte("over gRPC")).sig
		_, err := rekor.CreateEntry(ctx, bad.proto())
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("error %v, want InvalidArgument", err)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "signature") {
			t.Errorf("message %q does not name the signature", msg)
		}
	})

	t.Run("a message over the size limit is refused", func(t *testing.T) {
		big := e
		big.pubDER = make([]byte, 100<<10)
		_, err := rekor.CreateEntry(ctx, big.proto())
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("error %v, want ResourceExhausted", err)
		}
	})

	t.Run("the checkpoint read over gRPC is the one served over HTTP", func(t *testing.T) {
		body, err := rekor.GetCheckpoint(ctx, &emptypb.Empty{})
		if err != nil {
			t.Fatalf("GetCheckpoint: %v", err)
		}
		served := l.do(http.MethodGet, "/checkpoint", nil)
		if string(body.GetData()) != string(served.body) {
			t.Errorf("gRPC checkpoint %q, HTTP %q", body.GetData(), served.body)
		}
	})

	t.Run("tiles and entry bundles read over gRPC match HTTP", func(t *testing.T) {
		cp, err := l.openCheckpoint(l.do(http.MethodGet, "/checkpoint", nil).body)
		if err != nil {
			t.Fatal(err)
		}
		n := "000.p/" + strconv.FormatUint(cp.Size, 10)
		tile, err := rekor.GetTile(ctx, &rekorpb.TileRequest{L: 0, N: n})
		if err != nil {
			t.Fatalf("GetTile: %v", err)
		}
		if want := l.do(http.MethodGet, "/tile/0/"+n, nil).body; string(tile.GetData()) != string(want) {
			t.Errorf("gRPC tile differs from HTTP tile")
		}
		bundle, err := rekor.GetEntryBundle(ctx, &rekorpb.EntryBundleRequest{N: n})
		if err != nil {
			t.Fatalf("GetEntryBundle: %v", err)
		}
		if want := l.do(http.MethodGet, "/tile/entries/"+n, nil).body; string(bundle.GetData()) != string(want) {
			t.Errorf("gRPC entry bundle differs from HTTP bundle")
		}
		if _, err := rekor.GetTile(ctx, &rekorpb.TileRequest{L: 0, N: "../etc"}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad tile path: error %v, want InvalidArgument", err)
		}
		if _, err := rekor.GetTile(ctx, &rekorpb.TileRequest{L: 0, N: "x999/000"}); status.Code(err) != codes.NotFound {
			t.Errorf("tile beyond the log: error %v, want NotFound", err)
		}
	})

	t.Run("the health service reports serving", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(dialGRPC(t, l)).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v %v", resp, err)
		}
	})

	t.Run("reflection lists the Rekor and quire.v1 services", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(dialGRPC(t, l)).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, s := range resp.GetListServicesResponse().GetService() {
			names[s.GetName()] = true
		}
		for _, want := range []string{"dev.sigstore.rekor.v2.Rekor", "quire.v1.Log"} {
			if !names[want] {
				t.Errorf("reflection does not list %s: %v", want, names)
			}
		}
	})

	t.Run("quire.v1 answers over gRPC with the same codes", func(t *testing.T) {
		entry, err := quire.GetEntry(ctx, &quirev1.GetEntryRequest{Index: uint64(created)})
		if err != nil {
			t.Fatalf("GetEntry: %v", err)
		}
		if err := l.verifyAnswer(entry.GetTransparencyLogEntry()); err != nil {
			t.Fatal(err)
		}
		if _, err := quire.GetEntry(ctx, &quirev1.GetEntryRequest{Index: 1 << 40}); status.Code(err) != codes.NotFound {
			t.Errorf("entry beyond the log: error %v, want NotFound", err)
		}
		if _, err := quire.GetConsistencyProof(ctx, &quirev1.GetConsistencyProofRequest{First: 3, Second: 2}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("reversed sizes: error %v, want InvalidArgument", err)
		}
		if p, err := quire.GetConsistencyProof(ctx, &quirev1.GetConsistencyProofRequest{First: 0, Second: 1}); err != nil || len(p.GetHashes()) != 0 || p.GetSecond() != 1 {
			t.Errorf("from the empty tree: %v, %v; want an empty proof to size 1", p, err)
		}
	})
}
