package explorer

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	quirelog "github.com/quirelog/quire/log"
)

// maxSearchInput bounds what the search box takes: a PEM RSA-4096 key is under 1 KiB.
const maxSearchInput = 8 << 10

// searchView is the search page: the form as filled in, and one result list per reading of the
// query (64 hex digits are both a SHA-256 digest and a key fingerprint).
type searchView struct {
	Q, Issuer string
	Results   []searchResult
	// Message says what was wrong with the query.
	Message string
}

type searchResult struct {
	// What names what was searched for, as the visitor reads it.
	What    string
	Entries []entrySummary
	// Indices are matches past the ones summarised.
	Indices []uint64
	// Next is the URL of the next page, when there is one.
	Next string
}

// summarised is how many of a page's matches are listed with their kind and signer; the rest
// are listed by index alone, to keep a page of 1,000 matches cheap.
const summarised = 20

// readings are the searches a query names: kind ("digest", "key", "identity") and the query.
func readings(q, issuer, kind string) ([]string, []quirelog.SearchQuery) {
	hex64 := len(q) == 64 && strings.Trim(strings.ToLower(q), "0123456789abcdef") == ""
	var kinds []string
	var qs []quirelog.SearchQuery
	add := func(k string, sq quirelog.SearchQuery) {
		if kind == "" || kind == k {
			kinds, qs = append(kinds, k), append(qs, sq)
		}
	}
	switch {
	case q == "":
		add("identity", quirelog.SearchQuery{Issuer: issuer})
	case strings.HasPrefix(q, "sha256:") || strings.HasPrefix(q, "sha384:") || strings.HasPrefix(q, "sha512:"):
		add("digest", quirelog.SearchQuery{Digest: q})
	case strings.HasPrefix(q, "-----BEGIN"):
		add("key", quirelog.SearchQuery{Key: q})
	case hex64:
		add("digest", quirelog.SearchQuery{Digest: "sha256:" + q})
		add("key", quirelog.SearchQuery{Key: q})
	default:
		add("identity", quirelog.SearchQuery{Identity: q, Issuer: issuer})
	}
	return kinds, qs
}

func (e *Explorer) serveSearch(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	q, issuer := strings.TrimSpace(qv.Get("q")), strings.TrimSpace(qv.Get("issuer"))
	v := searchView{Q: q, Issuer: issuer}
	if len(q) > maxSearchInput || len(issuer) > maxSearchInput {
		v.Message = fmt.Sprintf("A search is at most %d bytes.", maxSearchInput)
		e.render(w, r, http.StatusBadRequest, "search", v)
		return
	}
	if q == "" && issuer == "" {
		e.render(w, r, http.StatusOK, "search", v)
		return
	}
	if index, ok := parseUint(q); ok && issuer == "" {
		http.Redirect(w, r, fmt.Sprintf("%sentries/%d", Prefix, index), http.StatusSeeOther)
		return
	}
	var from uint64
	if s := qv.Get("from"); s != "" {
		var ok bool
		if from, ok = parseUint(s); !ok {
			v.Message = "The page to start from is a decimal index."
			e.render(w, r, http.StatusBadRequest, "search", v)
			return
		}
	}
	kinds, queries := readings(q, issuer, qv.Get("kind"))
	for i, sq := range queries {
		page, err := e.cfg.Log.Search(r.Context(), sq, from)
		var ie *quirelog.InvalidRequestError
		if errors.As(err, &ie) {
			if len(queries) == 1 {
				v.Message = ie.Error()
			}
			continue
		}
		if err != nil {
			e.fail(w, r, "The search", err)
			return
		}
		res := searchResult{What: describe(kinds[i], sq)}
		for j, idx := range page.Indices {
			if j >= summarised {
				res.Indices = page.Indices[j:]
				break
			}
			s, err := e.summary(r, idx)
			if err != nil {
				e.fail(w, r, fmt.Sprintf("Entry %d", idx), err)
				return
			}
			res.Entries = append(res.Entries, s)
		}
		if page.More {
			next := url.Values{"q": {q}, "kind": {kinds[i]}, "from": {strconv.FormatUint(page.Next, 10)}}
			if issuer != "" {
				next.Set("issuer", issuer)
			}
			res.Next = Prefix + "search?" + next.Encode()
		}
		v.Results = append(v.Results, res)
	}
	status := http.StatusOK
	if v.Message != "" {
		status = http.StatusBadRequest
	}
	e.render(w, r, status, "search", v)
}

func describe(kind string, q quirelog.SearchQuery) string {
	switch kind {
	case "digest":
		return "Entries for the artifact digest " + q.Digest
	case "key":
		if strings.HasPrefix(q.Key, "-----BEGIN") {
			return "Entries signed with this PEM key"
		}
		return "Entries signed with the key whose SHA-256 is " + strings.ToLower(q.Key)
	}
	switch {
	case q.Issuer == "":
		return "Entries whose certificate names " + q.Identity
	case q.Identity == "":
		return "Entries whose certificate was issued for the OIDC issuer " + q.Issuer
	}
	return "Entries whose certificate names " + q.Identity + " with the OIDC issuer " + q.Issuer
}
