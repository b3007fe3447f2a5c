package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"

	"github.com/quirelog/quire/api/tiles"
	quirelog "github.com/quirelog/quire/log"
)

const (
	// immutableCacheControl is sent with full tiles and entry bundles, which never change once
	// they exist (tlog-tiles: "This endpoint is immutable, so its caching headers SHOULD be
	// long-lived").
	immutableCacheControl = "public, max-age=31536000, immutable"
	// checkpointCacheControl is sent with the checkpoint, which is mutable (tlog-tiles
	// "Checkpoints": headers "SHOULD prevent caching beyond a few seconds"); the ETag still makes
	// revalidation cheap.
	checkpointCacheControl = "no-cache"
	// partialCacheControl is sent with partial tiles and bundles: their URL always names the same
	// bytes, but a driver may delete them once the full one exists, so they are not immutable.
	partialCacheControl = "public, max-age=5"

	// Content types of tlog-tiles resources: checkpoints are signed notes (text), tiles and entry
	// bundles are binary.
	contentTypeCheckpoint = "text/plain; charset=utf-8"
	contentTypeTile       = "application/octet-stream"
)

// readTiles is the one read path for C2SP tlog-tiles resources. The REST routes (tileHandler) and
// the Rekor v2 gRPC reads (GetCheckpoint, GetTile, GetEntryBundle) both hand it the resource's
// path, so they validate alike (tiles.ParsePath) and answer with the same bytes (tiles.Read), and
// mapError gives their errors the same status: 400 for a bad path, 404 for a missing resource.
func readTiles(ctx context.Context, r tiles.Reader, path string) (tiles.Resource, []byte, error) {
	res, err := tiles.ParsePath(path)
	if err != nil {
		return res, nil, err
	}
	body, err := tiles.Read(ctx, r, res)
	if errors.Is(err, fs.ErrNotExist) {
		// The storage error may name files; the path is all a client needs.
		return res, nil, fmt.Errorf("%s %w", res.Path(), quirelog.ErrNotFound)
	}
	return res, body, err
}

// contentType is the Content-Type of a resource of kind k.
func contentType(k tiles.Kind) string {
	if k == tiles.Checkpoint {
		return contentTypeCheckpoint
	}
	return contentTypeTile
}

// tileHandler serves the tlog-tiles reads over HTTP, relative to wherever it is mounted: the
// checkpoint, tiles and entry bundles byte for byte as readTiles returns them, with caching
// headers that let proxies keep full tiles forever, conditional GETs (strong ETags) for
// everything, and gzip of entry bundles for clients that accept it (tlog-tiles "Log entries":
// bundles "SHOULD be compressed at the HTTP layer").
//
// When the reader is also a fullReader, full tiles and bundles, which never change, are served
// as a static file server serves files (serveFull): from storage without a copy, with an ETag
// fixed when they became full, and a bundle's gzip form compressed once and then stored.
// Partial tiles, partial bundles and the checkpoint are read, validated and compressed afresh
// for every request.
type tileHandler struct {
	reader tiles.Reader
	logger *slog.Logger

	// full is reader as a fullReader, or nil.
	full fullReader
	// compressing makes concurrent first requests for one bundle's gzip form compress it once.
	compressing singleflight.Group
}

// fullReader is what storage offers for serving full tiles and entry bundles at the cost of a
// static file; storage/pebble's *Storage implements it.
type fullReader interface {
	// ViewFull calls fn with full resource res in content coding coding ("" or "gzip") and a
	// version that changes whenever the bytes do; body is valid only during fn. An error
	// wrapping fs.ErrNotExist means res is not full, or has no stored form in that coding.
	ViewFull(ctx context.Context, res tiles.Resource, coding string, fn func(body, version []byte) error) error
	// PutCoded stores body as the coding form of full entry bundle res.
	PutCoded(ctx context.Context, res tiles.Resource, coding string, body []byte) error
}

func newTileHandler(r tiles.Reader, logger *slog.Logger) *tileHandler {
	h := &tileHandler{reader: r, logger: logger}
	h.full, _ = r.(fullReader)
	return h
}

// register mounts h on mux at prefix ("" for the root, or e.g. "/api/v2"): prefix+"/checkpoint"
// and everything under prefix+"/tile/".
func (h *tileHandler) register(mux *http.ServeMux, prefix string) {
	var handler http.Handler = h
	if prefix != "" {
		handler = http.StripPrefix(prefix, h)
	}
	mux.Handle(prefix+"/"+layout.CheckpointPath, handler)
	mux.Handle(prefix+"/tile/", handler)
}

// ServeHTTP answers GET and HEAD for the checkpoint, tiles and entry bundles.
func (h *tileHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		tileError(w, newAPIError(codes.Unimplemented, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET or HEAD", req.Method)))
		return
	}
	// A percent-escape in the path (say %2F for a slash) never appears in a tile path; refuse it
	// rather than decode it into one.
	if req.URL.RawPath != "" {
		tileError(w, mapError(fmt.Errorf("%w: percent-escapes are not allowed", tiles.ErrBadPath)))
		return
	}
	if h.full != nil {
		if res, err := tiles.ParsePath(req.URL.Path); err == nil && res.Kind != tiles.Checkpoint && !res.Partial() {
			err := h.serveFull(w, req, res)
			if err == nil {
				return
			}
			if !errors.Is(err, fs.ErrNotExist) {
				tileError(w, logged(req.Context(), h.logger, err))
				return
			}
			// Not full yet, or not at all: the general path below says which.
		}
	}
	res, body, err := readTiles(req.Context(), h.reader, req.URL.Path)
	if err != nil {
		tileError(w, logged(req.Context(), h.logger, err))
		return
	}

	hdr := w.Header()
	hdr["Content-Type"] = contentTypeHeader[res.Kind]
	switch {
	case res.Kind == tiles.Checkpoint:
		hdr["Cache-Control"] = checkpointCacheControlHeader
	case res.Partial():
		hdr["Cache-Control"] = partialCacheControlHeader
	default:
		hdr["Cache-Control"] = immutableCacheControlHeader
	}
	hdr["X-Content-Type-Options"] = nosniffHeader
	sum := sha256.Sum256(body)
	coding := ""
	if res.Kind == tiles.EntryBundle {
		hdr["Vary"] = varyHeader
		if acceptsGzip(req.Header.Get("Accept-Encoding")) {
			gz, err := gzipBytes(body, gzip.BestSpeed)
			if err != nil {
				tileError(w, logged(req.Context(), h.logger, fmt.Errorf("compressing %s: %w", res.Path(), err)))
				return
			}
			body, coding = gz, codingGzip
		}
	}
	writeTile(w, req, body, etag(sum[:], coding), coding)
}

// serveFull serves full tile or bundle res from h.full; an error wrapping fs.ErrNotExist means
// it is not full (or not there) and nothing was written.
func (h *tileHandler) serveFull(w http.ResponseWriter, req *http.Request, res tiles.Resource) error {
	ctx := req.Context()
	coding := ""
	if res.Kind == tiles.EntryBundle && acceptsGzip(req.Header.Get("Accept-Encoding")) {
		coding = codingGzip
	}
	serve := func(body, version []byte) error {
		hdr := w.Header()
		hdr["Content-Type"] = contentTypeHeader[res.Kind]
		hdr["Cache-Control"] = immutableCacheControlHeader
		hdr["X-Content-Type-Options"] = nosniffHeader
		if res.Kind == tiles.EntryBundle {
			hdr["Vary"] = varyHeader
		}
		writeTile(w, req, body, etag(version, coding), coding)
		return nil
	}
	err := h.full.ViewFull(ctx, res, coding, serve)
	if coding == "" || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	gz, version, err := h.gzipForm(ctx, res)
	if err != nil {
		return err
	}
	return serve(gz, version)
}

// gzipForm compresses full bundle res and stores its gzip form, for a bundle whose form is not
// stored yet. Concurrent first requests for one bundle compress it once, at the default level
// rather than the fastest since it is done once.
func (h *tileHandler) gzipForm(ctx context.Context, res tiles.Resource) (body, version []byte, err error) {
	v, err, _ := h.compressing.Do(res.Path(), func() (any, error) {
		var c codedBody
		err := h.full.ViewFull(ctx, res, "", func(body, v []byte) error {
			var err error
			c.body, err = gzipBytes(body, gzip.DefaultCompression)
			c.version = append(c.version, v...)
			return err
		})
		if err != nil {
			return nil, err
		}
		if err := h.full.PutCoded(ctx, res, codingGzip, c.body); err != nil {
			// A read-only store still serves; the next request compresses again.
			h.logger.WarnContext(ctx, "storing the gzip form of an entry bundle", "path", res.Path(), "error", err)
		}
		return c, nil
	})
	if err != nil {
		return nil, nil, err
	}
	c := v.(codedBody)
	return c.body, c.version, nil
}

type codedBody struct{ body, version []byte }

// writeTile writes body with status 200 and the headers already set, plus ETag, Content-Encoding
// and Content-Length. A plain GET or HEAD is answered with one write of the body, as a static
// file server answers; a conditional or Range request goes through http.ServeContent, which
// answers If-None-Match with 304, Range with 206, and so on.
func writeTile(w http.ResponseWriter, req *http.Request, body []byte, tag, coding string) {
	hdr := w.Header()
	hdr["Etag"] = []string{tag}
	if coding != "" {
		hdr["Content-Encoding"] = gzipHeader
	}
	if conditional(req.Header) {
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
		return
	}
	// What http.ServeContent would send: Range requests are answered.
	hdr["Accept-Ranges"] = acceptRangesHeader
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// conditional reports whether a request has any header that http.ServeContent acts on.
func conditional(h http.Header) bool {
	for _, k := range [...]string{"If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"} {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// Header values shared by every answer. net/http only reads them; a handler that adds to one
// appends to a slice already at capacity, so it gets a copy.
var (
	contentTypeHeader = map[tiles.Kind][]string{
		tiles.Checkpoint:  {contentType(tiles.Checkpoint)},
		tiles.HashTile:    {contentType(tiles.HashTile)},
		tiles.EntryBundle: {contentType(tiles.EntryBundle)},
	}
	immutableCacheControlHeader  = []string{immutableCacheControl}
	partialCacheControlHeader    = []string{partialCacheControl}
	checkpointCacheControlHeader = []string{checkpointCacheControl}
	nosniffHeader                = []string{"nosniff"}
	varyHeader                   = []string{"Accept-Encoding"}
	gzipHeader                   = []string{codingGzip}
	acceptRangesHeader           = []string{"bytes"}
)

// tileError writes e's status and message in plain text, as a static tile server answers, and
// never cached: a tile that is missing now may exist a second later.
func tileError(w http.ResponseWriter, e *apiError) {
	hdr := w.Header()
	hdr.Del("ETag")
	hdr.Del("Content-Encoding")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.httpStatus)
	_, _ = w.Write([]byte(e.st.Message() + "\n"))
}

// codingGzip is the gzip content coding (RFC 9110 section 8.4.1.3).
const codingGzip = "gzip"

// etag is a strong validator (RFC 9110 section 8.8.3) from a hash that changes whenever the
// bytes do: of the bytes themselves, or a full resource's version. The gzip representation is
// another set of bytes, so it gets its own.
func etag(sum []byte, coding string) string {
	var b [2 + 32 + 1 + len(codingGzip)]byte
	t := append(b[:0], '"')
	t = hex.AppendEncode(t, sum[:16])
	if coding != "" {
		t = append(append(t, '-'), coding...)
	}
	return string(append(t, '"'))
}

// acceptsGzip reports whether an Accept-Encoding header (RFC 9110 section 12.5.3) allows gzip:
// listed, or covered by "*", with a q-value above 0.
func acceptsGzip(header string) bool {
	gzip, star := -1.0, -1.0
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gzip = q
		case "*":
			star = q
		}
	}
	if gzip >= 0 {
		return gzip > 0
	}
	return star > 0
}

// Pooled gzip writers: BestSpeed for what is compressed on every request (partial bundles),
// DefaultCompression for a full bundle's gzip form, compressed once.
var gzipFast, gzipDefault sync.Pool

// gzipBytes compresses b at level, with pooled writers for the levels this package uses.
func gzipBytes(b []byte, level int) ([]byte, error) {
	var buf bytes.Buffer
	pool := &gzipFast
	if level != gzip.BestSpeed {
		pool = &gzipDefault
	}
	zw, _ := pool.Get().(*gzip.Writer)
	if zw == nil {
		var err error
		if zw, err = gzip.NewWriterLevel(nil, level); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	defer pool.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}
