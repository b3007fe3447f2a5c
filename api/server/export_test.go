package server

import quirelog "github.com/quirelog/quire/log"

// HTTPStatusOf is the HTTP status mapError gives err, so that tests in package server_test can
// put a gRPC answer beside a REST one through the one mapping.
func HTTPStatusOf(err error) int { return mapError(err).httpStatus }

// LaneAnswered is how many requests the fast lane answered itself (0 when it is off).
func LaneAnswered(s *Server) int64 {
	if l := s.lane.Load(); l != nil {
		return l.answered.Load()
	}
	return 0
}

// WritesThroughGateway makes a server answer POST /api/v2/log/entries through grpc-gateway, as
// every other API route, instead of entriesHandler.
func WritesThroughGateway(c *Config) { c.gatewayWrites = true }

// LaneSentFiles is how many of the lane's answers it sent from its file cache.
func LaneSentFiles(s *Server) int64 {
	if l := s.lane.Load(); l != nil {
		return l.sentFiles.Load()
	}
	return 0
}

// ProofParts holds the lane's prepared parts of inclusion proof answers, for tests in package
// server_test.
type ProofParts struct{ j proofJSON }

// TileProofJSON is the body the lane answers p with, and false if it leaves p to net/http.
func (pp *ProofParts) TileProofJSON(p *quirelog.TileProof) ([]byte, bool) {
	return pp.j.appendTileProof(nil, p)
}

// AnswerJSON is the body net/http answers a proof, an entry or a write with, through the
// gateway's marshaler.
func AnswerJSON(v any) ([]byte, bool) { return appendAnswerJSON(nil, v) }
