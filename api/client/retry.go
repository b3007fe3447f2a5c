package client

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Defaults of RetryPolicy's zero values.
const (
	// DefaultRetryAttempts is how many times a request is sent at most, the first time included.
	DefaultRetryAttempts = 5
	// DefaultRetryMaxDelay caps one wait, whatever Retry-After asks for.
	DefaultRetryMaxDelay = 30 * time.Second
	// DefaultRetryBudget caps the waits of one request together.
	DefaultRetryBudget = time.Minute
	// retryFallback is the first wait when the server asked for none; it doubles each time.
	retryFallback = 500 * time.Millisecond
)

// RetryPolicy says how NewRetryTransport retries a request the server pushed back.
type RetryPolicy struct {
	// Attempts is how many times a request is sent at most (DefaultRetryAttempts if 0).
	Attempts int
	// MaxDelay caps one wait (DefaultRetryMaxDelay if 0).
	MaxDelay time.Duration
	// Budget caps all the waits for one request (DefaultRetryBudget if 0): a server asking for
	// more is answered with its last refusal.
	Budget time.Duration
	// OnRetry, if set, hears of each retry before its wait.
	OnRetry func(req *http.Request, status int, wait time.Duration)
}

// NewRetryTransport wraps base (nil: http.DefaultTransport) so that an answer of 429 Too Many
// Requests or 503 Service Unavailable, the answers Rekor v2 logs give under pushback, is retried
// after the Retry-After the server asked for (RFC 9110 section 10.2.3), or after a doubling pause
// when it gave none, within p's bounds. Other answers, and transport errors, are returned as they
// are. A request whose body cannot be replayed (no GetBody) is sent once.
//
// Retrying a write is safe against a Rekor v2 log: a 429 or 503 means nothing was logged, and
// should a first attempt have been logged after all, the retry is answered 409 with its index.
func NewRetryTransport(base http.RoundTripper, p RetryPolicy) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if p.Attempts <= 0 {
		p.Attempts = DefaultRetryAttempts
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultRetryMaxDelay
	}
	if p.Budget <= 0 {
		p.Budget = DefaultRetryBudget
	}
	return &retryTransport{base: base, p: p}
}

type retryTransport struct {
	base http.RoundTripper
	p    RetryPolicy
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	waited, fallback := time.Duration(0), retryFallback
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			r = req.Clone(req.Context())
			if req.Body != nil && req.Body != http.NoBody {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
			return resp, err
		}
		if attempt >= t.p.Attempts || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
			return resp, nil
		}
		wait := fallback
		if v := resp.Header.Get("Retry-After"); v != "" {
			if d, err := ParseRetryAfter(v, time.Now()); err == nil {
				wait = d
			}
		}
		wait = min(wait, t.p.MaxDelay)
		if waited+wait > t.p.Budget {
			return resp, nil
		}
		// The refusal is dropped; read a little of it so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if t.p.OnRetry != nil {
			t.p.OnRetry(req, resp.StatusCode, wait)
		}
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		waited += wait
		fallback *= 2
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
