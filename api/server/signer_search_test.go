package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
	"github.com/quirelog/quire/api/rekor/fulciotest"
)

// signerEntries signs n distinct artifacts with k, naming the signer by certDER when set (else
// by the key), and returns the request bodies.
func signerEntries(t *testing.T, k *ecdsa.PrivateKey, certDER []byte, name string, n int) [][]byte {
	t.Helper()
	bodies := make([][]byte, n)
	for i := range bodies {
		e := signArtifact(t, k, fmt.Appendf(nil, "%s artifact %d", name, i))
		e.certDER = certDER
		bodies[i] = e.json()
	}
	return bodies
}

func keyFingerprint(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestSearchBySignerAndIdentity logs entries under two keys and two Fulcio-style certificates (one
// with the OIDC issuer in extension .1.8, one in the older .1.1) and finds each set by key (as a
// fingerprint and as a PEM key), by identity, by issuer and by both, over REST and gRPC; the
// identity with more than a thousand entries is paged.
func TestSearchBySignerAndIdentity(t *testing.T) {
	l := startLog(t)
	ca, err := fulciotest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB, aliceKey, ciKey := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	const (
		alice      = "alice@example.com"
		aliceIss   = "https://accounts.example.com"
		workflow   = "https://github.com/example/repo/.github/workflows/release.yml@refs/heads/main"
		actionsIss = "https://token.actions.githubusercontent.com"
	)
	aliceCert, err := ca.Issue(&aliceKey.PublicKey, fulciotest.Leaf{Emails: []string{alice}, Issuer: aliceIss})
	if err != nil {
		t.Fatal(err)
	}
	ciCert, err := ca.Issue(&ciKey.PublicKey, fulciotest.Leaf{URIs: []string{workflow}, Issuer: actionsIss, OldIssuerExtension: true})
	if err != nil {
		t.Fatal(err)
	}
	byA := postAll(t, l, signerEntries(t, keyA, nil, "A", 3))
	byB := postAll(t, l, signerEntries(t, keyB, nil, "B", 2))
	byCI := postAll(t, l, signerEntries(t, ciKey, ciCert, "CI", 2))
	byAlice := postAll(t, l, signerEntries(t, aliceKey, aliceCert, "alice", 1100))
	// The follower indexes shortly after publication; the last entry being found means all are.
	last := byAlice[len(byAlice)-1]
	l.pollUntil(http.StatusOK, fmt.Sprintf("/quire/v1/search?identity=%s&from_index=%d", url.QueryEscape(alice), last), func(b []byte) bool {
		var p searchPage
		return json.Unmarshal(b, &p) == nil && len(p.Indices) == 1
	})

	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	for _, tc := range []struct {
		name  string
		query string
		want  []uint64
		pages int
	}{
		{"the first key finds its three entries by fingerprint", q("key", keyFingerprint(t, keyA)), byA, 1},
		{"the second key finds its two entries given as a PEM key", q("key", keyPEM(t, keyB)), byB, 1},
		{"an uppercase fingerprint is the same key", q("key", strings.ToUpper(keyFingerprint(t, keyB))), byB, 1},
		{"the key in a certificate finds the certificate's entries", q("key", keyFingerprint(t, ciKey)), byCI, 1},
		{"an email identity finds 1,100 entries in two pages", q("identity", alice), byAlice, 2},
		{"an identity with its issuer finds the same", q("identity", alice, "issuer", aliceIss), byAlice, 2},
		{"an issuer alone finds every entry it vouched for", q("issuer", aliceIss), byAlice, 2},
		{"a workflow URI identity is found", q("identity", workflow), byCI, 1},
		{"the issuer in the older extension is found", q("issuer", actionsIss), byCI, 1},
		{"an identity with another issuer finds nothing", q("identity", workflow, "issuer", aliceIss), nil, 1},
		{"an identity differing in case finds nothing", q("identity", strings.ToUpper(alice)), nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := l.searchAll(t, tc.query)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("found %d entries (first %v), want %d (first %v)", len(got), got[:min(len(got), 3)], len(tc.want), tc.want[:min(len(tc.want), 3)])
			}
			if pages != tc.pages {
				t.Errorf("paging took %d pages, want %d", pages, tc.pages)
			}
		})
	}

	t.Run("gRPC pages an identity with its issuer to the end", func(t *testing.T) {
		c := quirev1.NewLogClient(dialGRPC(t, l))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var got []uint64
		req := &quirev1.SearchRequest{Identity: alice, Issuer: aliceIss}
		for range 10 {
			resp, err := c.Search(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, resp.GetIndices()...)
			if resp.NextFromIndex == nil {
				break
			}
			req.FromIndex = resp.GetNextFromIndex()
		}
		if !slices.Equal(got, byAlice) {
			t.Fatalf("gRPC found %d entries, want %d", len(got), len(byAlice))
		}
	})

	for _, tc := range []struct {
		name, query, message string
	}{
		{"a key that is not a fingerprint is a 400 naming it", q("key", "abc"), "key"},
		{"a digest and a key together are a 400", q("digest", "sha256:"+keyFingerprint(t, keyA), "key", keyFingerprint(t, keyA)), "exactly one"},
		{"no query at all is a 400", "", "exactly one"},
		{"a PEM private key is refused as a key", q("key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "PUBLIC KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := l.do(http.MethodGet, "/quire/v1/search?"+tc.query, nil)
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			e, err := decodeErrorBody(a.body)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(*e.Message, tc.message) {
				t.Fatalf("message %q does not say %q", *e.Message, tc.message)
			}
		})
	}
}
