package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

// fillLog writes n entries for distinct artifacts and returns the answers and the artifacts' digests.
func fillLog(t testing.TB, l *testLog, n int) ([]*rekorv1.TransparencyLogEntry, [][]byte) {
	t.Helper()
	k := newSigner(t)
	var tles []*rekorv1.TransparencyLogEntry
	var digests [][]byte
	for i := range n {
		e := signArtifact(t, k, []byte(fmt.Sprintf("read test artifact %d", i)))
		a := l.post(e.json())
		if a.status != http.StatusCreated {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		tles = append(tles, decodeEntry(t, a.body))
		digests = append(digests, e.digest)
	}
	return tles, digests
}

func TestQuireV1REST(t *testing.T) {
	l := startLog(t)
	tles, digests := fillLog(t, l, 12)
	cpRaw := l.do(http.MethodGet, "/checkpoint", nil).body
	cp, err := l.openCheckpoint(cpRaw)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("an entry by index comes with its body, leaf hash and a proof to the latest checkpoint", func(t *testing.T) {
		a := l.do(http.MethodGet, "/quire/v1/entries/5", nil)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		e := &quirev1.Entry{}
		if err := protojson.Unmarshal(a.body, e); err != nil {
			t.Fatalf("decoding: %v", err)
		}
		tle := e.GetTransparencyLogEntry()
		if !bytes.Equal(tle.GetCanonicalizedBody(), tles[5].GetCanonicalizedBody()) {
			t.Errorf("body differs from what CreateEntry answered")
		}
		if !bytes.Equal(e.GetLeafHash(), rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody())) {
			t.Errorf("leafHash is not the RFC 6962 hash of the body")
		}
		if !bytes.Equal(tle.GetLogId().GetKeyId(), tles[5].GetLogId().GetKeyId()) {
			t.Errorf("logId %x, CreateEntry said %x", tle.GetLogId().GetKeyId(), tles[5].GetLogId().GetKeyId())
		}
		if err := l.verifyAnswer(tle); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("an inclusion proof by index verifies at a past tree size", func(t *testing.T) {
		a := l.do(http.MethodGet, "/quire/v1/proof/inclusion?index=3&tree_size=7", nil)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		p := &rekorv1.InclusionProof{}
		if err := protojson.Unmarshal(a.body, p); err != nil {
			t.Fatal(err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(tles[3].GetCanonicalizedBody())
		if p.GetTreeSize() != 7 {
			t.Fatalf("tree size %d, want 7", p.GetTreeSize())
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 3, 7, leaf, p.GetHashes(), p.GetRootHash()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("an inclusion proof by leaf hash verifies against the latest checkpoint", func(t *testing.T) {
		leaf := rfc6962.DefaultHasher.HashLeaf(tles[8].GetCanonicalizedBody())
		a := l.pollUntil(http.StatusOK, "/quire/v1/proof/inclusion?leaf_hash="+hex.EncodeToString(leaf))
		p := &rekorv1.InclusionProof{}
		if err := protojson.Unmarshal(a.body, p); err != nil {
			t.Fatal(err)
		}
		if p.GetLogIndex() != 8 {
			t.Fatalf("proof for index %d, want 8", p.GetLogIndex())
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 8, uint64(p.GetTreeSize()), leaf, p.GetHashes(), p.GetRootHash()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a consistency proof links a past size to the latest checkpoint", func(t *testing.T) {
		a := l.do(http.MethodGet, "/quire/v1/proof/consistency?first=4", nil)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		p := &quirev1.ConsistencyProof{}
		if err := protojson.Unmarshal(a.body, p); err != nil {
			t.Fatal(err)
		}
		if p.GetSecond() != cp.Size || !bytes.Equal(p.GetSecondRootHash(), cp.Hash) {
			t.Fatalf("second %d root %x, served checkpoint %d %x", p.GetSecond(), p.GetSecondRootHash(), cp.Size, cp.Hash)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 4, p.GetSecond(), p.GetHashes(), p.GetFirstRootHash(), p.GetSecondRootHash()); err != nil {
			t.Fatal(err)
		}
		if p.GetCheckpoint().GetEnvelope() == "" {
			t.Fatal("the proof to the latest size carries no checkpoint")
		}
	})

	t.Run("a consistency proof from the empty tree is empty and starts at the empty root", func(t *testing.T) {
		a := l.do(http.MethodGet, "/quire/v1/proof/consistency?first=0&second=3", nil)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		p := &quirev1.ConsistencyProof{}
		if err := protojson.Unmarshal(a.body, p); err != nil {
			t.Fatal(err)
		}
		empty := sha256.Sum256(nil)
		if p.GetFirst() != 0 || p.GetSecond() != 3 || len(p.GetHashes()) != 0 || !bytes.Equal(p.GetFirstRootHash(), empty[:]) {
			t.Fatalf("proof %v, want no hashes from the empty root %x to size 3", p, empty)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 0, 3, p.GetHashes(), p.GetFirstRootHash(), p.GetSecondRootHash()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("search by artifact digest finds the entry", func(t *testing.T) {
		a := l.pollUntil(http.StatusOK, "/quire/v1/search?digest=sha256:"+hex.EncodeToString(digests[10]), func(b []byte) bool {
			return bytes.Contains(b, []byte(`"10"`))
		})
		r := &quirev1.SearchResponse{}
		if err := protojson.Unmarshal(a.body, r); err != nil {
			t.Fatal(err)
		}
		if len(r.GetIndices()) != 1 || r.GetIndices()[0] != 10 {
			t.Fatalf("indices %v, want [10]", r.GetIndices())
		}
	})

	t.Run("a past checkpoint is served by size and is signed by the log", func(t *testing.T) {
		past := tles[2].GetInclusionProof().GetCheckpoint().GetEnvelope()
		size := tles[2].GetInclusionProof().GetTreeSize()
		a := l.do(http.MethodGet, "/quire/v1/checkpoints?size="+strconv.FormatInt(size, 10), nil)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		c := &rekorv1.Checkpoint{}
		if err := protojson.Unmarshal(a.body, c); err != nil {
			t.Fatal(err)
		}
		got, err := l.openCheckpoint([]byte(c.GetEnvelope()))
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != uint64(size) {
			t.Fatalf("checkpoint size %d, want %d", got.Size, size)
		}
		if c.GetEnvelope() != past {
			t.Errorf("served checkpoint differs from the one entry 2 was answered with")
		}
	})

	errorCases := []struct {
		name, path string
		status     int
		mention    string
	}{
		{"an index beyond the log is 404", "/quire/v1/entries/1000", 404, "1000"},
		{"a non-numeric index is 400", "/quire/v1/entries/abc", 400, "index"},
		{"an inclusion proof with neither index nor leaf hash is 400", "/quire/v1/proof/inclusion", 400, "leaf_hash"},
		{"an inclusion proof with both index and leaf hash is 400", "/quire/v1/proof/inclusion?index=1&leaf_hash=" + strings.Repeat("ab", 32), 400, "not both"},
		{"a leaf hash that is not hex is 400", "/quire/v1/proof/inclusion?leaf_hash=zz", 400, "leaf_hash"},
		{"an index at or beyond the tree size is 400", "/quire/v1/proof/inclusion?index=5&tree_size=5", 400, "index"},
		{"a tree size beyond the log is 404", "/quire/v1/proof/inclusion?index=1&tree_size=1000", 404, "1000"},
		{"an unknown leaf hash is 404", "/quire/v1/proof/inclusion?leaf_hash=" + strings.Repeat("ab", 32), 404, "leaf hash"},
		{"a consistency proof from beyond the latest size is 404", "/quire/v1/proof/consistency?first=1000", 404, "1000"},
		{"reversed consistency sizes are 400", "/quire/v1/proof/consistency?first=5&second=3", 400, "first"},
		{"a negative size is 400", "/quire/v1/proof/consistency?first=-1", 400, "first"},
		{"a consistency proof beyond the log is 404", "/quire/v1/proof/consistency?first=1&second=1000", 404, "1000"},
		{"a malformed search digest is 400", "/quire/v1/search?digest=md5:00", 400, "digest"},
		{"a checkpoint for a size never published is 404", "/quire/v1/checkpoints?size=100000", 404, "100000"},
		{"an unknown quire.v1 path is 404", "/quire/v1/nothing", 404, ""},
		{"a write method on a read route is refused", "POST /quire/v1/entries/1", 405, ""},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			method, path := http.MethodGet, tc.path
			if m, p, ok := strings.Cut(tc.path, " "); ok {
				method, path = m, p
			}
			a := l.do(method, path, nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			e, err := decodeErrorBody(a.body)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(*e.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", *e.Message, tc.mention)
			}
		})
	}
}

// pollUntil GETs path until it answers want (and, if given, the body passes ok), for results the
// search follower fills in shortly after publication. It gives up after 10 s.
func (l *testLog) pollUntil(want int, path string, ok ...func([]byte) bool) httpAnswer {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var a httpAnswer
	for {
		a = l.do(http.MethodGet, path, nil)
		if a.status == want && (len(ok) == 0 || ok[0](a.body)) {
			return a
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("GET %s: still %d after 10s: %s", path, a.status, a.body)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	l := startLog(t)
	fillLog(t, l, 2)
	l.do(http.MethodGet, "/quire/v1/entries/999", nil)

	t.Run("healthz answers ok", func(t *testing.T) {
		if a := l.do(http.MethodGet, "/healthz", nil); a.status != 200 || string(a.body) != "ok\n" {
			t.Fatalf("status %d body %q", a.status, a.body)
		}
	})
	t.Run("metrics count requests by route and status", func(t *testing.T) {
		if a := l.do(http.MethodGet, "/metrics", nil); a.status != http.StatusNotFound {
			t.Fatalf("the public listener answers /metrics with %d, want 404: metrics are for the operator's listener", a.status)
		}
		rec := httptest.NewRecorder()
		l.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		a := httpAnswer{status: rec.Code, body: rec.Body.Bytes()}
		if a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
		for _, want := range []string{
			`quire_http_requests_total{code="201",method="POST",route="create_entry"} 2`,
			`quire_http_request_duration_seconds_count{route="create_entry"} 2`,
			`quire_http_requests_total{code="404",method="GET",route="quire_v1_entry"} 1`,
			`go_goroutines`,
		} {
			if !bytes.Contains(a.body, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

func TestRoutingErrorsUseTheErrorBody(t *testing.T) {
	l := startLog(t)
	a := l.do(http.MethodGet, "/api/v2/log/entries", nil)
	if a.status != http.StatusMethodNotAllowed && a.status != http.StatusNotFound {
		t.Fatalf("GET on the write route: status %d: %s", a.status, a.body)
	}
	if _, err := decodeErrorBody(a.body); err != nil {
		t.Fatal(err)
	}
}

func TestQuireV1OnAnEmptyLog(t *testing.T) {
	l := startLog(t)
	tests := []struct {
		name, path string
		status     int
	}{
		{"an entry of an empty log is 404", "/quire/v1/entries/0", 404},
		{"a consistency proof on an empty log is 404", "/quire/v1/proof/consistency?first=1", 404},
		{"an inclusion proof on an empty log is 400 naming the index", "/quire/v1/proof/inclusion?index=0", 400},
		{"the latest checkpoint of an empty log is served", "/quire/v1/checkpoints", 200},
		{"a search on an empty log finds nothing", "/quire/v1/search?digest=sha256:" + strings.Repeat("0", 64), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := l.do(http.MethodGet, tc.path, nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status >= 400 {
				if _, err := decodeErrorBody(a.body); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
