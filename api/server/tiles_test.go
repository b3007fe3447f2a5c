package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/tiles"
	"github.com/quirelog/quire/storage/pebble"
)

const posixOrigin = "example.com/quire-tiles-test"

// posixLog is a real Tessera POSIX log in a temporary directory.
type posixLog struct {
	dir      string
	reader   tessera.LogReader
	verifier note.Verifier
	entries  [][]byte
	// checkpoints holds the checkpoint published after each batch.
	checkpoints [][]byte
}

// newPOSIXLog appends len(batches) batches of entries of varied lengths to a
// POSIX log, waiting for a checkpoint after each so that partial tiles of
// several widths are written, then stops the appender so nothing changes
// while the test reads.
func newPOSIXLog(t testing.TB, batches ...int) *posixLog {
	t.Helper()
	return newTestLog(t, func(ctx context.Context, dir string) (tessera.Driver, error) {
		return posix.New(ctx, posix.Config{Path: dir})
	}, batches...)
}

// newPebbleLog is newPOSIXLog on Quire's Pebble driver: the same batches of
// the same entries, so the same tiles and bundles. Its reader is the
// *pebble.Storage, which stays open until the test ends. Deduplication is
// off, as the POSIX log has none: some of the short entries repeat.
func newPebbleLog(t testing.TB, batches ...int) *posixLog {
	t.Helper()
	return newTestLog(t, func(ctx context.Context, dir string) (tessera.Driver, error) {
		d, err := pebble.New(ctx, pebble.Config{Path: dir, DisableDedup: true})
		if err == nil {
			t.Cleanup(func() { d.(*pebble.Storage).Close() })
		}
		return d, err
	}, batches...)
}

func newTestLog(t testing.TB, open func(ctx context.Context, dir string) (tessera.Driver, error), batches ...int) *posixLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	skey, vkey, err := note.GenerateKey(rand.Reader, posixOrigin)
	if err != nil {
		t.Fatalf("generating log key: %v", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("making signer: %v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("making verifier: %v", err)
	}
	dir := t.TempDir()
	driver, err := open(ctx, dir)
	if err != nil {
		t.Fatalf("creating driver: %v", err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(64, 20*time.Millisecond).
		WithCheckpointInterval(100*time.Millisecond).
		// Garbage collection would delete superseded partial tiles while
		// the test compares files with responses.
		WithGarbageCollectionInterval(0))
	if err != nil {
		t.Fatalf("creating appender: %v", err)
	}
	awaiter := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 10*time.Millisecond)

	l := &posixLog{dir: dir, reader: reader, verifier: verifier}
	for _, n := range batches {
		futures := make([]tessera.IndexFuture, 0, n)
		for range n {
			i := len(l.entries)
			// Lengths from 1 to 300 bytes so bundles hold entries of
			// several sizes.
			e := bytes.Repeat([]byte{byte(i)}, 1+i%300)
			copy(e, fmt.Sprintf("entry %d", i))
			l.entries = append(l.entries, e)
			futures = append(futures, appender.Add(ctx, tessera.NewEntry(e)))
		}
		var cp []byte
		for j, f := range futures {
			idx, c, err := awaiter.Await(ctx, f)
			if err != nil {
				t.Fatalf("awaiting entry: %v", err)
			}
			if want := uint64(len(l.entries) - n + j); idx.Index != want {
				t.Fatalf("entry got index %d, want %d", idx.Index, want)
			}
			cp = c
		}
		l.checkpoints = append(l.checkpoints, cp)
	}
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutting down appender: %v", err)
	}
	return l
}

// serve starts a real HTTP server with the tlog-tiles handler at the root and under /api/v2, as
// New mounts it.
func serve(t *testing.T, r tiles.Reader) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h := newTileHandler(r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.register(mux, "")
	h.register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// get fetches url with optional request headers, without transparent
// decompression, so the test sees exactly what the server sent.
func get(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, body
}

var prefixes = []string{"", "/api/v2"}

func TestTilesServesEveryFileByteForByte(t *testing.T) {
	l := newPOSIXLog(t, 1, 100, 300, 200)
	srv := serve(t, l.reader)

	var paths []string
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.dir, p)
		if rel == layout.CheckpointPath || (!d.IsDir() && strings.HasPrefix(rel, "tile/")) {
			paths = append(paths, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking log directory: %v", err)
	}
	// 601 entries: three level 0 tiles and bundles (the last partial),
	// plus every partial one the earlier batches left behind.
	if len(paths) < 8 {
		t.Fatalf("only %d files in the log: %v", len(paths), paths)
	}
	for _, prefix := range prefixes {
		for _, p := range paths {
			t.Run(fmt.Sprintf("%s under %s/ is served as stored", p, prefix), func(t *testing.T) {
				want, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(p)))
				if err != nil {
					t.Fatalf("reading file: %v", err)
				}
				resp, body := get(t, http.MethodGet, srv.URL+prefix+p)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if !bytes.Equal(body, want) {
					t.Errorf("body of %d bytes differs from the %d-byte file", len(body), len(want))
				}
			})
		}
	}
}

func TestTilesHeaders(t *testing.T) {
	l := newPOSIXLog(t, 300)
	srv := serve(t, l.reader)
	tests := []struct {
		name         string
		path         string
		contentType  string
		cacheControl string
	}{
		{"the checkpoint is plain text and not cached", "/checkpoint", "text/plain; charset=utf-8", "no-cache"},
		{"a full tile is immutable", "/tile/0/000", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"a partial tile has a short max-age", "/tile/0/001.p/44", "application/octet-stream", "public, max-age=5"},
		{"a partial upper tile has a short max-age", "/tile/1/000.p/1", "application/octet-stream", "public, max-age=5"},
		{"a full entry bundle is immutable", "/tile/entries/000", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"a partial entry bundle has a short max-age", "/tile/entries/001.p/44", "application/octet-stream", "public, max-age=5"},
	}
	for _, prefix := range prefixes {
		for _, tt := range tests {
			t.Run(tt.name+" under "+prefix+"/", func(t *testing.T) {
				resp, body := get(t, http.MethodGet, srv.URL+prefix+tt.path)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if got := resp.Header.Get("Content-Type"); got != tt.contentType {
					t.Errorf("Content-Type %q, want %q", got, tt.contentType)
				}
				if got := resp.Header.Get("Cache-Control"); got != tt.cacheControl {
					t.Errorf("Cache-Control %q, want %q", got, tt.cacheControl)
				}
				if tag := resp.Header.Get("ETag"); !strings.HasPrefix(tag, `"`) || len(tag) < 10 {
					t.Errorf("ETag %q is not a strong validator", tag)
				}
				if got, want := resp.Header.Get("Content-Length"), fmt.Sprint(len(body)); got != want {
					t.Errorf("Content-Length %q, want %q", got, want)
				}
			})
		}
	}
}

// logKinds builds a test log on each driver: POSIX files read through Tessera's reader (the
// general path) and Pebble (full tiles and bundles served by serveFull).
var logKinds = []struct {
	name string
	new  func(t testing.TB, batches ...int) *posixLog
}{
	{"POSIX", newPOSIXLog},
	{"Pebble", newPebbleLog},
}

func TestTilesConditionalAndHeadRequests(t *testing.T) {
	for _, kind := range logKinds {
		l := kind.new(t, 300)
		srv := serve(t, l.reader)
		for _, path := range []string{"/checkpoint", "/tile/0/000", "/tile/0/001.p/44", "/tile/entries/000"} {
			checkConditionalAndHead(t, kind.name+" "+path, srv.URL+path, "identity")
		}
		checkConditionalAndHead(t, kind.name+" gzipped /tile/entries/000", srv.URL+"/tile/entries/000", "gzip")
	}
}

// checkConditionalAndHead asks url (as a client sending Accept-Encoding acceptEncoding) for its
// representation, then checks how conditional, Range and HEAD requests are answered.
func checkConditionalAndHead(t *testing.T, name, url, acceptEncoding string) {
	t.Helper()
	fetch := func(t *testing.T, method string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		return get(t, method, url, append([]string{"Accept-Encoding", acceptEncoding}, hdr...)...)
	}
	resp, body := fetch(t, http.MethodGet)
	tag := resp.Header.Get("ETag")
	t.Run(name+" is served again with the same ETag", func(t *testing.T) {
		again, body2 := fetch(t, http.MethodGet)
		if again.Header.Get("ETag") != tag || !bytes.Equal(body, body2) {
			t.Errorf("second answer: ETag %q and %d bytes, first %q and %d bytes", again.Header.Get("ETag"), len(body2), tag, len(body))
		}
		if again.Header.Get("Content-Encoding") != resp.Header.Get("Content-Encoding") {
			t.Errorf("Content-Encoding %q, then %q", resp.Header.Get("Content-Encoding"), again.Header.Get("Content-Encoding"))
		}
	})
	t.Run(name+" answers a Range request with that part", func(t *testing.T) {
		resp, part := fetch(t, http.MethodGet, "Range", "bytes=1-4")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, body[1:5]) {
			t.Errorf("status %d with %x, want 206 and %x", resp.StatusCode, part, body[1:5])
		}
	})
	t.Run(name+" is not modified for its own ETag", func(t *testing.T) {
		resp, body := fetch(t, http.MethodGet, "If-None-Match", tag)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("status %d with %d bytes, want 304 and no body", resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("ETag"); got != tag {
			t.Errorf("304 ETag %q, want %q", got, tag)
		}
	})
	t.Run(name+" is not modified for its ETag in a list or made weak", func(t *testing.T) {
		resp, _ := fetch(t, http.MethodGet, "If-None-Match", `"other", W/`+tag)
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("status %d, want 304", resp.StatusCode)
		}
	})
	t.Run(name+" is sent again for another ETag", func(t *testing.T) {
		resp, again := fetch(t, http.MethodGet, "If-None-Match", `"0123456789"`)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(again, body) {
			t.Errorf("status %d with %d bytes, want 200 and the %d-byte body", resp.StatusCode, len(again), len(body))
		}
	})
	t.Run(name+" answers HEAD with headers only", func(t *testing.T) {
		resp, head := fetch(t, http.MethodHead)
		if resp.StatusCode != http.StatusOK || len(head) != 0 {
			t.Errorf("status %d with %d bytes, want 200 and no body", resp.StatusCode, len(head))
		}
		if got, want := resp.Header.Get("Content-Length"), fmt.Sprint(len(body)); got != want {
			t.Errorf("Content-Length %q, want %q", got, want)
		}
		if got := resp.Header.Get("ETag"); got != tag {
			t.Errorf("HEAD ETag %q, want %q", got, tag)
		}
	})
}

// TestTilesPebbleServesWhatPOSIXStores builds the same log on both drivers and asks the Pebble
// one for every file the POSIX one wrote, full and partial, plain and gzipped.
func TestTilesPebbleServesWhatPOSIXStores(t *testing.T) {
	batches := []int{1, 100, 300, 200}
	files, pl := newPOSIXLog(t, batches...), newPebbleLog(t, batches...)
	srv := serve(t, pl.reader)
	var paths []string
	err := filepath.WalkDir(files.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(files.dir, p); !d.IsDir() && strings.HasPrefix(rel, "tile/") {
			paths = append(paths, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking log directory: %v", err)
	}
	for _, p := range paths {
		want, err := os.ReadFile(filepath.Join(files.dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		t.Run(p+" is the POSIX file's bytes", func(t *testing.T) {
			resp, body := get(t, http.MethodGet, srv.URL+p)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Errorf("status %d, %d bytes equal to the file: %v", resp.StatusCode, len(body), bytes.Equal(body, want))
			}
		})
		t.Run(p+" gzipped on request is the POSIX file's bytes", func(t *testing.T) {
			resp, body := get(t, http.MethodGet, srv.URL+p, "Accept-Encoding", "gzip")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			} else if strings.HasPrefix(p, "/tile/entries/") {
				t.Errorf("an entry bundle was not gzipped")
			}
			if !bytes.Equal(body, want) {
				t.Errorf("%d bytes differ from the %d-byte file", len(body), len(want))
			}
		})
	}
}

// TestTilesFullBundleIsCompressedOnce checks that the first gzip request for a full bundle
// stores its gzip form, and that later requests are answered with exactly those bytes.
func TestTilesFullBundleIsCompressedOnce(t *testing.T) {
	l := newPebbleLog(t, 300)
	s := l.reader.(*pebble.Storage)
	srv := serve(t, s)
	res := tiles.Resource{Kind: tiles.EntryBundle, Index: 0}
	if err := s.ViewFull(context.Background(), res, pebble.CodingGzip, func(_, _ []byte) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("gzip form before any request: %v, want not found", err)
	}
	_, first := get(t, http.MethodGet, srv.URL+"/tile/entries/000", "Accept-Encoding", "gzip")
	var stored []byte
	if err := s.ViewFull(context.Background(), res, pebble.CodingGzip, func(body, _ []byte) error {
		stored = bytes.Clone(body)
		return nil
	}); err != nil {
		t.Fatalf("gzip form after the first request: %v", err)
	}
	_, second := get(t, http.MethodGet, srv.URL+"/tile/entries/000", "Accept-Encoding", "gzip")
	if !bytes.Equal(first, stored) || !bytes.Equal(second, stored) {
		t.Errorf("answers of %d and %d bytes, stored form of %d: not all the same", len(first), len(second), len(stored))
	}
}

func TestTilesRejectsBadRequests(t *testing.T) {
	l := newPOSIXLog(t, 10)
	srv := serve(t, l.reader)
	h := newTileHandler(l.reader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct {
		name   string
		method string
		path   string
		status int
		body   string
	}{
		{"POST is not allowed", http.MethodPost, "/checkpoint", http.StatusMethodNotAllowed, "use GET or HEAD"},
		{"PUT of a tile is not allowed", http.MethodPut, "/tile/0/000.p/10", http.StatusMethodNotAllowed, "use GET or HEAD"},
		{"DELETE is not allowed", http.MethodDelete, "/tile/entries/000.p/10", http.StatusMethodNotAllowed, "use GET or HEAD"},
		{"traversal is a bad request", http.MethodGet, "/tile/../checkpoint", http.StatusBadRequest, "unexpected character"},
		{"an escaped slash is a bad request", http.MethodGet, "/tile/0/x001%2F000", http.StatusBadRequest, "percent-escapes"},
		{"a level above 63 is a bad request", http.MethodGet, "/tile/99/000", http.StatusBadRequest, "tile level"},
		{"a width of 256 is a bad request", http.MethodGet, "/tile/0/000.p/256", http.StatusBadRequest, "tile width"},
		{"a non-canonical index is a bad request", http.MethodGet, "/tile/0/x000/000.p/10", http.StatusBadRequest, "canonical"},
		{"an impossible tile is a bad request", http.MethodGet, "/tile/9/000", http.StatusBadRequest, "beyond 2^64"},
		{"a path outside tlog-tiles is not found", http.MethodGet, "/tiles", http.StatusNotFound, "not a tlog-tiles path"},
		{"a tile beyond the tree is not found", http.MethodGet, "/tile/0/005", http.StatusNotFound, "/tile/0/005 not found"},
		{"a bundle beyond the tree is not found", http.MethodGet, "/tile/entries/x001/000", http.StatusNotFound, "not found"},
		{"a full tile of a partial tree is not found", http.MethodGet, "/tile/0/000", http.StatusNotFound, "not found"},
		{"a wider partial tile than the tree has is not found", http.MethodGet, "/tile/0/000.p/11", http.StatusNotFound, "not found"},
	}
	for _, tt := range tests {
		check := func(t *testing.T, code int, hdr http.Header, body string) {
			t.Helper()
			if code != tt.status {
				t.Errorf("status %d, want %d (body %q)", code, tt.status, body)
			}
			if !strings.Contains(body, tt.body) {
				t.Errorf("body %q does not mention %q", body, tt.body)
			}
			if got := hdr.Get("Cache-Control"); got != "no-store" {
				t.Errorf("error Cache-Control %q, want no-store", got)
			}
			if tt.status == http.StatusMethodNotAllowed && hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q, want \"GET, HEAD\"", hdr.Get("Allow"))
			}
		}
		// Straight into the handler: a ServeMux would clean ".." and
		// redirect before the handler saw it.
		t.Run(tt.name+" by the handler", func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			check(t, rec.Code, rec.Header(), rec.Body.String())
		})
		if strings.Contains(tt.path, "..") || tt.path == "/tiles" {
			continue
		}
		t.Run(tt.name+" over HTTP", func(t *testing.T) {
			resp, body := get(t, tt.method, srv.URL+"/api/v2"+tt.path)
			check(t, resp.StatusCode, resp.Header, string(body))
		})
	}
}

func TestTilesMissingCheckpointIsNotFound(t *testing.T) {
	// Pebble storage that no appender has published a checkpoint to yet.
	drv, err := pebble.New(context.Background(), pebble.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatalf("opening pebble storage: %v", err)
	}
	s := drv.(*pebble.Storage)
	t.Cleanup(func() { s.Close() })
	srv := serve(t, s)
	resp, body := get(t, http.MethodGet, srv.URL+"/checkpoint")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404 (body %q)", resp.StatusCode, body)
	}
}

// A full tile cut short on disk, as a storage bug or a torn write would leave it, must not be
// served: caches would keep it for a year.
func TestTilesShortFullTileIsAnErrorNotCached(t *testing.T) {
	l := newPOSIXLog(t, 256)
	if err := os.Truncate(filepath.Join(l.dir, "tile", "0", "000"), 255*32); err != nil {
		t.Fatalf("cutting the tile short: %v", err)
	}
	srv := serve(t, l.reader)
	resp, body := get(t, http.MethodGet, srv.URL+"/tile/0/000")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want 500 (body %q)", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if strings.Contains(string(body), l.dir) {
		t.Errorf("error body %q leaks the storage path", body)
	}
}

func TestTilesEntryBundlesAreGzippedOnRequest(t *testing.T) {
	l := newPOSIXLog(t, 300)
	srv := serve(t, l.reader)
	want, err := os.ReadFile(filepath.Join(l.dir, "tile", "entries", "000"))
	if err != nil {
		t.Fatalf("reading bundle: %v", err)
	}
	plain, _ := get(t, http.MethodGet, srv.URL+"/tile/entries/000")

	resp, body := get(t, http.MethodGet, srv.URL+"/tile/entries/000", "Accept-Encoding", "gzip")
	t.Run("a client accepting gzip gets the bundle gzipped", func(t *testing.T) {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("gunzip: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("gunzipped body differs from the stored bundle")
		}
		if len(body) >= len(want) {
			t.Errorf("gzipped body of %d bytes is no smaller than %d", len(body), len(want))
		}
	})
	t.Run("the gzip representation has its own ETag", func(t *testing.T) {
		if resp.Header.Get("ETag") == plain.Header.Get("ETag") {
			t.Errorf("gzip and identity share ETag %s", resp.Header.Get("ETag"))
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" || plain.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Vary %q and %q, want Accept-Encoding on both", resp.Header.Get("Vary"), plain.Header.Get("Vary"))
		}
	})
	t.Run("a client refusing gzip gets identity", func(t *testing.T) {
		resp, body := get(t, http.MethodGet, srv.URL+"/tile/entries/000", "Accept-Encoding", "gzip;q=0, *")
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
			t.Errorf("Content-Encoding %q, body equal %v; want identity", resp.Header.Get("Content-Encoding"), bytes.Equal(body, want))
		}
	})
	t.Run("hash tiles are never gzipped", func(t *testing.T) {
		resp, _ := get(t, http.MethodGet, srv.URL+"/tile/0/000", "Accept-Encoding", "gzip")
		if resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("Content-Encoding %q on a hash tile", resp.Header.Get("Content-Encoding"))
		}
	})
}

// TestTilesTesseraClientVerifiesTheServedLog reads the log only through
// Tessera's own client over HTTP: the checkpoint's signature, every entry
// bundle, an inclusion proof for every entry, and consistency proofs from
// every earlier checkpoint.
func TestTilesTesseraClientVerifiesTheServedLog(t *testing.T) {
	l := newPOSIXLog(t, 1, 255, 2, 300, 70)
	srv := serve(t, l.reader)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	hasher := rfc6962.DefaultHasher

	for _, prefix := range prefixes {
		t.Run("the log verifies through "+prefix+"/", func(t *testing.T) {
			root, err := url.Parse(srv.URL + prefix + "/")
			if err != nil {
				t.Fatalf("parsing URL: %v", err)
			}
			f, err := client.NewHTTPFetcher(root, srv.Client())
			if err != nil {
				t.Fatalf("NewHTTPFetcher: %v", err)
			}
			cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, l.verifier, posixOrigin)
			if err != nil {
				t.Fatalf("FetchCheckpoint: %v", err)
			}
			if cp.Size != uint64(len(l.entries)) {
				t.Fatalf("checkpoint size %d, want %d", cp.Size, len(l.entries))
			}
			pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
			if err != nil {
				t.Fatalf("NewProofBuilder: %v", err)
			}
			for i := uint64(0); i < cp.Size; i++ {
				bundle, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, i/layout.EntryBundleWidth, cp.Size)
				if err != nil {
					t.Fatalf("GetEntryBundle(%d): %v", i/layout.EntryBundleWidth, err)
				}
				got := bundle.Entries[i%layout.EntryBundleWidth]
				if !bytes.Equal(got, l.entries[i]) {
					t.Fatalf("entry %d from its bundle differs from what was appended", i)
				}
				p, err := pb.InclusionProof(ctx, i)
				if err != nil {
					t.Fatalf("InclusionProof(%d): %v", i, err)
				}
				if err := proof.VerifyInclusion(hasher, i, cp.Size, hasher.HashLeaf(got), p, cp.Hash); err != nil {
					t.Fatalf("inclusion proof for %d does not verify: %v", i, err)
				}
			}
			for _, raw := range l.checkpoints[:len(l.checkpoints)-1] {
				old, _, _, err := client.FetchCheckpoint(ctx, func(context.Context) ([]byte, error) { return raw, nil }, l.verifier, posixOrigin)
				if err != nil {
					t.Fatalf("parsing earlier checkpoint: %v", err)
				}
				p, err := pb.ConsistencyProof(ctx, old.Size, cp.Size)
				if err != nil {
					t.Fatalf("ConsistencyProof(%d, %d): %v", old.Size, cp.Size, err)
				}
				if err := proof.VerifyConsistency(hasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
					t.Errorf("consistency %d -> %d does not verify: %v", old.Size, cp.Size, err)
				}
			}
		})
	}
	t.Run("a tampered tile makes the client's proof fail", func(t *testing.T) {
		f, err := client.NewHTTPFetcher(mustParse(t, srv.URL+"/"), srv.Client())
		if err != nil {
			t.Fatalf("NewHTTPFetcher: %v", err)
		}
		cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, l.verifier, posixOrigin)
		if err != nil {
			t.Fatalf("FetchCheckpoint: %v", err)
		}
		flip := func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
			b, err := f.ReadTile(ctx, level, index, p)
			if err == nil && level == 0 && index == 0 {
				b = bytes.Clone(b)
				b[40] ^= 1
			}
			return b, err
		}
		pb, err := client.NewProofBuilder(ctx, cp.Size, flip)
		if err != nil {
			t.Fatalf("NewProofBuilder: %v", err)
		}
		p, err := pb.InclusionProof(ctx, 0)
		if err != nil {
			t.Fatalf("InclusionProof: %v", err)
		}
		err = proof.VerifyInclusion(hasher, 0, cp.Size, hasher.HashLeaf(l.entries[0]), p, cp.Hash)
		var mismatch proof.RootMismatchError
		if !errors.As(err, &mismatch) {
			t.Errorf("VerifyInclusion with a flipped sibling hash: %v, want a root mismatch", err)
		}
	})
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return u
}

// BenchmarkTileHandler measures the handler's own cost per request (parsing,
// reading from the POSIX reader, hashing for the ETag, gzip), without a
// network hop.
func BenchmarkTileHandler(b *testing.B) {
	l := newPOSIXLog(b, 300)
	h := newTileHandler(l.reader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	full := httptest.NewRequest(http.MethodGet, "/tile/0/000", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, full)
	tileTag := rec.Header().Get("ETag")
	benches := []struct {
		name string
		path string
		hdr  [2]string
	}{
		{"full tile", "/tile/0/000", [2]string{}},
		{"full tile not modified", "/tile/0/000", [2]string{"If-None-Match", tileTag}},
		{"full entry bundle", "/tile/entries/000", [2]string{}},
		{"full entry bundle gzipped", "/tile/entries/000", [2]string{"Accept-Encoding", "gzip"}},
		{"checkpoint", "/checkpoint", [2]string{}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bb.path, nil)
			if bb.hdr[0] != "" {
				req.Header.Set(bb.hdr[0], bb.hdr[1])
			}
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK && rec.Code != http.StatusNotModified {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
