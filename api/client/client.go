// Package client is a small REST client for any Rekor v2 compatible log (rekor-tiles v2.3, Quire).
//
// It speaks the write API that rekor-tiles v2.3 defines in api/proto/rekor/v2/rekor_service.proto:
// CreateEntry is POST /api/v2/log/entries with the protojson encoding of
// dev.sigstore.rekor.v2.CreateEntryRequest, answered by 201 and a protobuf-specs
// TransparencyLogEntry, or by a gRPC status rendered by grpc-gateway as
// {"code":N,"message":"…","details":[]}. Non-2xx answers become typed errors (see APIError and
// DuplicateError) that keep the evidence: status, gRPC code, message, X-Log-Index, Retry-After.
//
// It also builds really signed hashedrekord v0.0.2 requests from a crypto.Signer and an artifact
// digest, choosing the key details and hash the way Rekor v2 pairs them (see hashedrekord.go).
package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	rekorpb "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// EntriesPath is the Rekor v2 REST route of CreateEntry (rekor_service.proto, google.api.http post).
const EntriesPath = "/api/v2/log/entries"

const (
	// DefaultTimeout bounds one CreateEntry call when the caller's context has no deadline. A log
	// answers only once the entry is covered by a published checkpoint, which takes seconds at most.
	DefaultTimeout = 30 * time.Second
	// MaxResponseBody bounds how much of a success answer is read: an inclusion proof for a tree of
	// 2^64 leaves and a checkpoint with many cosignatures still fit in a few KiB.
	MaxResponseBody = 1 << 20
	// maxErrorBody bounds how much of an error answer is kept as evidence.
	maxErrorBody = 64 << 10
)

// Client sends requests to one Rekor v2 compatible log. It is safe for concurrent use.
type Client struct {
	base       string // scheme, host and path prefix, without a trailing slash
	entriesURL string
	hc         *http.Client
	userAgent  string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client use hc (its transport, pooling and timeouts) instead of a
// client built for it.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client for the log whose base URL is baseURL (scheme and host, optionally a path
// prefix under which /api/v2/... is served).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing log URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("log URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("log URL %q: missing host", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	base := u.String()
	c := &Client{
		base:       base,
		entriesURL: base + EntriesPath,
		hc:         &http.Client{Timeout: DefaultTimeout},
		userAgent:  "quire-client",
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// EntriesURL is the URL CreateEntry posts to.
func (c *Client) EntriesURL() string { return c.entriesURL }

// MarshalCreateEntryRequest encodes req as the JSON body of CreateEntry. The encoding is protojson,
// what grpc-gateway decodes on the server side (camelCase field names, base64 bytes).
func MarshalCreateEntryRequest(req *pb.CreateEntryRequest) ([]byte, error) {
	body, err := protojson.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding CreateEntryRequest: %w", err)
	}
	return body, nil
}

// CreateEntry submits req and returns the log's TransparencyLogEntry. A non-201 answer returns a
// *DuplicateError for 409 and an *APIError otherwise; a transport failure is returned wrapped.
func (c *Client) CreateEntry(ctx context.Context, req *pb.CreateEntryRequest) (*rekorpb.TransparencyLogEntry, error) {
	body, err := MarshalCreateEntryRequest(req)
	if err != nil {
		return nil, err
	}
	raw, err := c.PostEntry(ctx, body)
	if err != nil {
		return nil, err
	}
	return UnmarshalTransparencyLogEntry(raw)
}

// UnmarshalTransparencyLogEntry decodes a CreateEntry success body. Unknown fields are ignored so
// that a newer server's additions do not break an older client.
func UnmarshalTransparencyLogEntry(raw []byte) (*rekorpb.TransparencyLogEntry, error) {
	tle := &rekorpb.TransparencyLogEntry{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, tle); err != nil {
		return nil, fmt.Errorf("decoding TransparencyLogEntry: %w", err)
	}
	return tle, nil
}

// PostEntry sends an already encoded CreateEntryRequest body and returns the raw 201 answer. It
// lets callers that send many requests (the load generator) encode ahead of time and skip decoding
// answers. Errors are as for CreateEntry.
func (c *Client) PostEntry(ctx context.Context, body []byte) ([]byte, error) {
	status, header, raw, err := c.post(ctx, body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated {
		return nil, DecodeError(status, header, raw)
	}
	return raw, nil
}

// post performs one request and reads the whole answer (bounded), so the connection can be reused.
func (c *Client) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	if _, ok := ctx.Deadline(); !ok && c.hc.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.entriesURL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building request to %s: %w", c.entriesURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("posting entry to %s: %w", c.entriesURL, err)
	}
	defer resp.Body.Close()
	raw, err := readAnswer(resp, http.StatusCreated, c.entriesURL)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, raw, nil
}

// readAnswer reads an answer's body: at most MaxResponseBody for a success (status ok), and for
// anything else the first maxErrorBody bytes, kept as evidence. It drains a little more of an
// oversized error so the connection stays reusable.
func readAnswer(resp *http.Response, ok int, u string) ([]byte, error) {
	limit := int64(MaxResponseBody)
	if resp.StatusCode != ok {
		limit = maxErrorBody
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading answer (status %d) from %s: %w", resp.StatusCode, u, err)
	}
	if int64(len(raw)) > limit {
		if resp.StatusCode == ok {
			return nil, fmt.Errorf("answer from %s exceeds %d bytes", u, limit)
		}
		raw = raw[:limit]
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return raw, nil
}
