package monitor

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/quirelog/quire/api/client/testlog"
	"github.com/quirelog/quire/api/rekor"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera/client"
	"google.golang.org/protobuf/encoding/protojson"
)

const origin = "monitor.quire.test"

// hashedRekord returns a signed hashedrekord v0.0.2 leaf for artifact by key.
func hashedRekord(t *testing.T, key *ecdsa.PrivateKey, artifact string) (leaf, digest []byte) {
	t.Helper()
	sum := sha256.Sum256([]byte(artifact))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err = rekor.HashedRekordBody(sum[:], protocommon.HashAlgorithm_SHA2_256, &rekorpb.Signature{
		Content: sig,
		Verifier: &rekorpb.Verifier{
			Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
			KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return leaf, sum[:]
}

// dsseEntry returns a dsse v0.0.2 leaf whose envelope signer is key.
func dsseEntry(t *testing.T, key *ecdsa.PrivateKey, payload string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(payload))
	e := &rekorpb.Entry{Kind: "dsse", ApiVersion: "0.0.2", Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_DsseV002{DsseV002: &rekorpb.DSSELogEntryV002{
		PayloadHash: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
		Signatures: []*rekorpb.Signature{{Content: []byte("sig"), Verifier: &rekorpb.Verifier{
			Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: pkix(t, key)}},
			KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
		}}},
	}}}}
	leaf, err := protojson.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkix(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// switchServer serves whichever log directory it was last pointed at, like a log that changes
// its story.
type switchServer struct {
	dir        atomic.Pointer[string]
	checkpoint atomic.Pointer[[]byte]
	*httptest.Server
}

func newSwitchServer(dir string) *switchServer {
	s := &switchServer{}
	s.dir.Store(&dir)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cp := s.checkpoint.Load(); cp != nil && r.URL.Path == "/checkpoint" {
			w.Write(*cp)
			return
		}
		http.FileServer(http.Dir(*s.dir.Load())).ServeHTTP(w, r)
	}))
	return s
}

func newMonitor(t *testing.T, srvURL string, key testlog.Key, state string, out *bytes.Buffer, keys, digests [][]byte) *Monitor {
	t.Helper()
	u, err := url.Parse(srvURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := testlog.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Fetcher: f, LogVerifier: l, StatePath: state, Out: out, WatchKeys: keys, WatchDigests: digests, Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readMatches(t *testing.T, out *bytes.Buffer) []Match {
	t.Helper()
	var ms []Match
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var m Match
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("output line %q is not JSON: %v", sc.Text(), err)
		}
		ms = append(ms, m)
	}
	out.Reset()
	return ms
}

func indices(ms []Match) []uint64 {
	var r []uint64
	for _, m := range ms {
		r = append(r, m.Index)
	}
	return r
}

func TestMonitorReportsWatchedEntriesAndFollowsGrowth(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lg, err := testlog.Open(ctx, dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	watched, other := newKey(t), newKey(t)

	// Entry 3 and 400 are signed by the watched key; entry 300 is for the watched digest.
	entries := testlog.Entries(0, 600)
	entries[3], _ = hashedRekord(t, watched, "release-1.0.tar.gz")
	var watchedDigest []byte
	entries[300], watchedDigest = hashedRekord(t, other, "evil.tar.gz")
	entries[301], _ = hashedRekord(t, other, "fine.tar.gz")
	entries[400], _ = hashedRekord(t, watched, "release-2.0.tar.gz")
	entries[500] = dsseEntry(t, watched, "attestation")
	srv := testlog.Serve(dir)
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "state")
	var out bytes.Buffer
	m := newMonitor(t, srv.URL, key, state, &out, [][]byte{pkix(t, watched)}, [][]byte{watchedDigest})

	for _, step := range []struct {
		name       string
		add        [][]byte
		wantSize   uint64
		wantReport []uint64
	}{
		{name: "the first poll of an empty log verifies it and reports nothing", wantSize: 0},
		{name: "the next poll reads the whole log and reports the watched key and digest", add: entries[:350], wantSize: 350, wantReport: []uint64{3, 300}},
		{name: "a poll with no growth reports nothing", wantSize: 350},
		{name: "a poll after growth reports only new entries", add: entries[350:], wantSize: 600, wantReport: []uint64{400, 500}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.add != nil {
				if err := lg.Add(ctx, step.add); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := m.Poll(ctx)
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
			got := readMatches(t, &out)
			if rep.NewSize != step.wantSize || fmt.Sprint(indices(got)) != fmt.Sprint(step.wantReport) {
				t.Fatalf("size %d, reported %v; want size %d, reported %v", rep.NewSize, indices(got), step.wantSize, step.wantReport)
			}
			for _, g := range got {
				if g.TreeSize != step.wantSize || g.Origin != origin || len(g.Reasons) == 0 {
					t.Errorf("match %+v lacks its tree size, origin or reason", g)
				}
			}
			data, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			st, err := ParseState(data, m.cfg.LogVerifier)
			if err != nil || st.Checkpoint.Size != step.wantSize {
				t.Fatalf("state after poll: %v, %+v", err, st)
			}
		})
	}
}

func TestMonitorCatchesAForkAndSavesBothCheckpoints(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	// Two logs under one key that agree on nothing after entry 298: a log showing different views
	// to different people.
	honest, forked := t.TempDir(), t.TempDir()
	for _, c := range []struct {
		dir     string
		entries [][]byte
	}{
		{honest, testlog.Entries(0, 300)},
		{forked, append(testlog.Entries(0, 299), testlog.Entries(1000, 200)...)},
	} {
		lg, err := testlog.Open(ctx, c.dir, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := lg.Add(ctx, c.entries); err != nil {
			t.Fatal(err)
		}
		if err := lg.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	otherRoot := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name string
		dir  string
		// checkpoint, if set, is served instead of the directory's own.
		checkpoint []byte
	}{
		{name: "a larger tree that does not extend the verified one is a fork", dir: forked},
		{name: "a second root for the verified size is a fork", dir: honest, checkpoint: testlog.SignCheckpoint(t, key, 300, otherRoot)},
		{name: "a smaller tree that the verified one does not extend is a fork", dir: honest, checkpoint: testlog.SignCheckpoint(t, key, 200, otherRoot)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSwitchServer(honest)
			defer srv.Close()
			state := filepath.Join(t.TempDir(), "state")
			var out bytes.Buffer
			m := newMonitor(t, srv.URL, key, state, &out, nil, nil)
			if _, err := m.Poll(ctx); err != nil {
				t.Fatalf("poll of the honest log: %v", err)
			}
			before, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			srv.dir.Store(&tc.dir)
			served := tc.checkpoint
			if served == nil {
				if served, err = os.ReadFile(filepath.Join(tc.dir, "checkpoint")); err != nil {
					t.Fatal(err)
				}
			} else {
				srv.checkpoint.Store(&served)
			}
			_, err = m.Poll(ctx)
			var fe *ForkError
			if !errors.As(err, &fe) {
				t.Fatalf("poll returned %v, want a *ForkError", err)
			}
			for _, c := range []struct {
				what, path string
				want       []byte
			}{
				{"the old checkpoint", fe.OldPath, before[len(stateHeader):]},
				{"the new checkpoint", fe.NewPath, served},
				{"the state", state, before},
			} {
				got, err := os.ReadFile(c.path)
				if err != nil || !bytes.Equal(got, c.want) {
					t.Errorf("%s: %s holds %q (%v), want %q", c.what, c.path, got, err, c.want)
				}
			}
		})
	}
}

func TestMonitorAcceptsAnOlderConsistentCheckpoint(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lg, err := testlog.Open(ctx, dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	if err := lg.Add(ctx, testlog.Entries(0, 100)); err != nil {
		t.Fatal(err)
	}
	older, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Add(ctx, testlog.Entries(100, 100)); err != nil {
		t.Fatal(err)
	}
	srv := newSwitchServer(dir)
	defer srv.Close()
	var out bytes.Buffer
	m := newMonitor(t, srv.URL, key, filepath.Join(t.TempDir(), "state"), &out, nil, nil)
	if rep, err := m.Poll(ctx); err != nil || rep.NewSize != 200 {
		t.Fatalf("first poll: %+v, %v", rep, err)
	}
	// A lagging cache may still serve the size-100 checkpoint; it is consistent, so not a fork.
	srv.checkpoint.Store(&older)
	if rep, err := m.Poll(ctx); err != nil || rep.NewSize != 200 {
		t.Fatalf("poll seeing an older checkpoint: %+v, %v", rep, err)
	}
}

func TestParseState(t *testing.T) {
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testlog.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	cp := testlog.SignCheckpoint(t, key, 7, bytes.Repeat([]byte{1}, 32))
	otherKey, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{name: "a state with a signed checkpoint parses", data: MarshalState(cp)},
		{name: "a state without the header is rejected", data: cp, wantErr: true},
		{name: "a state signed by another key is rejected", data: MarshalState(testlog.SignCheckpoint(t, otherKey, 7, bytes.Repeat([]byte{1}, 32))), wantErr: true},
		{name: "a state with an edited size is rejected", data: bytes.Replace(MarshalState(cp), []byte("\n7\n"), []byte("\n8\n"), 1), wantErr: true},
		{name: "an empty state is rejected", data: nil, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseState(tc.data, v)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (st.Checkpoint.Size != 7 || !bytes.Equal(MarshalState(st.Raw), tc.data)) {
				t.Fatalf("parsed %+v, which does not round-trip", st)
			}
		})
	}
}

func TestParseDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"a sha256: digest parses", "sha256:" + hex.EncodeToString(sum[:]), true},
		{"a bare hex digest parses", hex.EncodeToString(sum[:]), true},
		{"a sha512: prefix on a 32-byte digest is rejected", "sha512:" + hex.EncodeToString(sum[:]), false},
		{"a non-hex digest is rejected", "sha256:zz", false},
		{"an empty digest is rejected", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDigest(tc.in)
			if (err == nil) != tc.ok || (tc.ok && !bytes.Equal(d, sum[:])) {
				t.Fatalf("ParseDigest(%q) = %x, %v", tc.in, d, err)
			}
		})
	}
}

func FuzzParseState(f *testing.F) {
	key, err := testlog.NewKey(origin)
	if err != nil {
		f.Fatal(err)
	}
	v, err := testlog.NewVerifier(key)
	if err != nil {
		f.Fatal(err)
	}
	seeds, _ := filepath.Glob(filepath.Join("testdata", "state-*"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(MarshalState(testlog.SignCheckpoint(f, key, 3, bytes.Repeat([]byte{2}, 32))))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data, v)
		if err != nil {
			return
		}
		if !bytes.Equal(MarshalState(st.Raw), data) {
			t.Fatalf("accepted state %q does not round-trip", data)
		}
	})
}
