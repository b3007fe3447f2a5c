package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
	quirelog "github.com/quirelog/quire/log"
)

// quireService is quire.v1.Log (proto/quire/v1/log.proto): the reads Rekor v2 dropped, answered
// from the log personality. Parameter names in errors are the REST query names.
type quireService struct {
	quirev1.UnimplementedLogServer
	log    *quirelog.Log
	logID  []byte
	logger *slog.Logger
}

func (s *quireService) GetEntry(ctx context.Context, req *quirev1.GetEntryRequest) (*quirev1.Entry, error) {
	e, err := s.log.Entry(ctx, req.GetIndex())
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	tle := &rekorv1.TransparencyLogEntry{
		LogIndex:          e.Proof.GetLogIndex(),
		InclusionProof:    e.Proof,
		CanonicalizedBody: e.Body,
		KindVersion:       kindVersion(e.Body),
	}
	if len(s.logID) > 0 {
		tle.LogId = &commonv1.LogId{KeyId: s.logID}
	}
	return &quirev1.Entry{TransparencyLogEntry: tle, LeafHash: e.LeafHash}, nil
}

// kindVersion reads kind and apiVersion back from a canonical body, so the answer has the same
// shape as CreateEntry's. A body that does not parse (which the log never writes) gets none.
func kindVersion(body []byte) *rekorv1.KindVersion {
	var head struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(body, &head); err != nil || head.Kind == "" {
		return nil
	}
	return &rekorv1.KindVersion{Kind: head.Kind, Version: head.APIVersion}
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

// GetConsistencyProof answers with both roots and, when the log published one, the checkpoint at
// the larger size, so a monitor can check the proof without another request. The roots come from
// inclusion proofs of entry 0, which the log checks against the tiles before answering.
func (s *quireService) GetConsistencyProof(ctx context.Context, req *quirev1.GetConsistencyProofRequest) (*quirev1.ConsistencyProof, error) {
	first, second := req.GetFirst(), req.GetSecond()
	if first == 0 {
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "first", Reason: "must be at least 1"})
	}
	if second != 0 && first > second {
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "first", Reason: fmt.Sprintf("%d is larger than second %d", first, second)})
	}
	// Resolving second (0: latest) once keeps the roots and the proof about the same two trees
	// while the log grows.
	big, err := s.log.InclusionProof(ctx, 0, second)
	var invalid *quirelog.InvalidRequestError
	if errors.As(err, &invalid) {
		// Entry 0 is below every non-empty tree size, so the log itself is empty.
		return nil, fail(ctx, s.logger, fmt.Errorf("the log has no entries yet: %w", quirelog.ErrNotFound))
	}
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	second = uint64(big.GetTreeSize())
	if first > second {
		return nil, fail(ctx, s.logger, &quirelog.InvalidRequestError{Field: "first", Reason: fmt.Sprintf("%d is larger than the log's size %d", first, second)})
	}
	small, err := s.log.InclusionProof(ctx, 0, first)
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	hashes, err := s.log.ConsistencyProof(ctx, first, second)
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first, second, hashes, small.GetRootHash(), big.GetRootHash()); err != nil {
		return nil, fail(ctx, s.logger, fmt.Errorf("consistency proof %d→%d does not verify: %w", first, second, err))
	}
	return &quirev1.ConsistencyProof{
		First:          first,
		Second:         second,
		FirstRootHash:  small.GetRootHash(),
		SecondRootHash: big.GetRootHash(),
		Hashes:         hashes,
		Checkpoint:     big.GetCheckpoint(),
	}, nil
}

// Search lists matching indices at or above from_index. The log returns at most its search limit
// of indices, smallest first; next_from_index points past a full page.
func (s *quireService) Search(ctx context.Context, req *quirev1.SearchRequest) (*quirev1.SearchResponse, error) {
	all, err := s.log.Search(ctx, req.GetDigest())
	if err != nil {
		return nil, fail(ctx, s.logger, err)
	}
	from := sort.Search(len(all), func(i int) bool { return all[i] >= req.GetFromIndex() })
	resp := &quirev1.SearchResponse{Indices: all[from:]}
	if len(all) >= quirelog.DefaultSearchLimit && len(resp.Indices) > 0 {
		resp.NextFromIndex = resp.Indices[len(resp.Indices)-1] + 1
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
