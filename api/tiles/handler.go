// Package tiles serves the read side of a Tessera log over HTTP exactly as
// C2SP tlog-tiles (https://c2sp.org/tlog-tiles) specifies: the checkpoint,
// Merkle tree tiles and entry bundles, byte for byte as the log's
// tessera.LogReader returns them, with caching headers that let proxies keep
// full tiles forever and conditional GETs (strong ETags) for everything.
//
// Quire mounts the handler at "/" and under "/api/v2/" (see Register).
// Paths are parsed strictly (ParsePath): anything not canonical is a 400, so
// each resource has one URL and caches cannot be filled with variants.
package tiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
)

// Reader is the part of tessera.LogReader that the handler reads from; any
// tessera.LogReader satisfies it, as does Tessera's client.FileFetcher.
type Reader interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

const (
	// ImmutableCacheControl is sent with full tiles and entry bundles,
	// which never change once they exist (tlog-tiles: "This endpoint is
	// immutable, so its caching headers SHOULD be long-lived").
	ImmutableCacheControl = "public, max-age=31536000, immutable"
	// CheckpointCacheControl is sent with the checkpoint, which is mutable
	// (tlog-tiles "Checkpoints": headers "SHOULD prevent caching beyond a
	// few seconds"); the ETag still makes revalidation cheap.
	CheckpointCacheControl = "no-cache"
	// DefaultPartialMaxAge is how long a cache may keep a partial tile or
	// bundle: its URL always names the same bytes, but the log may delete
	// it once the full one exists, so it is not marked immutable.
	DefaultPartialMaxAge = 5 * time.Second

	checkpointContentType = "text/plain; charset=utf-8"
	tileContentType       = "application/octet-stream"
)

// Options configure a Handler; the zero value gives the defaults.
type Options struct {
	// PartialMaxAge is the max-age of partial tiles and bundles, in whole
	// seconds (rounded down); DefaultPartialMaxAge if zero.
	PartialMaxAge time.Duration
	// DisableCompression turns off gzip of entry bundles for clients that
	// accept it (tlog-tiles "Log entries": bundles "SHOULD be compressed at
	// the HTTP layer").
	DisableCompression bool
	// Logger receives storage errors, which clients see only as a 500;
	// slog.Default() if nil.
	Logger *slog.Logger
}

func (o Options) valid() error {
	if o.PartialMaxAge < 0 {
		return fmt.Errorf("PartialMaxAge %v is negative", o.PartialMaxAge)
	}
	return nil
}

// Handler is an http.Handler for the tlog-tiles read paths, relative to
// wherever it is mounted (use http.StripPrefix, or Register).
type Handler struct {
	r                   Reader
	partialCacheControl string
	compress            bool
	log                 *slog.Logger
}

// New returns a Handler reading from r.
func New(r Reader, opts Options) (*Handler, error) {
	if r == nil {
		return nil, errors.New("tiles: nil Reader")
	}
	if err := opts.valid(); err != nil {
		return nil, fmt.Errorf("tiles: invalid Options: %w", err)
	}
	if opts.PartialMaxAge == 0 {
		opts.PartialMaxAge = DefaultPartialMaxAge
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{
		r:                   r,
		partialCacheControl: "public, max-age=" + strconv.Itoa(int(opts.PartialMaxAge/time.Second)),
		compress:            !opts.DisableCompression,
		log:                 opts.Logger,
	}, nil
}

// Register mounts h on mux at prefix ("" for the root, or e.g. "/api/v2"):
// prefix+"/checkpoint" and everything under prefix+"/tile/".
func (h *Handler) Register(mux *http.ServeMux, prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	var handler http.Handler = h
	if prefix != "" {
		handler = http.StripPrefix(prefix, h)
	}
	mux.Handle(prefix+"/"+layout.CheckpointPath, handler)
	mux.Handle(prefix+"/tile/", handler)
}

// ServeHTTP answers GET and HEAD for the checkpoint, tiles and entry bundles.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method %s not allowed: use GET or HEAD", req.Method)
		return
	}
	// A percent-escape in the path (say %2F for a slash) never appears in
	// a tile path; refuse it rather than decode it into one.
	if req.URL.RawPath != "" {
		httpError(w, http.StatusBadRequest, "%v: percent-escapes are not allowed", ErrBadPath)
		return
	}
	res, err := ParsePath(req.URL.Path)
	switch {
	case errors.Is(err, ErrNotTiles):
		httpError(w, http.StatusNotFound, "%s is not a tlog-tiles path", req.URL.Path)
		return
	case err != nil:
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}

	body, err := h.Read(req.Context(), res)
	if errors.Is(err, os.ErrNotExist) {
		httpError(w, http.StatusNotFound, "%s not found", res.Path())
		return
	}
	if err != nil {
		h.log.ErrorContext(req.Context(), "reading tlog-tiles resource", "path", res.Path(), "err", err)
		httpError(w, http.StatusInternalServerError, "reading %s failed", res.Path())
		return
	}

	hdr := w.Header()
	switch {
	case res.Kind == Checkpoint:
		hdr.Set("Content-Type", checkpointContentType)
		hdr.Set("Cache-Control", CheckpointCacheControl)
	case res.Partial():
		hdr.Set("Content-Type", tileContentType)
		hdr.Set("Cache-Control", h.partialCacheControl)
	default:
		hdr.Set("Content-Type", tileContentType)
		hdr.Set("Cache-Control", ImmutableCacheControl)
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	tag := etag(body)
	if res.Kind == EntryBundle && h.compress {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(req.Header.Get("Accept-Encoding")) {
			gz, err := gzipBytes(body)
			if err != nil {
				h.log.ErrorContext(req.Context(), "compressing entry bundle", "path", res.Path(), "err", err)
				httpError(w, http.StatusInternalServerError, "compressing %s failed", res.Path())
				return
			}
			body = gz
			// A strong ETag names one representation, so the gzip one
			// gets its own.
			tag = tag[:len(tag)-1] + `-gzip"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", tag)
	// ServeContent answers If-None-Match with 304, HEAD without a body,
	// and Range requests.
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
}

// Read returns the exact bytes of res that ServeHTTP serves (before any
// gzip), for other front ends such as the Rekor v2 gRPC methods GetTile,
// GetEntryBundle and GetCheckpoint. It checks the shape against tlog-tiles
// first: a full tile or bundle is cached for a year, so a short one from
// storage must never leave as if it were complete. A resource that does not
// exist gives an error wrapping os.ErrNotExist.
func (h *Handler) Read(ctx context.Context, res Resource) ([]byte, error) {
	switch res.Kind {
	case Checkpoint:
		cp, err := h.r.ReadCheckpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint: %w", err)
		}
		return cp, nil
	case HashTile:
		t, err := h.r.ReadTile(ctx, res.Level, res.Index, res.Width)
		if err != nil {
			return nil, fmt.Errorf("reading tile %d/%d.p/%d: %w", res.Level, res.Index, res.Width, err)
		}
		return trimTile(t, res.Width)
	case EntryBundle:
		b, err := h.r.ReadEntryBundle(ctx, res.Index, res.Width)
		if err != nil {
			return nil, fmt.Errorf("reading entry bundle %d.p/%d: %w", res.Index, res.Width, err)
		}
		return trimBundle(b, res.Width)
	default:
		return nil, fmt.Errorf("reading %v: unknown kind", res.Kind)
	}
}

// width returns the number of hashes or entries a resource must hold.
func width(w uint8) int {
	if w == 0 {
		return layout.TileWidth
	}
	return int(w)
}

// trimTile returns the first w hashes of t. tlog-tiles "Partial Tiles":
// the partial tile of width W is the first W hashes of the tile, and
// Tessera's readers answer a partial request with the full tile once the
// partial one is gone.
func trimTile(t []byte, w uint8) ([]byte, error) {
	want := width(w) * 32
	if len(t)%32 != 0 || len(t) < want || (w == 0 && len(t) != want) {
		return nil, fmt.Errorf("storage returned a tile of %d bytes, want %d", len(t), want)
	}
	return t[:want], nil
}

// trimBundle returns the first w entries of bundle b, which is a sequence
// of big-endian uint16 length-prefixed entries (tlog-tiles "Log entries").
func trimBundle(b []byte, w uint8) ([]byte, error) {
	want := width(w)
	off := 0
	for n := 0; n < want; n++ {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("storage returned an entry bundle of %d entries, want %d", n, want)
		}
		size := int(binary.BigEndian.Uint16(b[off:]))
		if len(b)-off-2 < size {
			return nil, fmt.Errorf("storage returned an entry bundle truncated in entry %d", n)
		}
		off += 2 + size
	}
	if w == 0 && off != len(b) {
		return nil, fmt.Errorf("storage returned a full entry bundle with %d trailing bytes", len(b)-off)
	}
	return b[:off], nil
}

// etag is a strong validator over the exact bytes served.
func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// acceptsGzip reports whether an Accept-Encoding header (RFC 9110 section
// 12.5.3) allows gzip: listed, or covered by "*", with a q-value above 0.
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

// httpError writes a plain-text error that is never cached: a tile that is
// missing now may exist a second later.
func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	hdr := w.Header()
	hdr.Del("ETag")
	hdr.Del("Content-Encoding")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}
