package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/transparency-dev/tessera"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quirelog/quire/api/tiles"
	quirelog "github.com/quirelog/quire/log"
)

const (
	// headerLogIndex carries the existing entry's index on a duplicate, as rekor-tiles does
	// (internal/server/service.go duplicateEntryHeader); lower case so it is valid gRPC metadata.
	headerLogIndex = "x-log-index"
	// headerRetryAfter tells a pushed-back writer when to try again (RFC 9110 section 10.2.3).
	headerRetryAfter = "retry-after"

	// pushbackRetrySeconds is short because pushback clears as soon as one batch integrates,
	// which takes well under a second.
	pushbackRetrySeconds = 1

	// diskFullRetrySeconds is longer: a full disk waits for an operator, not for a batch.
	diskFullRetrySeconds = 10

	// pendingRetrySeconds is how long a writer whose entry is sequenced but not yet published is
	// asked to wait before asking again (and getting 409 with the index once it is published):
	// about one attempt of a witness quorum that is failing.
	pendingRetrySeconds = 5

	// statusClientClosedRequest is the de-facto status for a client that went away (nginx's 499),
	// which grpc-gateway also uses for codes.Canceled.
	statusClientClosedRequest = 499
)

// apiError is a failure as both transports report it: a gRPC status, the HTTP status the gateway
// answers with (some, such as 405, have no gRPC code of their own), and response headers.
type apiError struct {
	st         *status.Status
	httpStatus int
	headers    map[string]string
}

func (e *apiError) Error() string { return e.st.Message() }

// GRPCStatus lets grpc-go send the mapped code and message for an *apiError returned by a handler.
func (e *apiError) GRPCStatus() *status.Status { return e.st }

// mapError is the ONE place where errors from the log, the storage and the transports become gRPC
// codes and HTTP statuses (400, 409 + X-Log-Index, 413, 429/503 + Retry-After, 405, as Rekor v2
// clients expect them). Messages of internal failures are not passed to clients: they may name files.
func mapError(err error) *apiError {
	var (
		ae      *apiError
		invalid *quirelog.InvalidRequestError
		dup     *quirelog.DuplicateError
		tooBig  *http.MaxBytesError
		tooLong *quirelog.TooLargeError
		pending *quirelog.PendingError
		storage *quirelog.StorageError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &pending):
		return pendingError(pending)
	case errors.As(err, &storage) && !errors.Is(err, syscall.ENOSPC):
		// Before the not-found case: a storage file gone missing under a write is the server's
		// fault, not an unknown resource.
		return newAPIError(codes.Internal, http.StatusInternalServerError, "internal error: the log's storage failed")
	case errors.As(err, &invalid):
		return newAPIError(codes.InvalidArgument, http.StatusBadRequest, invalid.Error())
	case errors.As(err, &tooLong):
		return newAPIError(codes.ResourceExhausted, http.StatusRequestEntityTooLarge, tooLong.Error())
	case errors.Is(err, tiles.ErrBadPath):
		return newAPIError(codes.InvalidArgument, http.StatusBadRequest, err.Error())
	case errors.Is(err, tiles.ErrNotTiles):
		return newAPIError(codes.NotFound, http.StatusNotFound, err.Error())
	case errors.As(err, &dup):
		e := newAPIError(codes.AlreadyExists, http.StatusConflict, dup.Error())
		e.headers = map[string]string{headerLogIndex: strconv.FormatUint(dup.Index, 10)}
		return e
	case errors.Is(err, quirelog.ErrReadOnly):
		return newAPIError(codes.Unimplemented, http.StatusMethodNotAllowed, quirelog.ErrReadOnly.Error())
	case errors.Is(err, quirelog.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return newAPIError(codes.NotFound, http.StatusNotFound, notFoundMessage(err))
	case errors.Is(err, quirelog.ErrUnsupported):
		return newAPIError(codes.Unimplemented, http.StatusNotImplemented, err.Error())
	case errors.Is(err, tessera.ErrPushback):
		// Unavailable (503) rather than ResourceExhausted: the condition is the log's, not the
		// caller's quota, and gRPC clients retry Unavailable by default.
		e := newAPIError(codes.Unavailable, http.StatusServiceUnavailable, "the log is busy integrating earlier entries; retry after "+strconv.Itoa(pushbackRetrySeconds)+"s")
		e.headers = map[string]string{headerRetryAfter: strconv.Itoa(pushbackRetrySeconds)}
		return e
	case errors.Is(err, syscall.ENOSPC):
		// A full disk: storage refused the batch and wrote nothing of it. It
		// clears only when an operator frees space, so writers are asked to wait longer.
		e := newAPIError(codes.Unavailable, http.StatusServiceUnavailable, "the log's storage is full; retry after "+strconv.Itoa(diskFullRetrySeconds)+"s")
		e.headers = map[string]string{headerRetryAfter: strconv.Itoa(diskFullRetrySeconds)}
		return e
	case errors.As(err, &tooBig):
		return newAPIError(codes.ResourceExhausted, http.StatusRequestEntityTooLarge, "request body larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes")
	case errors.Is(err, context.Canceled):
		return newAPIError(codes.Canceled, statusClientClosedRequest, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return newAPIError(codes.DeadlineExceeded, http.StatusGatewayTimeout, "deadline exceeded before the entry was covered by a checkpoint")
	}
	if st, ok := status.FromError(err); ok {
		// Already a gRPC status (the gateway's own decoding errors, for one): keep code and message,
		// with the status grpc-gateway would give it.
		return &apiError{st: st, httpStatus: runtime.HTTPStatusFromCode(st.Code())}
	}
	return newAPIError(codes.Internal, http.StatusInternalServerError, "internal error")
}

// pendingError answers a write whose entry has an index but no published checkpoint yet, with
// the index in X-Log-Index. When the log's own write timeout ended the wait it is 503 with
// Retry-After; when the caller's deadline or cancellation did, it is what that maps to.
func pendingError(p *quirelog.PendingError) *apiError {
	e := mapError(p.Err)
	if errors.Is(p.Err, quirelog.ErrWriteTimeout) {
		e = newAPIError(codes.Unavailable, http.StatusServiceUnavailable, fmt.Sprintf(
			"entry %d is in the log but no published checkpoint covered it in time; retry after %ds: the same request then gets 409 with its index once one does",
			p.Index, pendingRetrySeconds))
		e.headers = map[string]string{headerRetryAfter: strconv.Itoa(pendingRetrySeconds)}
	} else {
		e = &apiError{st: status.New(e.st.Code(), fmt.Sprintf("%s; entry %d is in the log", e.st.Message(), p.Index)), httpStatus: e.httpStatus}
	}
	if e.headers == nil {
		e.headers = map[string]string{}
	}
	e.headers[headerLogIndex] = strconv.FormatUint(p.Index, 10)
	return e
}

func newAPIError(c codes.Code, httpStatus int, msg string) *apiError {
	return &apiError{st: status.New(c, msg), httpStatus: httpStatus}
}

// notFoundMessage keeps the log's explanation (it says which index or size is missing) but drops
// file-system paths that an fs.ErrNotExist from storage might carry.
func notFoundMessage(err error) string {
	if errors.Is(err, quirelog.ErrNotFound) {
		return err.Error()
	}
	return "not found"
}

// logged maps err and logs it at ERROR if the failure is the server's fault (storage failures
// included, a full disk too), since the client only learns "internal error" or "storage full".
func logged(ctx context.Context, logger *slog.Logger, err error) *apiError {
	e := mapError(err)
	var storage *quirelog.StorageError
	if c := e.st.Code(); c == codes.Internal || c == codes.Unknown || c == codes.DataLoss || errors.As(err, &storage) {
		logger.ErrorContext(ctx, "request failed", "error", err)
	}
	return e
}

// fail maps and logs err (logged) and, for gRPC callers, attaches the error's headers as response
// metadata. Through the in-process gateway there is no gRPC stream, and the HTTP error handler
// writes them instead.
func fail(ctx context.Context, logger *slog.Logger, err error) error {
	e := logged(ctx, logger, err)
	if len(e.headers) > 0 {
		md := metadata.MD{}
		for k, v := range e.headers {
			md.Set(k, v)
		}
		// SetHeader fails only when there is no stream to carry metadata (a direct call); the
		// status still reaches the caller, so there is nothing to do about it.
		_ = grpc.SetHeader(ctx, md)
	}
	return e
}
