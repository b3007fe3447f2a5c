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
type tileHandler struct {
	reader tiles.Reader
	logger *slog.Logger
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
	res, body, err := readTiles(req.Context(), h.reader, req.URL.Path)
	if err != nil {
		tileError(w, logged(req.Context(), h.logger, err))
		return
	}

	hdr := w.Header()
	hdr.Set("Content-Type", contentType(res.Kind))
	switch {
	case res.Kind == tiles.Checkpoint:
		hdr.Set("Cache-Control", checkpointCacheControl)
	case res.Partial():
		hdr.Set("Cache-Control", partialCacheControl)
	default:
		hdr.Set("Cache-Control", immutableCacheControl)
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	tag := etag(body)
	if res.Kind == tiles.EntryBundle {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(req.Header.Get("Accept-Encoding")) {
			gz, err := gzipBytes(body)
			if err != nil {
				tileError(w, logged(req.Context(), h.logger, fmt.Errorf("compressing %s: %w", res.Path(), err)))
				return
			}
			body = gz
			// A strong ETag names one representation, so the gzip one gets its own.
			tag = tag[:len(tag)-1] + `-gzip"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", tag)
	// ServeContent answers If-None-Match with 304, HEAD without a body, and Range requests.
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
}

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

// etag is a strong validator over the exact bytes served.
func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
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

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}
