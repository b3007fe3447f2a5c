package quirev1_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
	// The vendored .proto files must describe exactly what these Go
	// packages register, since the generated code links against them.
	_ "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2/options"
	_ "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	_ "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	_ "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	_ "google.golang.org/genproto/googleapis/api/annotations"
	_ "google.golang.org/genproto/googleapis/api/httpbody"
)

// TestVendoredProtosMatchGoPackages compares every vendored file under
// proto/, as buf compiles it (testdata/vendored.binpb, written by
// scripts/gen-proto), with the descriptor its Go package registers. For
// rekor/v2 that is rekor-tiles v2.3.0's package, so the Rekor v2 OpenAPI
// document describes exactly the wire format Quire serves.
func TestVendoredProtosMatchGoPackages(t *testing.T) {
	raw, err := os.ReadFile("testdata/vendored.binpb")
	if err != nil {
		t.Fatalf("reading vendored descriptors: %v", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		t.Fatalf("decoding vendored descriptors: %v", err)
	}
	want := []string{
		"envelope.proto",
		"google/api/annotations.proto",
		"google/api/field_behavior.proto",
		"google/api/http.proto",
		"google/api/httpbody.proto",
		"protoc-gen-openapiv2/options/annotations.proto",
		"protoc-gen-openapiv2/options/openapiv2.proto",
		"rekor/v2/dsse.proto",
		"rekor/v2/entry.proto",
		"rekor/v2/hashedrekord.proto",
		"rekor/v2/rekor_service.proto",
		"rekor/v2/verifier.proto",
		"sigstore_common.proto",
		"sigstore_rekor.proto",
	}
	var got []string
	for _, f := range set.GetFile() {
		got = append(got, f.GetName())
	}
	slices.Sort(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("vendored files %v, want %v", got, want)
	}
	for _, vendored := range set.GetFile() {
		t.Run(vendored.GetName()+" describes what its Go package registers", func(t *testing.T) {
			fd, err := protoregistry.GlobalFiles.FindFileByPath(vendored.GetName())
			if err != nil {
				t.Fatalf("Go registry has no %s: %v", vendored.GetName(), err)
			}
			registered := protodesc.ToFileDescriptorProto(fd)
			if !proto.Equal(registered, vendored) {
				t.Errorf("%s differs from its Go package's descriptor\nGo package:\n%s\nvendored:\n%s",
					vendored.GetName(), prototext.Format(registered), prototext.Format(vendored))
			}
		})
	}
}

// recorder is a LogServer that answers with the request it received, so a
// test can see what the REST mapping turned an HTTP request into.
type recorder struct {
	quirev1.UnimplementedLogServer
	last proto.Message
}

func (r *recorder) GetEntry(_ context.Context, req *quirev1.GetEntryRequest) (*quirev1.Entry, error) {
	r.last = req
	return &quirev1.Entry{
		TransparencyLogEntry: &rekorv1.TransparencyLogEntry{LogIndex: int64(req.GetIndex())},
		LeafHash:             []byte{0xff, 0x00},
	}, nil
}

func (r *recorder) GetInclusionProof(_ context.Context, req *quirev1.GetInclusionProofRequest) (*rekorv1.InclusionProof, error) {
	r.last = req
	if req.Index == nil && req.GetLeafHash() == "" {
		return nil, status.Error(codes.InvalidArgument, "one of index and leaf_hash is required")
	}
	return &rekorv1.InclusionProof{TreeSize: int64(req.GetTreeSize())}, nil
}

func (r *recorder) GetConsistencyProof(_ context.Context, req *quirev1.GetConsistencyProofRequest) (*quirev1.ConsistencyProof, error) {
	r.last = req
	return &quirev1.ConsistencyProof{First: req.GetFirst(), Second: req.GetSecond()}, nil
}

func (r *recorder) Search(_ context.Context, req *quirev1.SearchRequest) (*quirev1.SearchResponse, error) {
	r.last = req
	return &quirev1.SearchResponse{Indices: []uint64{req.GetFromIndex()}}, nil
}

func (r *recorder) GetCheckpoint(_ context.Context, req *quirev1.GetCheckpointRequest) (*rekorv1.Checkpoint, error) {
	r.last = req
	if req.GetSize() == 99 {
		return nil, status.Error(codes.NotFound, "no checkpoint of size 99")
	}
	return &rekorv1.Checkpoint{Envelope: "example.com/log\n"}, nil
}

func TestRESTMapping(t *testing.T) {
	rec := &recorder{}
	mux := runtime.NewServeMux()
	if err := quirev1.RegisterLogHandlerServer(context.Background(), mux, rec); err != nil {
		t.Fatalf("registering gateway: %v", err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	index7 := uint64(7)
	index0 := uint64(0)
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantReq    proto.Message
		wantBody   string
	}{
		{
			name:       "an entry is fetched by the index in its path",
			path:       "/quire/v1/entries/42",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetEntryRequest{Index: 42},
			wantBody:   `"leafHash":"/wA="`,
		},
		{
			name:       "a negative entry index is a bad request",
			path:       "/quire/v1/entries/-1",
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "a non-numeric entry index is a bad request",
			path:       "/quire/v1/entries/abc",
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "an inclusion proof by index reads snake_case query parameters",
			path:       "/quire/v1/proof/inclusion?index=7&tree_size=10",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetInclusionProofRequest{Index: &index7, TreeSize: 10},
			wantBody:   `"treeSize":"10"`,
		},
		{
			name:       "an inclusion proof for index 0 still has the index set",
			path:       "/quire/v1/proof/inclusion?index=0&treeSize=1",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetInclusionProofRequest{Index: &index0, TreeSize: 1},
		},
		{
			name:       "an inclusion proof by leaf hash passes the hex through",
			path:       "/quire/v1/proof/inclusion?leaf_hash=ABCD&tree_size=3",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetInclusionProofRequest{LeafHash: "ABCD", TreeSize: 3},
		},
		{
			name:       "an inclusion proof with neither index nor leaf hash is the server's 400",
			path:       "/quire/v1/proof/inclusion?tree_size=3",
			wantStatus: http.StatusBadRequest,
			wantReq:    &quirev1.GetInclusionProofRequest{TreeSize: 3},
			wantBody:   `"message":"one of index and leaf_hash is required"`,
		},
		{
			name:       "a huge tree size is a bad request",
			path:       "/quire/v1/proof/inclusion?index=1&tree_size=99999999999999999999999",
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "a consistency proof reads first and second",
			path:       "/quire/v1/proof/consistency?first=3&second=8",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetConsistencyProofRequest{First: 3, Second: 8},
		},
		{
			name:       "a negative consistency size is a bad request",
			path:       "/quire/v1/proof/consistency?first=-3&second=8",
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "a search reads the digest and the page start",
			path:       "/quire/v1/search?digest=sha256:00ff&from_index=5",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.SearchRequest{Digest: "sha256:00ff", FromIndex: 5},
			wantBody:   `"indices":["5"]`,
		},
		{
			name:       "a past checkpoint is fetched by size",
			path:       "/quire/v1/checkpoints?size=12",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetCheckpointRequest{Size: 12},
			wantBody:   `"envelope":"example.com/log\n"`,
		},
		{
			name:       "a checkpoint the server lacks is a 404 with a status body",
			path:       "/quire/v1/checkpoints?size=99",
			wantStatus: http.StatusNotFound,
			wantReq:    &quirev1.GetCheckpointRequest{Size: 99},
			wantBody:   `"code":5`,
		},
		{
			// grpc-gateway ignores query parameters it does not know, so a
			// misspelt size asks for the latest checkpoint.
			name:       "an unknown query parameter is ignored",
			path:       "/quire/v1/checkpoints?sise=12",
			wantStatus: http.StatusOK,
			wantReq:    &quirev1.GetCheckpointRequest{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.last = nil
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("GET %s: status %d, want %d; body %s", tt.path, resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantReq != nil {
				if !proto.Equal(tt.wantReq, rec.last) {
					t.Errorf("request reaching the server: %v, want %v", rec.last, tt.wantReq)
				}
			} else if rec.last != nil {
				t.Errorf("request reached the server: %v", rec.last)
			}
			if tt.wantBody != "" {
				var compact bytes.Buffer
				if err := json.Compact(&compact, body); err != nil {
					t.Fatalf("body is not JSON: %v: %s", err, body)
				}
				want := strings.ReplaceAll(tt.wantBody, "\n", `\n`)
				if !strings.Contains(compact.String(), want) {
					t.Errorf("body %s does not contain %s", compact.String(), want)
				}
			}
		})
	}
}

// TestGRPCRoundTrip checks the generated client and server over a real
// gRPC connection on a loopback port.
func TestGRPCRoundTrip(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	s := grpc.NewServer()
	quirev1.RegisterLogServer(s, &recorder{})
	go s.Serve(lis)
	t.Cleanup(s.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	client := quirev1.NewLogClient(conn)

	t.Run("an entry comes back with the requested index", func(t *testing.T) {
		e, err := client.GetEntry(context.Background(), &quirev1.GetEntryRequest{Index: 9})
		if err != nil {
			t.Fatalf("GetEntry: %v", err)
		}
		if got := e.GetTransparencyLogEntry().GetLogIndex(); got != 9 {
			t.Errorf("log index %d, want 9", got)
		}
	})
	t.Run("a not-found checkpoint keeps its gRPC code", func(t *testing.T) {
		_, err := client.GetCheckpoint(context.Background(), &quirev1.GetCheckpointRequest{Size: 99})
		if status.Code(err) != codes.NotFound {
			t.Errorf("GetCheckpoint: %v, want NotFound", err)
		}
	})
}

// TestOpenAPIDocument checks the committed OpenAPI file lists every REST
// route and says how hashes are encoded.
func TestOpenAPIDocument(t *testing.T) {
	raw, err := os.ReadFile("../../openapi/quire/v1/log.swagger.json")
	if err != nil {
		t.Fatalf("reading OpenAPI document: %v", err)
	}
	var doc struct {
		Swagger string `json:"swagger"`
		Info    struct {
			Description string `json:"description"`
		} `json:"info"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decoding OpenAPI document: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger version %q, want 2.0", doc.Swagger)
	}
	for _, path := range []string{
		"/quire/v1/entries/{index}",
		"/quire/v1/proof/inclusion",
		"/quire/v1/proof/consistency",
		"/quire/v1/search",
		"/quire/v1/checkpoints",
	} {
		t.Run(path+" is a GET route", func(t *testing.T) {
			if _, ok := doc.Paths[path]["get"]; !ok {
				t.Errorf("no GET %s in %v", path, doc.Paths)
			}
		})
	}
	t.Run("the description documents hex parameters and base64 hashes", func(t *testing.T) {
		for _, phrase := range []string{"hex", "base64", "RFC 6962"} {
			if !strings.Contains(doc.Info.Description, phrase) {
				t.Errorf("description lacks %q", phrase)
			}
		}
	})
}
