package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// createEntryMethod is the full gRPC name of the one call answered with 201 Created.
const createEntryMethod = "/dev.sigstore.rekor.v2.Rekor/CreateEntry"

// newGatewayMux builds the grpc-gateway mux with rekor-tiles v2.3.0's encoding
// (internal/server/http.go): protojson with lowerCamelCase names and unpopulated fields emitted,
// and unknown request fields rejected rather than dropped, so a typo in a request is a 400 and not
// a silently different entry. protojson accepts both camelCase and snake_case names on input.
func newGatewayMux(m *singleValueJSONPb) *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: m}),
		runtime.WithErrorHandler(gatewayErrorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithForwardResponseOption(setCreated),
		// Only headers this package sets on purpose reach HTTP clients, without a Grpc-Metadata- prefix.
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			switch strings.ToLower(key) {
			case headerLogIndex, headerRetryAfter:
				return key, true
			}
			return "", false
		}),
	)
}

// newJSONMarshaler is the gateway's encoding, which entriesHandler shares.
func newJSONMarshaler() *singleValueJSONPb {
	return &singleValueJSONPb{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// singleValueJSONPb is the gateway's JSONPb except that a request body must be exactly one JSON
// value: the stock decoder stops after the first, so `{…}garbage` or two requests back to back
// would log the first and silently drop the rest.
type singleValueJSONPb struct{ runtime.JSONPb }

// NewDecoder decodes one JSON value per request. A CreateEntryRequest body is read whole first
// and given to decodeHashedRekord, which decodes the usual request without protojson; what it
// leaves goes through decodeOne as any other body does.
func (m *singleValueJSONPb) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		if req, ok := v.(*rekorpb.CreateEntryRequest); ok {
			body, err := io.ReadAll(r)
			if err != nil {
				return fmt.Errorf("reading request body: %w", err)
			}
			return m.decodeCreateEntry(body, req)
		}
		return m.decodeOne(r, v)
	})
}

// decodeCreateEntry decodes a whole CreateEntryRequest body, the usual request without protojson.
func (m *singleValueJSONPb) decodeCreateEntry(body []byte, req *rekorpb.CreateEntryRequest) error {
	if decodeHashedRekord(body, req) {
		return nil
	}
	return m.decodeOne(bytes.NewReader(body), req)
}

// decodeOne decodes exactly one JSON value from r into v.
func (m *singleValueJSONPb) decodeOne(r io.Reader, v any) error {
	d := json.NewDecoder(r)
	inner := runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: m.UnmarshalOptions}
	if err := inner.Decode(v); err != nil {
		return err
	}
	var syntax *json.SyntaxError
	switch _, err := d.Token(); {
	case err == io.EOF:
		return nil
	case err == nil || errors.As(err, &syntax):
		return errors.New("request body has data after the JSON object")
	default:
		// A failure of the body itself (over the size limit, a timeout) keeps its own error.
		return fmt.Errorf("reading request body: %w", err)
	}
}

// Marshal writes the answers of writes, entries and proofs with appendAnswerJSON, and anything
// else with protojson.
func (m *singleValueJSONPb) Marshal(v any) ([]byte, error) {
	return m.appendMarshal(nil, v)
}

// appendMarshal is Marshal writing into dst's room when the answer is one appendAnswerJSON writes.
func (m *singleValueJSONPb) appendMarshal(dst []byte, v any) ([]byte, error) {
	if b, ok := appendAnswerJSON(dst, v); ok {
		return b, nil
	}
	return m.JSONPb.Marshal(v)
}

// setCreated answers a successful CreateEntry with 201, as Rekor v2 does.
func setCreated(ctx context.Context, w http.ResponseWriter, m proto.Message) error {
	if _, ok := m.(*rekorv1.TransparencyLogEntry); !ok {
		return nil
	}
	if method, ok := runtime.RPCMethod(ctx); ok && method == createEntryMethod {
		w.WriteHeader(http.StatusCreated)
	}
	return nil
}

// errorBody is grpc-gateway's rendering of a google.rpc.Status, which Rekor v2 clients parse:
// {"code":N,"message":"…","details":[]}.
type errorBody struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

// gatewayErrorHandler writes every gateway failure through mapError, so REST and gRPC callers
// see the same code and message, and REST callers get the precise HTTP status and headers.
func gatewayErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	var hse *runtime.HTTPStatusError
	switch {
	case bodyLimitHit(r):
		// The gateway reports a body cut short by the limit as a decoding error; the limit is the cause.
		e = mapError(&http.MaxBytesError{Limit: r.Body.(*limitedBody).limit})
	case bodyTimedOut(r):
		// Likewise for a client too slow to send its body (a slowloris): the read timeout is the
		// cause, and the decoding error would only name the sockets.
		e = newAPIError(codes.DeadlineExceeded, http.StatusRequestTimeout, "request body not received before the server's read timeout")
	case errors.As(err, &hse):
		// Routing failures (unknown path, wrong method) come with the HTTP status already chosen.
		e = mapError(hse.Err)
		e.httpStatus = hse.HTTPStatus
	default:
		e = mapError(err)
	}
	writeError(w, e)
}

// routingErrorHandler keeps the status the gateway's router chose (its default turns 405 into 501).
func routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
	c := codes.NotFound
	switch httpStatus {
	case http.StatusBadRequest:
		c = codes.InvalidArgument
	case http.StatusMethodNotAllowed:
		c = codes.Unimplemented
	}
	writeError(w, newAPIError(c, httpStatus, http.StatusText(httpStatus)))
}

func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	for k, v := range e.headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	body, err := json.Marshal(errorBody{Code: int32(e.st.Code()), Message: e.st.Message(), Details: []any{}})
	if err != nil {
		// A struct of an int and a string always encodes; this keeps the status line honest anyway.
		body = []byte(`{"code":13,"message":"internal error","details":[]}`)
	}
	w.WriteHeader(e.httpStatus)
	_, _ = w.Write(append(body, '\n'))
}

// refuseUncleanPaths answers a path with dot segments or repeated slashes with 400. http.ServeMux
// would redirect it to the cleaned path, so `/tile/../../etc/passwd` would get a redirect where
// every other malformed path gets a refusal, and a resource would have more than one URL.
func refuseUncleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if r.Method != http.MethodConnect && p != "" && clean != p {
			writeError(w, newAPIError(codes.InvalidArgument, http.StatusBadRequest, fmt.Sprintf("path %q is not canonical: dot segments and repeated slashes are not allowed", p)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitedBody caps a request body (http.MaxBytesReader, which also closes the connection after
// the answer) and remembers that the cap was hit, because the gateway turns the read error into
// an ordinary decoding error.
type limitedBody struct {
	io.ReadCloser
	limit    int64
	hit      atomic.Bool
	timedOut atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		b.hit.Store(true)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut.Store(true)
	}
	return n, err
}

func bodyTimedOut(r *http.Request) bool {
	b, ok := r.Body.(*limitedBody)
	return ok && b.timedOut.Load()
}

func bodyLimitHit(r *http.Request) bool {
	b, ok := r.Body.(*limitedBody)
	return ok && b.hit.Load()
}

// limitBody refuses a declared oversized body at once with 413 and caps an undeclared (chunked) one.
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			// Closing the connection spares reading a body nobody will use.
			w.Header().Set("Connection", "close")
			writeError(w, mapError(&http.MaxBytesError{Limit: limit}))
			return
		}
		// A lane write's body is all in memory and exactly its Content-Length, which is under the
		// limit: no read of it can run past the limit or time out, so it needs no cap, and the
		// entries handler can take its bytes where they are.
		if _, inMemory := r.Body.(*laneBody); !inMemory && r.Body != nil && r.Body != http.NoBody {
			r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), limit: limit}
		}
		next.ServeHTTP(w, r)
	})
}
