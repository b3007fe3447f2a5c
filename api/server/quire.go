package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/transparency-dev/merkle/rfc6962"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
	quirelog "github.com/quirelog/quire/log"
)

// quireService is quire.v1.Log (proto/quire/v1/log.proto): the reads Rekor v2 dropped, answered
// by the log personality; this layer only translates requests and answers. Parameter names in
// errors are the REST query names.
type quireService struct {
	quirev1.UnimplementedLogServer
	log    *quirelog.Log
	logger *slog.Logger
}

func (s *quireService) GetEntry(ctx context.Context, req *quirev1.GetEntryRequest) (*quirev1.Entry, error) {
	e, err := s.log.Entry(ctx, req.GetIndex())
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	return &quirev1.Entry{TransparencyLogEntry: e.TransparencyLogEntry, LeafHash: e.LeafHash}, nil
}

func (s *quireService) GetInclusionProof(ctx context.Context, req *quirev1.GetInclusionProofRequest) (*rekorv1.InclusionProof, error) {
	hasIndex, hasLeaf := req.Index != nil, req.GetLeafHash() != ""
	switch {
	case hasIndex && hasLeaf:
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "index", Reason: "give index or leaf_hash, not both"})
	case hasIndex:
		p, err := s.log.InclusionProof(ctx, req.GetIndex(), req.GetTreeSize())
		if err != nil {
			return nil, fail(ctx, s.logger, err)
		}
		return p, nil
	case hasLeaf:
		leaf, err := hex.DecodeString(req.GetLeafHash())
		if err != nil || len(leaf) != rfc6962.DefaultHasher.Size() {
			return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "leaf_hash", Reason: fmt.Sprintf("%q is not 64 hex digits", req.GetLeafHash())})
		}
		p, err := s.log.InclusionProofByLeafHash(ctx, leaf, req.GetTreeSize())
		if err != nil {
			return nil, fail(ctx, s.logger, err)
		}
		return p, nil
	default:
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "index", Reason: "give index or leaf_hash"})
	}
}

func (s *quireService) GetConsistencyProof(ctx context.Context, req *quirev1.GetConsistencyProofRequest) (*quirev1.ConsistencyProof, error) {
	c, err := s.log.ConsistencyProof(ctx, req.GetFirst(), req.GetSecond())
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	p := &quirev1.ConsistencyProof{
		First:          c.First,
		Second:         c.Second,
		FirstRootHash:  c.FirstRoot,
		SecondRootHash: c.SecondRoot,
		Hashes:         c.Hashes,
	}
	if c.Checkpoint != nil {
		p.Checkpoint = &rekorv1.Checkpoint{Envelope: string(c.Checkpoint)}
	}
	return p, nil
}

// Search answers one page of matching indices; next_from_index is set only when another page
// follows.
func (s *quireService) Search(ctx context.Context, req *quirev1.SearchRequest) (*quirev1.SearchResponse, error) {
	q := quirelog.SearchQuery{Digest: req.GetDigest(), Key: req.GetKey(), Identity: req.GetIdentity(), Issuer: req.GetIssuer()}
	page, err := s.log.Search(ctx, q, req.GetFromIndex())
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	resp := &quirev1.SearchResponse{Indices: page.Indices}
	if page.More {
		resp.NextFromIndex = &page.Next
	}
	return resp, nil
}

func (s *quireService) GetCheckpoint(ctx context.Context, req *quirev1.GetCheckpointRequest) (*rekorv1.Checkpoint, error) {
	cp, err := s.log.Checkpoint(ctx, req.GetSize())
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	return &rekorv1.Checkpoint{Envelope: string(cp)}, nil
}
