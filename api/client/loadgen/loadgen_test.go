package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rekorpb "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/client"
)

// checkingLog is a real HTTP server on 127.0.0.1 that does what a Rekor v2 log does to a request
// before appending it: strict protojson decoding and ECDSA signature verification with the
// standard library. It numbers distinct digests and answers a repeat with 409 and X-Log-Index.
type checkingLog struct {
	*httptest.Server
	delay time.Duration

	mu       sync.Mutex
	index    map[string]uint64
	created  int
	dups     int
	rejected []string
	inFlight atomic.Int64
	maxIn    atomic.Int64
}

func newCheckingLog(t *testing.T, delay time.Duration) *checkingLog {
	t.Helper()
	l := &checkingLog{delay: delay, index: map[string]uint64{}}
	l.Server = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.Close)
	return l
}

func (l *checkingLog) reject(w http.ResponseWriter, why string) {
	l.mu.Lock()
	l.rejected = append(l.rejected, why)
	l.mu.Unlock()
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"code":3,"message":%q,"details":[]}`, why)
}

func (l *checkingLog) serve(w http.ResponseWriter, r *http.Request) {
	n := l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	for {
		m := l.maxIn.Load()
		if n <= m || l.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != client.EntriesPath {
		l.reject(w, "wrong route "+r.Method+" "+r.URL.Path)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		l.reject(w, err.Error())
		return
	}
	var req pb.CreateEntryRequest
	if err := protojson.Unmarshal(body, &req); err != nil {
		l.reject(w, "decoding: "+err.Error())
		return
	}
	hr := req.GetHashedRekordRequestV002()
	pub, err := x509.ParsePKIXPublicKey(hr.GetSignature().GetVerifier().GetPublicKey().GetRawBytes())
	if err != nil {
		l.reject(w, "public key: "+err.Error())
		return
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || !ecdsa.VerifyASN1(k, hr.GetDigest(), hr.GetSignature().GetContent()) {
		l.reject(w, "signature does not verify")
		return
	}
	time.Sleep(l.delay)
	key := hex.EncodeToString(hr.GetDigest())
	l.mu.Lock()
	idx, seen := l.index[key]
	if seen {
		l.dups++
	} else {
		idx = uint64(len(l.index))
		l.index[key] = idx
		l.created++
	}
	l.mu.Unlock()
	if seen {
		w.Header().Set(client.LogIndexHeader, strconv.FormatUint(idx, 10))
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, `{"code":6,"message":"an equivalent entry already exists in the transparency log with index %d","details":[]}`, idx)
		return
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"logIndex":"%d"}`, idx)
}

func TestClosedLoopSendsDistinctSignedRequests(t *testing.T) {
	tests := []struct {
		name        string
		workers     int
		dupFraction float64
	}{
		{"eight workers without duplicates get only 201s", 8, 0},
		{"duplicates are answered 409 and counted as expected", 8, 0.25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newCheckingLog(t, time.Millisecond)
			var results atomic.Int64
			rep, err := Run(context.Background(), Config{
				URL:         l.URL,
				Workers:     tc.workers,
				Duration:    700 * time.Millisecond,
				DupFraction: tc.dupFraction,
				PoolSize:    1000,
				OnResult:    func(Result) { results.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.rejected) > 0 {
				t.Fatalf("the log rejected %d requests, first: %s", len(l.rejected), l.rejected[0])
			}
			if rep.Created == 0 {
				t.Fatal("no entry created")
			}
			if got := rep.Created + rep.CreatedAfterEnd; got != int64(l.created) {
				t.Errorf("report counts %d 201s, the log made %d", got, l.created)
			}
			if rep.Sent != int64(l.created+l.dups) || results.Load() != rep.Sent {
				t.Errorf("sent %d, OnResult saw %d, the log answered %d", rep.Sent, results.Load(), l.created+l.dups)
			}
			if rep.Errors["409"] != int64(l.dups) {
				t.Errorf("report counts %d 409s, the log sent %d", rep.Errors["409"], l.dups)
			}
			if tc.dupFraction == 0 && l.dups != 0 {
				t.Errorf("%d duplicates without --dup-fraction", l.dups)
			}
			if tc.dupFraction > 0 && (rep.DuplicatesSent == 0 || rep.DuplicatesSent != int64(l.dups)) {
				t.Errorf("duplicates sent %d, the log saw %d", rep.DuplicatesSent, l.dups)
			}
			if rep.UnexpectedErrors() != 0 {
				t.Errorf("unexpected errors: %v", rep.Errors)
			}
			if rep.Latency.Count != rep.Created+rep.CreatedAfterEnd || rep.Latency.P50 <= 0 || rep.Latency.P99 < rep.Latency.P50 {
				t.Errorf("latency summary %+v for %d 201s", rep.Latency, rep.Created)
			}
			if got := l.maxIn.Load(); got > int64(tc.workers) {
				t.Errorf("%d requests in flight at once with %d workers", got, tc.workers)
			}
		})
	}
}

func TestSeveralFrontEndsGetTheRequestsInTurn(t *testing.T) {
	fes := []*checkingLog{newCheckingLog(t, time.Millisecond), newCheckingLog(t, time.Millisecond), newCheckingLog(t, time.Millisecond)}
	rep, err := Run(context.Background(), Config{
		URL:      fes[0].URL + "," + fes[1].URL + ", " + fes[2].URL,
		Workers:  6,
		Duration: 500 * time.Millisecond,
		PoolSize: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, l := range fes {
		l.mu.Lock()
		n, rejected := l.created, len(l.rejected)
		l.mu.Unlock()
		total += n
		// In turn: no front end gets more than its share plus the workers' last round.
		if n == 0 || rejected != 0 || int64(n) > rep.Sent/3+6 {
			t.Errorf("front end %d created %d of %d (rejected %d)", i, n, rep.Sent, rejected)
		}
	}
	if int64(total) != rep.Created+rep.CreatedAfterEnd {
		t.Errorf("the front ends created %d, the report counts %d", total, rep.Created+rep.CreatedAfterEnd)
	}
}

func TestOpenLoopChargesQueueingToLatency(t *testing.T) {
	// Two workers against 50 ms answers can carry 40/s; 100/s offered must queue, and latency
	// counted from the schedule must show it.
	l := newCheckingLog(t, 50*time.Millisecond)
	rep, err := Run(context.Background(), Config{
		URL:      l.URL,
		Workers:  2,
		Rate:     100,
		Duration: time.Second,
		PoolSize: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "open" {
		t.Errorf("mode %q", rep.Mode)
	}
	if rep.Sent+rep.Unsent+rep.Errors["generator"] != 100 {
		t.Errorf("sent %d + unsent %d != 100 scheduled", rep.Sent, rep.Unsent)
	}
	if rep.Unsent == 0 {
		t.Error("an overloaded open loop reported every arrival as sent")
	}
	if rep.Latency.Max < 200 {
		t.Errorf("max latency %.1f ms: queueing behind two 50 ms workers is not counted", rep.Latency.Max)
	}
	if l.maxIn.Load() > 2 {
		t.Errorf("%d in flight with 2 workers", l.maxIn.Load())
	}
}

func TestOpenLoopAtAnEasyRateSendsEveryArrival(t *testing.T) {
	l := newCheckingLog(t, 0)
	rep, err := Run(context.Background(), Config{URL: l.URL, Workers: 16, Rate: 200, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent+rep.Unsent != 100 {
		t.Errorf("sent %d + unsent %d, want 100 scheduled", rep.Sent, rep.Unsent)
	}
	if rep.Created+rep.CreatedAfterEnd != int64(l.created) || l.created == 0 {
		t.Errorf("report %d created, log %d", rep.Created+rep.CreatedAfterEnd, l.created)
	}
}

func TestServerErrorsAreCountedByStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"code":14,"message":"reached max pushback; retry","details":[]}`))
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Workers: 4, Duration: 300 * time.Millisecond, PoolSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != 0 || rep.Sent == 0 || rep.Errors["503"] != rep.Sent {
		t.Fatalf("created %d sent %d errors %v", rep.Created, rep.Sent, rep.Errors)
	}
	if rep.UnexpectedErrors() != rep.Sent {
		t.Errorf("503s not counted as unexpected: %d of %d", rep.UnexpectedErrors(), rep.Sent)
	}
}

func TestAnEmptyPoolIsRefilledBySigningDuringTheRun(t *testing.T) {
	l := newCheckingLog(t, 0)
	rep, err := Run(context.Background(), Config{URL: l.URL, Workers: 2, Duration: 300 * time.Millisecond, PoolSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SignedDuringRun == 0 || rep.Created <= 10 {
		t.Fatalf("signed during run %d, created %d: the pool of 10 was not refilled", rep.SignedDuringRun, rep.Created)
	}
	if len(l.rejected) > 0 {
		t.Fatalf("rejected: %s", l.rejected[0])
	}
}

func TestConfigIsValidated(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"a missing URL is refused", Config{}, "missing log URL"},
		{"negative workers are refused", Config{URL: "http://127.0.0.1:1", Workers: -1}, "workers"},
		{"a negative rate is refused", Config{URL: "http://127.0.0.1:1", Rate: -5}, "rate"},
		{"an infinite rate is refused", Config{URL: "http://127.0.0.1:1", Rate: math.Inf(1)}, "rate"},
		{"a dup fraction of 1 is refused", Config{URL: "http://127.0.0.1:1", DupFraction: 1}, "dup fraction"},
		{"a huge pool is refused", Config{URL: "http://127.0.0.1:1", PoolSize: MaxPoolSize + 1}, "pool size"},
		{"a URL without scheme is refused", Config{URL: "127.0.0.1:1", PoolSize: 1, Duration: time.Millisecond}, "log URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestPoolIsSizedFromTheLoad(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want int
	}{
		{"an open loop signs rate×duration plus a margin", Config{URL: "x", Rate: 1000, Duration: 10 * time.Second, Workers: 100}, 11100},
		{"duplicates need fewer fresh requests", Config{URL: "x", Rate: 1000, Duration: 10 * time.Second, Workers: 100, DupFraction: 0.5}, 5600},
		{"an explicit pool size wins", Config{URL: "x", PoolSize: 7}, 7},
		{"a closed loop assumes the default rate", Config{URL: "x", Duration: time.Second, Workers: 10}, DefaultClosedLoopRate*11/10 + 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if err := cfg.setDefaults(); err != nil {
				t.Fatal(err)
			}
			if d := cfg.PoolSize - tc.want; d < -1 || d > 1 {
				t.Fatalf("pool %d, want %d", cfg.PoolSize, tc.want)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	samples := make([]time.Duration, 100)
	for i := range samples {
		samples[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name string
		in   []time.Duration
		want LatencySummary
	}{
		{"no samples give zeros", nil, LatencySummary{}},
		{"one sample is every percentile", []time.Duration{7 * time.Millisecond}, LatencySummary{Count: 1, Min: 7, Mean: 7, P50: 7, P90: 7, P99: 7, P999: 7, Max: 7}},
		{"1..100 ms give nearest-rank percentiles", samples, LatencySummary{Count: 100, Min: 1, Mean: 50.5, P50: 50, P90: 90, P99: 99, P999: 100, Max: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Fatalf("summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestGeneratorSignsDistinctRequestsOverEveryKey(t *testing.T) {
	for _, kt := range client.KeyTypes() {
		if kt == client.KeyRSA3072 || kt == client.KeyRSA4096 {
			continue // generating these keys takes seconds; rsa-2048 covers the RSA path
		}
		t.Run(string(kt)+" requests are distinct and decode strictly", func(t *testing.T) {
			g, err := NewGenerator(kt, 2)
			if err != nil {
				t.Fatal(err)
			}
			bodies, err := g.SignMany(context.Background(), 20, 2)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			keys := map[string]bool{}
			for _, b := range bodies {
				var req pb.CreateEntryRequest
				if err := protojson.Unmarshal(b, &req); err != nil {
					t.Fatal(err)
				}
				hr := req.GetHashedRekordRequestV002()
				d := hex.EncodeToString(hr.GetDigest())
				if seen[d] {
					t.Fatalf("digest %s repeated", d)
				}
				seen[d] = true
				keys[string(hr.GetSignature().GetVerifier().GetPublicKey().GetRawBytes())] = true
			}
			if len(keys) != 2 {
				t.Errorf("%d distinct keys, want 2", len(keys))
			}
		})
	}
}

func TestRecorderWritesAReceiptPer201(t *testing.T) {
	tle := &rekorpb.TransparencyLogEntry{
		LogIndex:          7,
		CanonicalizedBody: []byte(`{"kind":"hashedrekord"}`),
		InclusionProof: &rekorpb.InclusionProof{
			LogIndex: 7, TreeSize: 8, RootHash: make([]byte, 32),
			Checkpoint: &rekorpb.Checkpoint{Envelope: "origin\n8\nAAAA\n"},
		},
	}
	body, err := protojson.Marshal(tle)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rec := NewRecorder(&out)
	rec.Record(Result{Status: 201, Body: body})
	rec.Record(Result{Status: 409, Err: errors.New("duplicate")})
	rec.Record(Result{Status: 201, Body: []byte("not json")})
	written, malformed, err := rec.Flush()
	if err != nil || written != 1 || malformed != 1 {
		t.Fatalf("written %d malformed %d err %v", written, malformed, err)
	}
	var got Receipt
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if got.LogIndex != 7 || got.TreeSize != 8 || string(got.CanonicalizedBody) != `{"kind":"hashedrekord"}` || got.Checkpoint != "origin\n8\nAAAA\n" {
		t.Fatalf("receipt %+v", got)
	}
}
