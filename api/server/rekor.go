package server

import (
	"context"
	"log/slog"
	"strconv"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/types/known/emptypb"

	quirelog "github.com/quirelog/quire/log"
)

// rekorService is dev.sigstore.rekor.v2.Rekor (rekor-tiles v2.3.0 api/proto/rekor/v2/
// rekor_service.proto) on top of the log personality. Over REST the tile and checkpoint reads are
// answered by the tlog-tiles handler instead (it sets cache headers); over gRPC they are these, and
// both go through readTiles.
type rekorService struct {
	rekorpb.UnimplementedRekorServer
	log    *quirelog.Log
	reader tessera.LogReader
	logger *slog.Logger
	// limit, if set, rate-limits writes per client address.
	limit *addressLimit
}

func (s *rekorService) CreateEntry(ctx context.Context, req *rekorpb.CreateEntryRequest) (*rekorv1.TransparencyLogEntry, error) {
	if s.limit != nil {
		if err := s.limit.allow(ctx); err != nil {
			return nil, fail(ctx, s.logger, err)
		}
	}
	tle, err := s.log.CreateEntry(ctx, req)
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	return tle, nil
}

func (s *rekorService) GetCheckpoint(ctx context.Context, _ *emptypb.Empty) (*httpbody.HttpBody, error) {
	return s.read(ctx, "/"+layout.CheckpointPath)
}

// GetTile reads a hash tile; N is the tlog-tiles path of the index, e.g. "x001/234" or "067.p/8".
// L and N are checked as the REST path /tile/<L>/<N> is.
func (s *rekorService) GetTile(ctx context.Context, req *rekorpb.TileRequest) (*httpbody.HttpBody, error) {
	return s.read(ctx, "/tile/"+strconv.FormatUint(uint64(req.GetL()), 10)+"/"+req.GetN())
}

// GetEntryBundle reads an entry bundle; N is as for GetTile.
func (s *rekorService) GetEntryBundle(ctx context.Context, req *rekorpb.EntryBundleRequest) (*httpbody.HttpBody, error) {
	return s.read(ctx, "/tile/entries/"+req.GetN())
}

// read answers a tlog-tiles read over gRPC from the resource's path.
func (s *rekorService) read(ctx context.Context, path string) (*httpbody.HttpBody, error) {
	res, body, err := readTiles(ctx, s.reader, path)
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	return &httpbody.HttpBody{ContentType: contentType(res.Kind), Data: body}, nil
}
