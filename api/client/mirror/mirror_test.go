package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quirelog/quire/api/client/testlog"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"
)

const origin = "mirror.quire.test"

// testEntries is big enough for a full level-1 tile and partial tiles at levels 0, 1 and 2;
// QUIRE_MIRROR_TEST_ENTRIES raises it for extra scale.
func testEntries(t *testing.T) int {
	if s := os.Getenv("QUIRE_MIRROR_TEST_ENTRIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 70000 {
			t.Fatalf("QUIRE_MIRROR_TEST_ENTRIES=%q: want a number of at least 70000", s)
		}
		return n
	}
	return 70000
}

// source is a log served over HTTP that records what is fetched and can misbehave.
type source struct {
	dir    string
	srv    *httptest.Server
	mu     sync.Mutex
	counts map[string]int
	// onRequest, if set, sees each request's path and the number of requests so far.
	onRequest func(path string, n int)
	// tamper, if set, may rewrite a response body.
	tamper func(path string, body []byte) []byte
	n      atomic.Int64
}

// setOnRequest and setTamper change the source's behaviour while its handler may be running.
func (s *source) setOnRequest(f func(path string, n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

func (s *source) setTamper(f func(path string, body []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = f
}

func newSource(dir string) *source {
	s := &source{dir: dir, counts: map[string]int{}}
	fsrv := http.FileServer(http.Dir(dir))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.n.Add(1))
		s.mu.Lock()
		s.counts[r.URL.Path]++
		if s.onRequest != nil {
			s.onRequest(r.URL.Path, n)
		}
		tamper := s.tamper
		s.mu.Unlock()
		if tamper == nil {
			fsrv.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		fsrv.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(tamper(r.URL.Path, rec.Body.Bytes()))
	}))
	return s
}

func (s *source) config(t *testing.T, dir string, v note.Verifier) Config {
	t.Helper()
	u, err := url.Parse(s.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Fetcher: f, LogVerifier: v, Dir: dir, Parallel: 4}
}

func (s *source) refetched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r []string
	for p, c := range s.counts {
		if c > 1 && p != "/checkpoint" {
			r = append(r, fmt.Sprintf("%s×%d", p, c))
		}
	}
	return r
}

// tree reads every file under dir, by slash path.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameTree(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok || !bytes.Equal(g, w) {
			t.Errorf("%s differs or is missing", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is extra", p)
		}
	}
}

func leafHashes(bundle []byte) ([][]byte, error) {
	var eb api.EntryBundle
	if err := eb.UnmarshalText(bundle); err != nil {
		return nil, fmt.Errorf("parsing bundle: %w", err)
	}
	hs := make([][]byte, len(eb.Entries))
	for i, e := range eb.Entries {
		hs[i] = rfc6962.DefaultHasher.HashLeaf(e)
	}
	return hs, nil
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s + "/")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// fsckServed runs Tessera's fsck against dir served by a plain static file server.
func fsckServed(t *testing.T, dir string, v note.Verifier) error {
	t.Helper()
	srv := testlog.Serve(dir)
	defer srv.Close()
	u, err := url.Parse(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fsck.New(v.Name(), v, f, leafHashes, fsck.Opts{N: 4}).Check(context.Background())
}

func TestMirrorInterruptedResumedAndCaughtUp(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testlog.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	srcDir := t.TempDir()
	lg, err := testlog.Open(ctx, srcDir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	n := testEntries(t)
	if err := lg.Add(ctx, testlog.Entries(0, n)); err != nil {
		t.Fatal(err)
	}
	src := newSource(srcDir)
	defer src.srv.Close()
	dir := t.TempDir()
	// What the interrupted run saved must not be fetched again, except a file torn on purpose below.
	saved := map[string]bool{}
	torn := "tile/entries/001"

	t.Run("an interrupted mirror leaves no checkpoint and only whole files", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		src.setOnRequest(func(p string, n int) {
			if n == 200 {
				cancel()
			}
		})
		_, err := Mirror(cctx, src.config(t, dir, v))
		// Requests of the cancelled run may still be in flight.
		src.setOnRequest(nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted mirror returned %v, want context.Canceled", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "checkpoint")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("checkpoint exists after an interrupted run: %v", err)
		}
		srcFiles := tree(t, srcDir)
		for p, data := range tree(t, dir) {
			if strings.HasPrefix(p, tmpDir+"/") {
				continue
			}
			if !bytes.Equal(srcFiles[p], data) {
				t.Errorf("%s is not a whole copy of the source file", p)
			}
			saved["/"+p] = true
		}
		if !saved["/"+torn] {
			t.Fatalf("the interrupted run did not get as far as %s", torn)
		}
	})

	t.Run("a file torn by a crash is fetched again on resume", func(t *testing.T) {
		// Files are not synced one by one, so a crash can leave a short file; the resumed run must
		// notice it by verification and fetch it again.
		if err := os.WriteFile(filepath.Join(dir, torn), []byte{0, 5, 'x'}, 0o644); err != nil {
			t.Fatal(err)
		}
		delete(saved, "/"+torn)
		delete(saved, "/tile/0/001")
	})

	t.Run("the resumed mirror fetches nothing it already had and completes", func(t *testing.T) {
		src.mu.Lock()
		src.counts = map[string]int{}
		src.mu.Unlock()
		res, err := Mirror(ctx, src.config(t, dir, v))
		if err != nil {
			t.Fatalf("resumed mirror: %v", err)
		}
		if res.Size != uint64(n) || res.Reused == 0 {
			t.Fatalf("result %+v: want size %d with files reused", res, n)
		}
		if r := src.refetched(); len(r) > 0 {
			t.Errorf("fetched more than once: %v", r)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		for p := range src.counts {
			if saved[p] {
				t.Errorf("%s was saved by the interrupted run but fetched again", p)
			}
		}
	})

	t.Run("the resumed tree is byte-identical to an uninterrupted mirror and to the source", func(t *testing.T) {
		fresh := t.TempDir()
		if _, err := Mirror(ctx, src.config(t, fresh, v)); err != nil {
			t.Fatal(err)
		}
		got := tree(t, dir)
		sameTree(t, got, tree(t, fresh))
		srcFiles := tree(t, srcDir)
		for p, data := range got {
			if !bytes.Equal(srcFiles[p], data) {
				t.Errorf("%s differs from the source", p)
			}
		}
	})

	t.Run("Tessera's fsck accepts the mirror served statically", func(t *testing.T) {
		if err := fsckServed(t, dir, v); err != nil {
			t.Fatalf("fsck: %v", err)
		}
	})

	t.Run("a rerun after growth catches up, fetching only what is new", func(t *testing.T) {
		if err := lg.Add(ctx, testlog.Entries(n, 1000)); err != nil {
			t.Fatal(err)
		}
		before := src.n.Load()
		res, err := Mirror(ctx, src.config(t, dir, v))
		if err != nil {
			t.Fatalf("catch-up: %v", err)
		}
		if res.OldSize != uint64(n) || res.Size != uint64(n+1000) {
			t.Fatalf("catch-up went from %d to %d, want %d to %d", res.OldSize, res.Size, n, n+1000)
		}
		if fetched := src.n.Load() - before; fetched > 30 {
			t.Errorf("catch-up made %d requests for 1000 new entries", fetched)
		}
		fresh := t.TempDir()
		if _, err := Mirror(ctx, src.config(t, fresh, v)); err != nil {
			t.Fatal(err)
		}
		sameTree(t, tree(t, dir), tree(t, fresh))
		if err := fsckServed(t, dir, v); err != nil {
			t.Fatalf("fsck after catch-up: %v", err)
		}
	})
}

func TestMirrorRejectsABadSource(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testlog.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	small, forked := t.TempDir(), t.TempDir()
	for _, c := range []struct {
		dir     string
		entries [][]byte
	}{
		{small, testlog.Entries(0, 700)},
		{forked, append(testlog.Entries(0, 600), testlog.Entries(5000, 300)...)},
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
	flip := func(target string) func(string, []byte) []byte {
		return func(p string, b []byte) []byte {
			if p == target && len(b) > 10 {
				b = bytes.Clone(b)
				b[len(b)-3] ^= 1
			}
			return b
		}
	}
	for _, tc := range []struct {
		name    string
		tamper  func(string, []byte) []byte
		wantErr string
	}{
		{name: "a changed entry is caught", tamper: flip("/tile/entries/001"), wantErr: "leaf hash"},
		{name: "a changed level-0 hash is caught", tamper: flip("/tile/0/000"), wantErr: "leaf hash"},
		{name: "a changed level-1 hash is caught", tamper: flip("/tile/1/000.p/2"), wantErr: "recomputed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(small)
			defer src.srv.Close()
			src.setTamper(tc.tamper)
			dir := t.TempDir()
			_, err := Mirror(ctx, src.config(t, dir, v))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
			}
			if _, err := os.Stat(filepath.Join(dir, "checkpoint")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("checkpoint written for a bad source: %v", err)
			}
		})
	}
	t.Run("a source inconsistent with the mirrored checkpoint is refused", func(t *testing.T) {
		src := newSource(small)
		defer src.srv.Close()
		dir := t.TempDir()
		if _, err := Mirror(ctx, src.config(t, dir, v)); err != nil {
			t.Fatal(err)
		}
		before := tree(t, dir)
		fsrc := newSource(forked)
		defer fsrc.srv.Close()
		_, err := Mirror(ctx, fsrc.config(t, dir, v))
		if !errors.Is(err, ErrInconsistent) {
			t.Fatalf("got %v, want ErrInconsistent", err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "checkpoint")); !bytes.Equal(got, before["checkpoint"]) {
			t.Fatal("the mirrored checkpoint changed")
		}
	})
}

func TestMirrorOfAnEmptyLogHoldsOnlyItsCheckpoint(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testlog.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	srcDir := t.TempDir()
	lg, err := testlog.Open(ctx, srcDir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	src := newSource(srcDir)
	defer src.srv.Close()
	dir := t.TempDir()
	res, err := Mirror(ctx, src.config(t, dir, v))
	if err != nil || res.Size != 0 {
		t.Fatalf("mirror of an empty log: %+v, %v", res, err)
	}
	got := tree(t, dir)
	if len(got) != 1 || got["checkpoint"] == nil {
		t.Fatalf("mirror holds %d files, want only the checkpoint", len(got))
	}
}
