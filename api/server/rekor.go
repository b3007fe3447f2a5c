package server

import (
	"context"
	"fmt"
	"log/slog"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/types/known/emptypb"

	quirelog "github.com/quirelog/quire/log"
)

// Content types of C2SP tlog-tiles resources: checkpoints are signed notes (text), tiles and
// entry bundles are binary.
const (
	contentTypeCheckpoint = "text/plain; charset=utf-8"
	contentTypeTile       = "application/octet-stream"
)

// rekorService is dev.sigstore.rekor.v2.Rekor (rekor-tiles v2.3.0 api/proto/rekor/v2/
// rekor_service.proto) on top of the log personality. Over REST the tile and checkpoint reads are
// answered by the tlog-tiles handler instead (it sets cache headers); over gRPC they are these.
type rekorService struct {
	rekorpb.UnimplementedRekorServer
	log    *quirelog.Log
	reader tessera.LogReader
	logger *slog.Logger
}

func (s *rekorService) CreateEntry(ctx context.Context, req *rekorpb.CreateEntryRequest) (*rekorv1.TransparencyLogEntry, error) {
	tle, err := s.log.CreateEntry(ctx, req)
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	return tle, nil
}

func (s *rekorService) GetCheckpoint(ctx context.Context, _ *emptypb.Empty) (*httpbody.HttpBody, error) {
	cp, err := s.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fail(ctx, s.logger, fmt.Errorf("reading checkpoint: %w", err))
	}
	return &httpbody.HttpBody{ContentType: contentTypeCheckpoint, Data: cp}, nil
}

// GetTile reads a hash tile; N is the tlog-tiles path of the index, e.g. "x001/234" or "067.p/8".
func (s *rekorService) GetTile(ctx context.Context, req *rekorpb.TileRequest) (*httpbody.HttpBody, error) {
	if req.GetL() > 63 {
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "L", Reason: fmt.Sprintf("tile level %d is above 63 (C2SP tlog-tiles)", req.GetL())})
	}
	idx, width, err := layout.ParseTileIndexPartial(req.GetN())
	if err != nil {
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "N", Reason: fmt.Sprintf("%q is not a tlog-tiles tile index: %v", req.GetN(), err)})
	}
	tile, err := s.reader.ReadTile(ctx, uint64(req.GetL()), idx, width)
	if err != nil {
		return nil, fail(ctx, s.logger, fmt.Errorf("reading tile %d/%d.p/%d: %w", req.GetL(), idx, width, err))
	}
	return &httpbody.HttpBody{ContentType: contentTypeTile, Data: tile}, nil
}

// GetEntryBundle reads an entry bundle; N is as for GetTile.
func (s *rekorService) GetEntryBundle(ctx context.Context, req *rekorpb.EntryBundleRequest) (*httpbody.HttpBody, error) {
	idx, width, err := layout.ParseTileIndexPartial(req.GetN())
	if err != nil {
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "N", Reason: fmt.Sprintf("%q is not a tlog-tiles entry bundle index: %v", req.GetN(), err)})
	}
	bundle, err := s.reader.ReadEntryBundle(ctx, idx, width)
	if err != nil {
		return nil, fail(ctx, s.logger, fmt.Errorf("reading entry bundle %d.p/%d: %w", idx, width, err))
	}
	return &httpbody.HttpBody{ContentType: contentTypeTile, Data: bundle}, nil
}
