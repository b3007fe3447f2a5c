package server_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// writeSameDigest logs n entries for one artifact, each under a new ECDSA signature (so each is a
// distinct leaf), from a few writers at once, and returns their indices.
func writeSameDigest(t *testing.T, l *testLog, artifact []byte, n int) []uint64 {
	t.Helper()
	k := newSigner(t)
	e := signArtifact(t, k, artifact)
	bodies := make([][]byte, n)
	for i := range bodies {
		sig, err := ecdsa.SignASN1(rand.Reader, k, e.digest)
		if err != nil {
			t.Fatal(err)
		}
		e.sig = sig
		bodies[i] = e.json()
	}
	return postAll(t, l, bodies)
}

// postAll logs bodies from 16 writers at once and returns their indices, smallest first.
func postAll(t *testing.T, l *testLog, bodies [][]byte) []uint64 {
	t.Helper()
	var (
		mu      sync.Mutex
		indices []uint64
		wg      sync.WaitGroup
		failed  []string
		next    = make(chan []byte)
	)
	for range 16 {
		wg.Go(func() {
			for body := range next {
				a, err := l.tryPost(body)
				mu.Lock()
				if err != nil || a.status != http.StatusCreated {
					failed = append(failed, fmt.Sprintf("%d %s %v", a.status, a.body, err))
				} else {
					var tle struct {
						LogIndex string `json:"logIndex"`
					}
					if err := json.Unmarshal(a.body, &tle); err != nil {
						failed = append(failed, err.Error())
					} else if i, err := strconv.ParseUint(tle.LogIndex, 10, 64); err == nil {
						indices = append(indices, i)
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, b := range bodies {
		next <- b
	}
	close(next)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d writes failed, the first: %s", len(failed), failed[0])
	}
	slices.Sort(indices)
	return indices
}

// searchPage is /quire/v1/search's answer; NextFromIndex is nil when the field is absent.
type searchPage struct {
	Indices       []string `json:"indices"`
	NextFromIndex *string  `json:"nextFromIndex"`
}

// searchAll pages through every match of query (URL query parameters), following nextFromIndex
// until it is absent.
func (l *testLog) searchAll(t *testing.T, query string) (all []uint64, pages int) {
	t.Helper()
	path := "/quire/v1/search?" + query
	from := ""
	for pages = 1; pages < 100; pages++ {
		a := l.do(http.MethodGet, path+from, nil)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s%s: status %d: %s", path, from, a.status, a.body)
		}
		var p searchPage
		if err := json.Unmarshal(a.body, &p); err != nil {
			t.Fatalf("page %d: %v: %s", pages, err, a.body)
		}
		for _, s := range p.Indices {
			i, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, i)
		}
		if p.NextFromIndex == nil {
			return all, pages
		}
		if len(p.Indices) == 0 {
			t.Fatalf("page %d lists nothing but points to a next page at %s", pages, *p.NextFromIndex)
		}
		from = "&from_index=" + *p.NextFromIndex
	}
	t.Fatalf("search for %s did not end within 100 pages", query)
	return nil, 0
}

func TestSearchPagesReachEveryEntry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []logOption
		entries int
		pages   int
	}{
		{name: "1,100 entries for one digest are all found in two pages of the default 1,000", entries: 1100, pages: 2},
		{name: "a configured page size of 100 pages 250 entries in three", opts: []logOption{searchLimit(100)}, entries: 250, pages: 3},
		{name: "exactly one page of entries ends without a next page", opts: []logOption{searchLimit(100)}, entries: 100, pages: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLog(t, tc.opts...)
			// An entry for another artifact first, so that index 0 is not among the matches.
			k := newSigner(t)
			if a := l.post(signArtifact(t, k, []byte("someone else's")).json()); a.status != http.StatusCreated {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			artifact := []byte(tc.name)
			want := writeSameDigest(t, l, artifact, tc.entries)
			digest := signArtifact(t, k, artifact).digest
			last := hex.EncodeToString(digest)
			// The follower indexes shortly after publication; the last entry being found means all are.
			l.pollUntil(http.StatusOK, fmt.Sprintf("/quire/v1/search?digest=sha256:%s&from_index=%d", last, want[len(want)-1]), func(b []byte) bool {
				var p searchPage
				return json.Unmarshal(b, &p) == nil && len(p.Indices) == 1
			})
			got, pages := l.searchAll(t, "digest=sha256:"+last)
			if !slices.Equal(got, want) {
				t.Fatalf("paging found %d entries (first %v), want the %d logged", len(got), got[:min(len(got), 3)], len(want))
			}
			if pages != tc.pages {
				t.Errorf("paging took %d pages, want %d", pages, tc.pages)
			}
		})
	}
	t.Run("the last page says so by leaving nextFromIndex out", func(t *testing.T) {
		l := startLog(t)
		a := l.do(http.MethodGet, "/quire/v1/search?digest=sha256:"+hex.EncodeToString(make([]byte, 32)), nil)
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(a.body, &raw); err != nil || a.status != http.StatusOK {
			t.Fatalf("status %d: %s (%v)", a.status, a.body, err)
		}
		if v, ok := raw["nextFromIndex"]; ok {
			t.Fatalf("an empty search answers nextFromIndex %s, want it absent", v)
		}
	})
}
