package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/transparency-dev/tessera"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quirelog/quire/api/tiles"
	quirelog "github.com/quirelog/quire/log"
)

func TestMapError(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		code        codes.Code
		httpStatus  int
		header      map[string]string
		message     string
		notInReason string
	}{
		{name: "an invalid request is InvalidArgument and 400 naming the field",
			err:  fmt.Errorf("validating: %w", &quirelog.InvalidRequestError{Field: "hashedRekordRequestV002.digest", Reason: "length 20, want 32"}),
			code: codes.InvalidArgument, httpStatus: 400, message: "hashedRekordRequestV002.digest"},
		{name: "a duplicate is AlreadyExists and 409 with X-Log-Index",
			err:  &quirelog.DuplicateError{Index: 42},
			code: codes.AlreadyExists, httpStatus: 409, header: map[string]string{"x-log-index": "42"}, message: "42"},
		{name: "a frozen log answers 405",
			err:  quirelog.ErrReadOnly,
			code: codes.Unimplemented, httpStatus: 405, message: "read-only"},
		{name: "a missing index is NotFound and 404",
			err:  fmt.Errorf("entry 9: the log has 3 entries: %w", quirelog.ErrNotFound),
			code: codes.NotFound, httpStatus: 404, message: "entry 9"},
		{name: "a bad tile path is InvalidArgument and 400 saying what is wrong",
			err:  fmt.Errorf("%w: width 0", tiles.ErrBadPath),
			code: codes.InvalidArgument, httpStatus: 400, message: "bad tile path: width 0"},
		{name: "a path outside tlog-tiles is NotFound and 404",
			err:  tiles.ErrNotTiles,
			code: codes.NotFound, httpStatus: 404, message: "not a tlog-tiles path"},
		{name: "a missing file is 404 without its path",
			err:  fmt.Errorf("reading tile: %w", &fs.PathError{Op: "open", Path: "/secret/dir/tile", Err: fs.ErrNotExist}),
			code: codes.NotFound, httpStatus: 404, message: "not found", notInReason: "/secret"},
		{name: "an unsupported lookup is Unimplemented and 501",
			err:  fmt.Errorf("search: %w", quirelog.ErrUnsupported),
			code: codes.Unimplemented, httpStatus: 501, message: "search: not supported by this log"},
		{name: "pushback is Unavailable and 503 with Retry-After",
			err:  fmt.Errorf("appending entry: %w", tessera.ErrPushback),
			code: codes.Unavailable, httpStatus: 503, header: map[string]string{"retry-after": "1"}, message: "retry after 1s"},
		{name: "a full disk is Unavailable and 503 with a longer Retry-After",
			err:  fmt.Errorf("committing batch: %w", syscall.ENOSPC),
			code: codes.Unavailable, httpStatus: 503, header: map[string]string{"retry-after": "10"}, message: "storage is full"},
		{name: "an oversized body is ResourceExhausted and 413",
			err:  &http.MaxBytesError{Limit: 4096},
			code: codes.ResourceExhausted, httpStatus: 413, message: "4096"},
		{name: "an entry over the log's size limits is ResourceExhausted and 413 stating the limit",
			err:  &quirelog.TooLargeError{What: "the entry's canonical leaf", Size: 70000, Limit: quirelog.MaxLeafBytes},
			code: codes.ResourceExhausted, httpStatus: 413, message: "at most 65535"},
		{name: "a write the log's own timeout ended is Unavailable and 503 with its index and Retry-After",
			err:  fmt.Errorf("creating entry: %w", &quirelog.PendingError{Index: 77, Err: quirelog.ErrWriteTimeout}),
			code: codes.Unavailable, httpStatus: 503, header: map[string]string{"x-log-index": "77", "retry-after": "5"}, message: "entry 77 is in the log"},
		{name: "a write the caller's deadline ended is 504 and still says its index",
			err:  &quirelog.PendingError{Index: 78, Err: context.DeadlineExceeded},
			code: codes.DeadlineExceeded, httpStatus: 504, header: map[string]string{"x-log-index": "78"}, message: "entry 78"},
		{name: "a storage failure on the write path is 500 even when a file is missing, without its path",
			err:  &quirelog.StorageError{Err: fmt.Errorf("committing: %w", &fs.PathError{Op: "statfs", Path: "/secret/log", Err: fs.ErrNotExist})},
			code: codes.Internal, httpStatus: 500, message: "storage failed", notInReason: "/secret"},
		{name: "a full disk on the write path is still 503 with Retry-After",
			err:  &quirelog.StorageError{Err: fmt.Errorf("committing: %w", syscall.ENOSPC)},
			code: codes.Unavailable, httpStatus: 503, header: map[string]string{"retry-after": "10"}, message: "storage is full"},
		{name: "a client that went away is Canceled and 499",
			err:  fmt.Errorf("waiting: %w", context.Canceled),
			code: codes.Canceled, httpStatus: 499, message: "request canceled"},
		{name: "a deadline that passed is DeadlineExceeded and 504",
			err:  fmt.Errorf("waiting for checkpoint: %w", context.DeadlineExceeded),
			code: codes.DeadlineExceeded, httpStatus: 504, message: "deadline exceeded"},
		{name: "an internal failure is 500 and does not leak its message",
			err:  errors.New("pebble: corruption in /var/lib/quire/log/000123.sst"),
			code: codes.Internal, httpStatus: 500, message: "internal error", notInReason: "pebble"},
		{name: "a gRPC status passes through with the gateway's HTTP status",
			err:  status.Error(codes.InvalidArgument, `proto: unknown field "bogus"`),
			code: codes.InvalidArgument, httpStatus: 400, message: "bogus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.message == "" {
				t.Fatal("the row names no message to look for, so it could not catch a wrong one")
			}
			e := mapError(tc.err)
			if e.st.Code() != tc.code || e.httpStatus != tc.httpStatus {
				t.Errorf("got %v/%d, want %v/%d", e.st.Code(), e.httpStatus, tc.code, tc.httpStatus)
			}
			if !strings.Contains(e.st.Message(), tc.message) {
				t.Errorf("message %q lacks %q", e.st.Message(), tc.message)
			}
			if tc.notInReason != "" && strings.Contains(e.st.Message(), tc.notInReason) {
				t.Errorf("message %q leaks %q", e.st.Message(), tc.notInReason)
			}
			for k, v := range tc.header {
				if e.headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, e.headers[k], v)
				}
			}
			if got := status.Code(e); got != tc.code {
				t.Errorf("grpc sees code %v, want %v", got, tc.code)
			}
			rec := httptest.NewRecorder()
			writeError(rec, e)
			if rec.Code != tc.httpStatus {
				t.Errorf("HTTP status written %d, want %d", rec.Code, tc.httpStatus)
			}
			for k, v := range tc.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("HTTP header %s = %q, want %q", k, got, v)
				}
			}
			want := fmt.Sprintf(`{"code":%d,"message":`, tc.code)
			if !strings.HasPrefix(rec.Body.String(), want) || !strings.HasSuffix(rec.Body.String(), `"details":[]}`+"\n") {
				t.Errorf("body %q is not the {code,message,details} shape", rec.Body.String())
			}
		})
	}
}
