package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// entriesHandler answers POST /api/v2/log/entries (Rekor v2's CreateEntry over REST) without
// grpc-gateway, with the same status, headers and bytes the gateway's route gives: it decodes the
// body with the gateway's decoder, calls the same rekorService.CreateEntry, writes the answer with
// the gateway's marshaler and refusals with its error handler. The gateway's route is most of a
// write's CPU besides the signature check and the log itself: it copies every request header into
// gRPC metadata, builds contexts and a transport stream, and matches the path again. Requests whose
// answer depends on what only the gateway does (gRPC metadata or timeout headers, a method
// override, trailers, an escaped path) go to it unchanged; TestEntriesHandlerAnswersAsTheGateway
// compares the two.
type entriesHandler struct {
	rekor     *rekorService
	marshaler *singleValueJSONPb
	gateway   http.Handler
}

func (h *entriesHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if gatewayOnly(r) {
		h.gateway.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	body, err := readBody(r.Body, r.ContentLength)
	if err != nil {
		err = fmt.Errorf("reading request body: %w", err)
	} else {
		var req rekorpb.CreateEntryRequest
		if err = h.marshaler.decodeCreateEntry(body, &req); err == nil || errors.Is(err, io.EOF) {
			h.create(w, r, &req)
			return
		}
	}
	// The gateway's generated handler reports every decoding failure this way.
	gatewayErrorHandler(ctx, nil, h.marshaler, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
}

// create calls CreateEntry and writes its answer as the gateway's ForwardResponseMessage does
// with setCreated: the content type, 201, then the body in one write.
func (h *entriesHandler) create(w http.ResponseWriter, r *http.Request, req *rekorpb.CreateEntryRequest) {
	ctx := r.Context()
	tle, err := h.rekor.CreateEntry(ctx, req)
	if err != nil {
		gatewayErrorHandler(ctx, nil, h.marshaler, w, r, err)
		return
	}
	// Marshalled before the status goes out, so that a failure can still be answered as one.
	buf := answerBufs.Get().(*[]byte)
	b, err := h.marshaler.appendMarshal((*buf)[:0], tle)
	if err != nil {
		gatewayErrorHandler(ctx, nil, h.marshaler, w, r, err)
		return
	}
	w.Header().Set("Content-Type", h.marshaler.ContentType(tle))
	w.WriteHeader(http.StatusCreated)
	// Write copies b into the connection's buffer or the socket and keeps none of it.
	_, _ = w.Write(b)
	if cap(b) <= maxPooledAnswer {
		*buf = b
		answerBufs.Put(buf)
	}
}

// answerBufs hold write answers between writes: an answer is a few KiB, allocated for every write
// and garbage as soon as it is sent. The pool holds no more buffers than writes were answered at
// once, each no larger than maxPooledAnswer, and the collector empties it.
var answerBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledAnswer covers a write's answer with a certificate chain; larger ones are not kept.
const maxPooledAnswer = 16 << 10

// gatewayOnly reports a request whose answer the gateway shapes from more than its body: gRPC
// metadata and timeout headers (Grpc-*, *-Bin), X-HTTP-Method-Override, TE: trailers, and a path
// net/url kept escaped, which the gateway matches by its own unescaping rules.
func gatewayOnly(r *http.Request) bool {
	if r.URL.RawPath != "" {
		return true
	}
	for k := range r.Header {
		if len(k) >= 5 && strings.EqualFold(k[:5], "grpc-") ||
			len(k) >= 4 && strings.EqualFold(k[len(k)-4:], "-bin") ||
			strings.EqualFold(k, "X-Http-Method-Override") || strings.EqualFold(k, "Te") {
			return true
		}
	}
	return false
}

// readBody is io.ReadAll with room for a declared length from the start, so reading a body of
// known size allocates once rather than growing the buffer step by step. limitBody has already
// refused a declared length over the limit.
func readBody(r io.Reader, declared int64) ([]byte, error) {
	// A body the fast lane read is already in memory: decode it where it lies (decoding keeps
	// none of its bytes, and the lane reuses them only after the handler returns).
	if lb, ok := r.(*laneBody); ok {
		return lb.unread(), nil
	}
	if declared < 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, declared+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
