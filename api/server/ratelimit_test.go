package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quirelog/quire/log/admission"
)

func newAddressLimiter(t *testing.T) *admission.Limiter {
	t.Helper()
	lim, err := admission.NewLimiter(admission.Limit{Name: "address", Rate: 0.01, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	return lim
}

// postFrom posts a new entry with X-Forwarded-For set to xff (none if empty).
func postFrom(t *testing.T, l *testLog, n int, xff string) httpAnswer {
	t.Helper()
	k := newSigner(t)
	req, err := http.NewRequest(http.MethodPost, l.baseURL+"/api/v2/log/entries", strings.NewReader(string(signArtifact(t, k, []byte(fmt.Sprint("rate ", n, xff))).json())))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return httpAnswer{status: resp.StatusCode, header: resp.Header}
}

func TestAddressRateLimit(t *testing.T) {
	t.Run("a client past its burst gets 429 with Retry-After over REST and gRPC, whatever X-Forwarded-For it sends", func(t *testing.T) {
		l := startLog(t, limitAddresses(newAddressLimiter(t)))
		for i := range 2 {
			if a := postFrom(t, l, i, ""); a.status != http.StatusCreated {
				t.Fatalf("write %d within the burst: %d", i, a.status)
			}
		}
		a := postFrom(t, l, 2, "198.51.100.7")
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
			t.Fatalf("write past the burst: %d, Retry-After %q; want 429 with Retry-After", a.status, a.header.Get("Retry-After"))
		}
		rekor := rekorpb.NewRekorClient(dialGRPC(t, l))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var hdr metadata.MD
		_, err := rekor.CreateEntry(ctx, signArtifact(t, newSigner(t), []byte("grpc")).proto(), grpc.Header(&hdr))
		if status.Code(err) != codes.ResourceExhausted || len(hdr["retry-after"]) != 1 {
			t.Fatalf("gRPC write from the same address: %v, headers %v; want RESOURCE_EXHAUSTED with retry-after", err, hdr)
		}
	})
	t.Run("behind a trusted proxy each forwarded client has its own bucket", func(t *testing.T) {
		l := startLog(t, limitAddresses(newAddressLimiter(t), netip.MustParsePrefix("127.0.0.0/8")))
		for i := range 2 {
			if a := postFrom(t, l, i, "203.0.113.1"); a.status != http.StatusCreated {
				t.Fatalf("write %d of the first client: %d", i, a.status)
			}
		}
		if a := postFrom(t, l, 2, "203.0.113.1"); a.status != http.StatusTooManyRequests {
			t.Fatalf("the first client's third write: %d, want 429", a.status)
		}
		// A client cannot escape by prepending an address: the proxy appends the one it saw.
		if a := postFrom(t, l, 3, "192.0.2.99, 203.0.113.1"); a.status != http.StatusTooManyRequests {
			t.Fatalf("a forged left-hand hop escaped the limit: %d", a.status)
		}
		if a := postFrom(t, l, 4, "203.0.113.2"); a.status != http.StatusCreated {
			t.Fatalf("another forwarded client: %d, want 201", a.status)
		}
	})
}
