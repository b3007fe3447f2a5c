package witness

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is the one error type AddCheckpoint returns for a refused request. It
// carries the HTTP status that tlog-witness prescribes, so the HTTP layer (and
// any other caller) maps refusals in one place: StatusOf.
type Error struct {
	// Status is the HTTP status code the spec assigns to this refusal.
	Status int
	// Msg says what was wrong, for the response body and logs.
	Msg string
	// RecordedSize is the size of the latest cosigned checkpoint; set only
	// for 409 Conflict, whose body must carry it.
	RecordedSize uint64
	// RetryAfter is how long a rate-limited client should wait; set only
	// for 429 Too Many Requests.
	RetryAfter time.Duration
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, http.StatusText(e.Status), e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// StatusOf returns the HTTP status for err: the Status of an *Error anywhere in
// its chain, 200 for nil, and 500 for anything else (storage or signing
// failures, which are the witness's fault, not the client's).
func StatusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var we *Error
	if errors.As(err, &we) {
		return we.Status
	}
	return http.StatusInternalServerError
}

// Outcome names the answer a status gives, for metrics: "cosigned" (200), "conflict" (409, the
// old size is not the recorded one), "inconsistent" (422, the proof or root does not match what
// was cosigned), "unverified" (403), "unknown_log" (404), "malformed" (400), "too_large" (413),
// "rate_limited" (429), and "failed" for the witness's own errors.
func Outcome(status int) string {
	switch status {
	case http.StatusOK:
		return "cosigned"
	case http.StatusConflict:
		return "conflict"
	case http.StatusUnprocessableEntity:
		return "inconsistent"
	case http.StatusForbidden:
		return "unverified"
	case http.StatusNotFound:
		return "unknown_log"
	case http.StatusBadRequest:
		return "malformed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "rate_limited"
	default:
		return "failed"
	}
}

func errMalformed(msg string, err error) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: msg, Err: err}
}

func errTooLarge(n int) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body exceeds %d bytes", n)}
}

func errUnknownOrigin(origin string) *Error {
	return &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("unknown log origin %q", origin)}
}

func errUnverified(msg string, err error) *Error {
	return &Error{Status: http.StatusForbidden, Msg: msg, Err: err}
}

func errConflict(recorded uint64, old uint64) *Error {
	return &Error{
		Status:       http.StatusConflict,
		Msg:          fmt.Sprintf("old size %d is not the latest cosigned size %d", old, recorded),
		RecordedSize: recorded,
	}
}

func errInconsistent(msg string, err error) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Msg: msg, Err: err}
}

func errRateLimited(d time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Msg: "rate limit for this log exceeded", RetryAfter: d}
}
