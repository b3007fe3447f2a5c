package client

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestRetryTransport(t *testing.T) {
	tests := []struct {
		name       string
		answers    []int  // statuses the server gives in turn, then 201
		retryAfter string // Retry-After on refusals
		policy     RetryPolicy
		wantStatus int
		wantTries  int
	}{
		{name: "a 503 is retried until the log takes the write", answers: []int{503, 503}, retryAfter: "0",
			wantStatus: 201, wantTries: 3},
		{name: "a 429 is retried too", answers: []int{429}, retryAfter: "0", wantStatus: 201, wantTries: 2},
		{name: "an HTTP-date in the past means now", answers: []int{503}, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT",
			wantStatus: 201, wantTries: 2},
		{name: "attempts are bounded and the last refusal is returned", answers: []int{503, 503, 503, 503}, retryAfter: "0",
			policy: RetryPolicy{Attempts: 3}, wantStatus: 503, wantTries: 3},
		{name: "a wait beyond the budget is not made", answers: []int{503}, retryAfter: "120",
			policy: RetryPolicy{Budget: time.Second}, wantStatus: 503, wantTries: 1},
		{name: "other refusals are not retried", answers: []int{400}, wantStatus: 400, wantTries: 1},
		{name: "a gateway timeout is not retried: the entry may be logged", answers: []int{504}, wantStatus: 504, wantTries: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies [][]byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, b)
				n := len(bodies)
				mu.Unlock()
				if n <= len(tc.answers) {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(tc.answers[n-1])
					return
				}
				w.WriteHeader(http.StatusCreated)
			}))
			defer srv.Close()
			retries := 0
			tc.policy.OnRetry = func(*http.Request, int, time.Duration) { retries++ }
			hc := &http.Client{Transport: NewRetryTransport(nil, tc.policy)}
			body := []byte(`{"entry":1}`)
			resp, err := hc.Post(srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || len(bodies) != tc.wantTries || retries != tc.wantTries-1 {
				t.Fatalf("status %d after %d tries (%d retries announced), want %d after %d", resp.StatusCode, len(bodies), retries, tc.wantStatus, tc.wantTries)
			}
			for i, b := range bodies {
				if !bytes.Equal(b, body) {
					t.Fatalf("try %d sent %q, want the same body %q", i+1, b, body)
				}
			}
		})
	}
	t.Run("a wait ends when the caller gives up", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		hc := &http.Client{Transport: NewRetryTransport(nil, RetryPolicy{}), Timeout: 200 * time.Millisecond}
		start := time.Now()
		if _, err := hc.Get(srv.URL); err == nil {
			t.Fatal("no error when the client's timeout ends the wait")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the wait went on for %v after the caller's timeout", d)
		}
	})
}
