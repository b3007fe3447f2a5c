package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// LogIndexHeader carries the index of the existing entry on a 409 answer (rekor-tiles
// internal/server/service.go forwards the gRPC header "x-log-index", and Quire does the same).
const LogIndexHeader = "X-Log-Index"

// APIError is a non-2xx answer from the log, with what it said.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the gRPC status code from the body; codes.Unknown when the body has none.
	Code codes.Code
	// Message is the body's message, or the body itself (trimmed) when it is not a gRPC status.
	Message string
	// Details are the gRPC status details, undecoded.
	Details []json.RawMessage
	// RetryAfter is the delay the Retry-After header asked for; zero when absent or unparsable.
	RetryAfter time.Duration
	// Body is the answer's body as received (bounded).
	Body []byte
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "log answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != codes.Unknown {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later: pushback (429, 503) and gateway
// failures (502, 504). A 4xx other than 429 will fail again.
func (e *APIError) Retryable() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// DuplicateError is a 409 answer: an equivalent entry is already in the log.
type DuplicateError struct {
	// Index is the existing entry's index, from X-Log-Index or else from the message.
	Index uint64
	// IndexKnown is false when the answer named no index.
	IndexKnown bool
	*APIError
}

func (e *DuplicateError) Error() string {
	if !e.IndexKnown {
		return "duplicate entry: " + e.APIError.Error()
	}
	return fmt.Sprintf("duplicate of entry %d: %s", e.Index, e.APIError.Error())
}

// Unwrap gives errors.As access to the APIError.
func (e *DuplicateError) Unwrap() error { return e.APIError }

// RetryAfter reports whether err is an answer worth retrying and how long the log asked to wait
// (zero when it did not say).
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if !errors.As(err, &ae) || !ae.Retryable() {
		return 0, false
	}
	return ae.RetryAfter, true
}

// grpcStatus is the JSON grpc-gateway writes for a gRPC status (google.rpc.Status in protojson).
type grpcStatus struct {
	Code    *int              `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// indexInMessage finds the index rekor-tiles puts in its duplicate message: "an equivalent entry
// already exists in the transparency log with index 42".
var indexInMessage = regexp.MustCompile(`\bindex:? ([0-9]{1,20})\b`)

// DecodeError turns a non-2xx answer into an *APIError, or a *DuplicateError for 409. It never
// fails: a body that is not a gRPC status is kept as the message.
func DecodeError(status int, header http.Header, body []byte) error {
	ae := &APIError{StatusCode: status, Code: codes.Unknown, Body: body}
	var st grpcStatus
	if err := json.Unmarshal(body, &st); err == nil && (st.Code != nil || st.Message != "") {
		if st.Code != nil && *st.Code >= 0 && *st.Code <= int(codes.Unauthenticated) {
			ae.Code = codes.Code(*st.Code)
		}
		ae.Message = st.Message
		ae.Details = st.Details
	} else {
		ae.Message = plainMessage(body)
	}
	if v := header.Get("Retry-After"); v != "" {
		if d, err := ParseRetryAfter(v, time.Now()); err == nil {
			ae.RetryAfter = d
		}
	}
	if status != http.StatusConflict {
		return ae
	}
	de := &DuplicateError{APIError: ae}
	if v := header.Get(LogIndexHeader); v != "" {
		if idx, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			de.Index, de.IndexKnown = idx, true
		}
	}
	if !de.IndexKnown {
		if m := indexInMessage.FindStringSubmatch(ae.Message); m != nil {
			if idx, err := strconv.ParseUint(m[1], 10, 64); err == nil {
				de.Index, de.IndexKnown = idx, true
			}
		}
	}
	return de
}

// plainMessage makes a short, printable message of a body that is not JSON (a proxy's HTML page,
// http.MaxBytesReader's text).
func plainMessage(body []byte) string {
	const max = 200
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return s
}

// ParseRetryAfter reads a Retry-After value, either delay-seconds or an HTTP-date
// (RFC 9110 section 10.2.3). A date in the past gives zero.
func ParseRetryAfter(v string, now time.Time) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, errors.New("empty Retry-After")
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("parsing Retry-After seconds %q: %w", v, err)
		}
		return time.Duration(secs) * time.Second, nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, fmt.Errorf("parsing Retry-After date %q: %w", v, err)
	}
	if d := t.Sub(now); d > 0 {
		return d, nil
	}
	return 0, nil
}
