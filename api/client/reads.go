package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

// Reads beyond Rekor v2 that Quire serves (quire.v1.Log over REST, api/openapi/quire/v1), and the
// tlog-tiles checkpoint. Answers are not verified here: package verify checks them.

// Checkpoint returns the log's latest checkpoint (C2SP tlog-tiles GET /checkpoint), as served.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/checkpoint", nil, "text/plain")
}

// Entry returns the entry at index with an inclusion proof to the latest checkpoint
// (GET /quire/v1/entries/{index}).
func (c *Client) Entry(ctx context.Context, index uint64) (*quirev1.Entry, error) {
	e := &quirev1.Entry{}
	if err := c.getMessage(ctx, "/quire/v1/entries/"+strconv.FormatUint(index, 10), nil, e); err != nil {
		return nil, err
	}
	return e, nil
}

// SearchQuery is what Search looks for: exactly one of Digest ("sha256:HEX"), Key (the hex
// SHA-256 of a PKIX public key, or a PEM public key), and Identity and/or Issuer (a certificate's
// subject alternative name and Fulcio OIDC issuer).
type SearchQuery struct {
	Digest, Key, Identity, Issuer string
}

// Search returns one page of the indices of the entries sq names, from index from on
// (GET /quire/v1/search).
func (c *Client) Search(ctx context.Context, sq SearchQuery, from uint64) (*quirev1.SearchResponse, error) {
	q := url.Values{}
	for name, v := range map[string]string{"digest": sq.Digest, "key": sq.Key, "identity": sq.Identity, "issuer": sq.Issuer} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if from > 0 {
		q.Set("from_index", strconv.FormatUint(from, 10))
	}
	r := &quirev1.SearchResponse{}
	if err := c.getMessage(ctx, "/quire/v1/search", q, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Status returns the log's status document (GET /quire/v1/status) undecoded; Quire serves it,
// other Rekor v2 logs answer 404.
func (c *Client) Status(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/quire/v1/status", nil, "application/json")
}

func (c *Client) getMessage(ctx context.Context, path string, q url.Values, m proto.Message) error {
	raw, err := c.get(ctx, path, q, "application/json")
	if err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, m); err != nil {
		return fmt.Errorf("decoding %s answer: %w", path, err)
	}
	return nil
}

// get reads one resource (bounded); a non-200 answer is an *APIError.
func (c *Client) get(ctx context.Context, path string, q url.Values, accept string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok && c.hc.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("building request to %s: %w", u, err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	raw, err := readAnswer(resp, http.StatusOK, u)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, DecodeError(resp.StatusCode, resp.Header, raw)
	}
	return raw, nil
}
