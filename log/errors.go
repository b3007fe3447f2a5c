package log

import (
	"errors"
	"fmt"
)

// Errors returned by Log. The API layer maps them to gRPC codes and HTTP
// statuses in one place; this package only says what went wrong.
var (
	// ErrReadOnly is returned by CreateEntry when the log is frozen (→ 405).
	ErrReadOnly = errors.New("log is read-only: this log has been frozen and accepts no new entries")
	// ErrNotFound is returned when an index, tree size, leaf hash or checkpoint
	// is beyond what the log has published (→ 404).
	ErrNotFound = errors.New("not found")
	// ErrUnsupported is returned by lookups that need an optional part of the
	// Config that was not given: Search and leaf-hash proofs without an Index,
	// past checkpoints without a History (→ 501).
	ErrUnsupported = errors.New("not supported by this log")
	// ErrWriteTimeout is the cause in a *PendingError when CreateEntry waited
	// Config.WriteTimeout for a checkpoint (→ 503 with X-Log-Index and
	// Retry-After).
	ErrWriteTimeout = errors.New("no published checkpoint covered the entry within the log's write timeout")
)

// PendingError is returned by CreateEntry when the entry was given an index
// but no published checkpoint covered it before the wait ended: the log's
// WriteTimeout (Err is ErrWriteTimeout) or the caller's context. The entry is
// in the log; the same request, sent again, gets a *DuplicateError with Index
// once a checkpoint covers it.
type PendingError struct {
	Index uint64
	Err   error
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("entry %d is sequenced but not yet covered by a published checkpoint: %v", e.Index, e.Err)
}

func (e *PendingError) Unwrap() error { return e.Err }

// StorageError is a failure of the log's storage on the write path: the
// entry may not have been logged (→ 500, or 503 when the disk is full). The
// log reports itself unwritable (Writable) until an append succeeds again.
type StorageError struct {
	Err error
}

func (e *StorageError) Error() string { return "log storage failed: " + e.Err.Error() }

func (e *StorageError) Unwrap() error { return e.Err }

// InvalidRequestError says which field of a request is wrong and why (→ 400).
// Field is the protojson path of the field, e.g.
// "hashedRekordRequestV002.signature.verifier.keyDetails".
type InvalidRequestError struct {
	Field  string
	Reason string
	// cause is the underlying error (a parse or verification failure), if any.
	cause error
}

func (e *InvalidRequestError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// Unwrap returns the parse or verification error behind the refusal, if any.
func (e *InvalidRequestError) Unwrap() error { return e.cause }

// invalid builds an InvalidRequestError; a %w in format becomes its cause.
func invalid(field, format string, args ...any) *InvalidRequestError {
	err := fmt.Errorf(format, args...)
	return &InvalidRequestError{Field: field, Reason: err.Error(), cause: errors.Unwrap(err)}
}

// DuplicateError is returned by CreateEntry when an identical entry is already
// in the log; Index is where the first copy is (→ 409 with X-Log-Index).
type DuplicateError struct {
	Index uint64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("an equivalent entry already exists in the transparency log with index %d", e.Index)
}

// TooLargeError is returned by Validate for a request, or the leaf it would
// make, larger than the log takes (→ 413). Nothing is appended.
type TooLargeError struct {
	What        string
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %d bytes; this log takes at most %d", e.What, e.Size, e.Limit)
}
