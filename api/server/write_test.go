package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

func decodeEntry(t testing.TB, b []byte) *rekorv1.TransparencyLogEntry {
	t.Helper()
	tle := &rekorv1.TransparencyLogEntry{}
	if err := protojson.Unmarshal(b, tle); err != nil {
		t.Fatalf("answer is not a TransparencyLogEntry: %v\n%s", err, b)
	}
	return tle
}

// openCheckpoint verifies a checkpoint note with the log's key and parses it.
func (l *testLog) openCheckpoint(raw []byte) (*fmtlog.Checkpoint, error) {
	n, err := note.Open(raw, note.VerifierList(l.verifier))
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	cp := &fmtlog.Checkpoint{}
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("checkpoint body: %w", err)
	}
	if cp.Origin != testOrigin {
		return nil, fmt.Errorf("checkpoint origin %q, want %q", cp.Origin, testOrigin)
	}
	return cp, nil
}

// verifyAnswer checks a CreateEntry answer on its own: the checkpoint in it is signed by the log,
// its root is the proof's, and the proof puts SHA-256(0x00 || canonicalizedBody) at logIndex.
func (l *testLog) verifyAnswer(tle *rekorv1.TransparencyLogEntry) error {
	ip := tle.GetInclusionProof()
	if ip == nil || ip.GetCheckpoint() == nil {
		return fmt.Errorf("answer has no inclusion proof with checkpoint")
	}
	cp, err := l.openCheckpoint([]byte(ip.GetCheckpoint().GetEnvelope()))
	if err != nil {
		return err
	}
	if cp.Size != uint64(ip.GetTreeSize()) || !bytes.Equal(cp.Hash, ip.GetRootHash()) {
		return fmt.Errorf("checkpoint (size %d) differs from proof (size %d)", cp.Size, ip.GetTreeSize())
	}
	if tle.GetLogIndex() != ip.GetLogIndex() {
		return fmt.Errorf("logIndex %d but proof for %d", tle.GetLogIndex(), ip.GetLogIndex())
	}
	if kv := tle.GetKindVersion(); kv.GetKind() != "hashedrekord" || kv.GetVersion() != "0.0.2" {
		return fmt.Errorf("kindVersion %v, want hashedrekord 0.0.2", kv)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody())
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), uint64(ip.GetTreeSize()), leaf, ip.GetHashes(), ip.GetRootHash()); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	return nil
}

// verifyAgainstServed checks the entry against the checkpoint the log serves now, with a proof
// built by Tessera's client from the served tiles.
func (l *testLog) verifyAgainstServed(tle *rekorv1.TransparencyLogEntry) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(l.baseURL + "/")
	if err != nil {
		return err
	}
	f, err := client.NewHTTPFetcher(u, nil)
	if err != nil {
		return fmt.Errorf("tile fetcher: %w", err)
	}
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("fetching checkpoint: %w", err)
	}
	cp, err := l.openCheckpoint(raw)
	if err != nil {
		return err
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	if err != nil {
		return fmt.Errorf("proof builder: %w", err)
	}
	idx := uint64(tle.GetLogIndex())
	hashes, err := pb.InclusionProof(ctx, idx)
	if err != nil {
		return fmt.Errorf("proof from tiles: %w", err)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody())
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, leaf, hashes, cp.Hash); err != nil {
		return fmt.Errorf("proof from tiles against served checkpoint: %w", err)
	}
	return nil
}

func TestCreateEntry(t *testing.T) {
	l := startLog(t)
	k := newSigner(t)

	t.Run("a signed hashedrekord is answered 201 with a proof that verifies against the served checkpoint", func(t *testing.T) {
		e := signArtifact(t, k, []byte("artifact one"))
		a := l.post(e.json())
		if a.status != http.StatusCreated {
			t.Fatalf("status %d, want 201: %s", a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		tle := decodeEntry(t, a.body)
		if err := l.verifyAnswer(tle); err != nil {
			t.Fatal(err)
		}
		if err := l.verifyAgainstServed(tle); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(tle.GetCanonicalizedBody(), []byte(`"kind":"hashedrekord"`)) {
			t.Errorf("canonicalized body %s lacks the kind", tle.GetCanonicalizedBody())
		}
		if len(tle.GetLogId().GetKeyId()) != 32 {
			t.Errorf("logId.keyId has %d bytes, want 32", len(tle.GetLogId().GetKeyId()))
		}
	})

	t.Run("snake_case field names are accepted like camelCase", func(t *testing.T) {
		e := signArtifact(t, k, []byte("artifact snake"))
		body := strings.NewReplacer(`hashedRekordRequestV002`, `hashed_rekord_request_v002`, `rawBytes`, `raw_bytes`, `keyDetails`, `key_details`, `publicKey`, `public_key`).Replace(string(e.json()))
		a := l.post([]byte(body))
		if a.status != http.StatusCreated {
			t.Fatalf("status %d, want 201: %s", a.status, a.body)
		}
		if err := l.verifyAnswer(decodeEntry(t, a.body)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the answer emits every field the way rekor-tiles does", func(t *testing.T) {
		e := signArtifact(t, k, []byte("artifact fields"))
		a := l.post(e.json())
		if a.status != http.StatusCreated {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a.body, &m); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"logIndex", "logId", "kindVersion", "inclusionProof", "canonicalizedBody"} {
			if _, ok := m[f]; !ok {
				t.Errorf("answer lacks %q: %s", f, a.body)
			}
		}
	})
}

func TestWriteErrors(t *testing.T) {
	l := startLog(t)
	k := newSigner(t)
	other := newSigner(t)

	first := signArtifact(t, k, []byte("the original"))
	a := l.post(first.json())
	if a.status != http.StatusCreated {
		t.Fatalf("setup: status %d: %s", a.status, a.body)
	}
	firstIndex := decodeEntry(t, a.body).GetLogIndex()

	good := signArtifact(t, k, []byte("good"))
	forged := good
	forged.sig = signArtifact(t, other, []byte("good")).sig
	shortDigest := good
	shortDigest.digest = good.digest[:20]

	tests := []struct {
		name        string
		body        []byte
		contentLen  int64 // -1: send chunked
		wantStatus  int
		wantCode    int
		wantMessage string
		wantHeader  map[string]string
	}{
		{name: "an unknown field is refused with 400 naming it", body: []byte(strings.Replace(string(good.json()), `"digest"`, `"bogus":1,"digest"`, 1)), wantStatus: 400, wantCode: 3, wantMessage: "bogus"},
		{name: "a signature by another key is refused with 400 naming the signature", body: forged.json(), wantStatus: 400, wantCode: 3, wantMessage: "signature"},
		{name: "a digest of the wrong length is refused with 400 naming the digest", body: shortDigest.json(), wantStatus: 400, wantCode: 3, wantMessage: "digest"},
		{name: "malformed JSON is refused with 400 saying the body ended early", body: []byte(`{"hashedRekordRequestV002":`), wantStatus: 400, wantCode: 3, wantMessage: "unexpected EOF"},
		{name: "a request without a spec is refused with 400 naming the kinds it takes", body: []byte(`{}`), wantStatus: 400, wantCode: 3, wantMessage: "want hashedRekordRequestV002 or dsseRequestV002"},
		{name: "a duplicate is answered 409 with X-Log-Index and the first index in the message", body: first.json(), wantStatus: 409, wantCode: 6,
			wantMessage: strconv.FormatInt(firstIndex, 10), wantHeader: map[string]string{"X-Log-Index": strconv.FormatInt(firstIndex, 10)}},
		{name: "a declared body over the limit is refused with 413 naming the limit", body: bytes.Repeat([]byte(" "), 65<<10), wantStatus: 413, wantCode: 8, wantMessage: "larger than 65536 bytes"},
		{name: "a chunked body over the limit is refused with 413 naming the limit", body: append(append([]byte(`{"hashedRekordRequestV002":{"digest":"`), bytes.Repeat([]byte("A"), 70<<10)...), []byte(`"}}`)...), contentLen: -1, wantStatus: 413, wantCode: 8, wantMessage: "larger than 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantMessage == "" {
				t.Fatal("the row names no message to look for, so it could not catch a wrong one")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var rd = bytes.NewReader(tc.body)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.baseURL+"/api/v2/log/entries", rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentLen < 0 {
				// An unknown length makes the client send the body chunked, with no Content-Length.
				req.ContentLength = -1
				req.Body = io.NopCloser(rd)
				req.GetBody = nil
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := new(bytes.Buffer)
			if _, err := body.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			e, err := decodeErrorBody(body.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if *e.Code != tc.wantCode {
				t.Errorf("code %d, want %d", *e.Code, tc.wantCode)
			}
			if !strings.Contains(*e.Message, tc.wantMessage) {
				t.Errorf("message %q does not mention %q", *e.Message, tc.wantMessage)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("the tree did not change and the server still takes good entries", func(t *testing.T) {
		a := l.post(good.json())
		if a.status != http.StatusCreated {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if got := decodeEntry(t, a.body).GetLogIndex(); got != firstIndex+1 {
			t.Errorf("next entry got index %d, want %d: a refused request took an index", got, firstIndex+1)
		}
	})
}

func TestReadOnlyLogRefusesWritesWith405(t *testing.T) {
	l := startLog(t, readOnly())
	a := l.post(signArtifact(t, newSigner(t), []byte("frozen")).json())
	if a.status != http.StatusMethodNotAllowed {
		t.Fatalf("status %d, want 405: %s", a.status, a.body)
	}
	e, err := decodeErrorBody(a.body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*e.Message, "read-only") {
		t.Errorf("message %q does not say the log is read-only", *e.Message)
	}
}

func TestConcurrentWritersWithDuplicates(t *testing.T) {
	l := startLog(t)
	k := newSigner(t)
	const writers, perWriter, shared = 16, 20, 5
	sharedEntries := make([]signedEntry, shared)
	for i := range sharedEntries {
		sharedEntries[i] = signArtifact(t, k, []byte(fmt.Sprintf("shared %d", i)))
	}

	// The writers only post; the answers are decoded and checked on the test's goroutine.
	type answer struct {
		key string
		httpAnswer
		err error
	}
	answers := make(chan answer, writers*(perWriter+shared))
	var wg sync.WaitGroup
	for w := range writers {
		var batch []signedEntry
		for i := range perWriter {
			batch = append(batch, signArtifact(t, k, []byte(fmt.Sprintf("writer %d entry %d", w, i))))
		}
		// Every writer also sends every shared entry, so identical requests race each other.
		batch = append(batch, sharedEntries...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range batch {
				a, err := l.tryPost(e.json())
				answers <- answer{key: string(e.sig), httpAnswer: a, err: err}
			}
		}()
	}
	wg.Wait()
	close(answers)

	type result struct {
		key    string
		status int
		index  int64
	}
	var results []result
	for a := range answers {
		r := result{key: a.key, status: a.status}
		switch {
		case a.err != nil:
			t.Fatal(a.err)
		case a.status == http.StatusCreated:
			r.index = decodeEntry(t, a.body).GetLogIndex()
		case a.status == http.StatusConflict:
			n, err := strconv.ParseInt(a.header.Get("X-Log-Index"), 10, 64)
			if err != nil {
				t.Errorf("409 without a numeric X-Log-Index: %q", a.header.Get("X-Log-Index"))
			}
			r.index = n
		default:
			t.Errorf("status %d: %s", a.status, a.body)
		}
		results = append(results, r)
	}

	created := map[string]int64{}
	indexOwner := map[int64]string{}
	var conflicts []result
	for _, r := range results {
		switch r.status {
		case http.StatusCreated:
			if _, dup := created[r.key]; dup {
				t.Errorf("one entry was created twice")
			}
			created[r.key] = r.index
			if _, taken := indexOwner[r.index]; taken {
				t.Errorf("index %d given to two entries", r.index)
			}
			indexOwner[r.index] = r.key
		case http.StatusConflict:
			conflicts = append(conflicts, r)
		}
	}
	if want := writers*perWriter + shared; len(created) != want {
		t.Errorf("%d entries created, want %d", len(created), want)
	}
	if want := (writers - 1) * shared; len(conflicts) != want {
		t.Errorf("%d duplicates answered 409, want %d", len(conflicts), want)
	}
	for _, c := range conflicts {
		if idx, ok := created[c.key]; !ok || idx != c.index {
			t.Errorf("duplicate pointed at index %d, the first copy is at %d", c.index, idx)
		}
	}
	for i := range int64(len(created)) {
		if _, ok := indexOwner[i]; !ok {
			t.Errorf("index %d was never handed out: the log has a gap", i)
		}
	}
}

func TestRestartKeepsServingTheSameTree(t *testing.T) {
	l := startLog(t)
	k := newSigner(t)
	var last *rekorv1.TransparencyLogEntry
	var lastReq signedEntry
	for i := range 10 {
		lastReq = signArtifact(t, k, []byte(fmt.Sprintf("before restart %d", i)))
		a := l.post(lastReq.json())
		if a.status != http.StatusCreated {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		last = decodeEntry(t, a.body)
	}
	before := l.do(http.MethodGet, "/checkpoint", nil)
	cpBefore, err := l.openCheckpoint(before.body)
	if err != nil {
		t.Fatal(err)
	}

	l.stop()
	l.start()

	t.Run("the reopened log serves the same size and root", func(t *testing.T) {
		after := l.do(http.MethodGet, "/checkpoint", nil)
		cpAfter, err := l.openCheckpoint(after.body)
		if err != nil {
			t.Fatal(err)
		}
		if cpAfter.Size != cpBefore.Size || !bytes.Equal(cpAfter.Hash, cpBefore.Hash) {
			t.Fatalf("after restart size %d root %x, before size %d root %x", cpAfter.Size, cpAfter.Hash, cpBefore.Size, cpBefore.Hash)
		}
		if err := l.verifyAgainstServed(last); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an entry from before the restart is still a duplicate", func(t *testing.T) {
		b := l.post(lastReq.json())
		if b.status != http.StatusConflict || b.header.Get("X-Log-Index") != strconv.FormatInt(last.GetLogIndex(), 10) {
			t.Fatalf("status %d X-Log-Index %q, want 409 and %d: %s", b.status, b.header.Get("X-Log-Index"), last.GetLogIndex(), b.body)
		}
	})
	t.Run("appends continue after the restart", func(t *testing.T) {
		a := l.post(signArtifact(t, k, []byte("after restart")).json())
		if a.status != http.StatusCreated {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		tle := decodeEntry(t, a.body)
		if tle.GetLogIndex() != int64(cpBefore.Size) {
			t.Errorf("index %d, want %d", tle.GetLogIndex(), cpBefore.Size)
		}
		if err := l.verifyAnswer(tle); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPushbackAnswers503WithRetryAfter(t *testing.T) {
	l := startLog(t, pushback(1))
	k := newSigner(t)
	const writers = 48
	statuses := make(chan httpAnswer, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		e := signArtifact(t, k, []byte(fmt.Sprintf("pushback %d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := l.tryPost(e.json())
			if err != nil {
				errs <- err
				return
			}
			statuses <- a
		}()
	}
	wg.Wait()
	close(statuses)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var created, pushed int
	for a := range statuses {
		switch a.status {
		case http.StatusCreated:
			created++
		case http.StatusServiceUnavailable:
			pushed++
			if a.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if e, err := decodeErrorBody(a.body); err != nil || *e.Code != 14 {
				t.Errorf("503 body %s (%v), want code 14 (Unavailable)", a.body, err)
			}
		default:
			t.Errorf("status %d: %s", a.status, a.body)
		}
	}
	if pushed == 0 || created == 0 {
		t.Fatalf("%d created, %d pushed back: want both with an outstanding limit of 1 and %d concurrent writers", created, pushed, writers)
	}
}
