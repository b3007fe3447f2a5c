package log

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/api/rekor/fulciotest"
	"github.com/quirelog/quire/storage/index"
)

// fulcioVerifier names s by a certificate from ca for leaf.
func (s *testSigner) fulcioVerifier(t testing.TB, ca *fulciotest.CA, leaf fulciotest.Leaf) *rekorpb.Verifier {
	t.Helper()
	der, err := ca.Issue(s.priv.Public(), leaf)
	if err != nil {
		t.Fatal(err)
	}
	return &rekorpb.Verifier{KeyDetails: s.details, Verifier: &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: der}}}
}

func (s *testSigner) fingerprint(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	fp := rekor.KeyFingerprint(der)
	return hex.EncodeToString(fp[:])
}

func TestEntryKeys(t *testing.T) {
	ca, err := fulciotest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	v := &Log{keys: newKeyCache(1 << 20)}
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	ed := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ED25519)
	manySANs := make([]string, 40)
	for i := range manySANs {
		manySANs[i] = fmt.Sprintf("n%02d@example.com", i)
	}
	dsse := dsseRequest(t, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), p256, ed)
	dsse.GetDsseRequestV002().Verifiers[0] = p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: []string{"dsse@example.com"}, Issuer: "https://issuer.example"})
	for _, tc := range []struct {
		name    string
		req     *rekorpb.CreateEntryRequest
		want    []string // keys besides leaf and digest, as SearchQuery finds them
		wantNot []SearchQuery
	}{
		{name: "a hashedrekord signed with a key is found by the key's fingerprint",
			req:  p256.request(t, []byte("a"), p256.pkixVerifier(t)),
			want: []string{"key " + p256.fingerprint(t)}},
		{name: "a Fulcio certificate gives its key, email, issuer and the pair",
			req: p256.request(t, []byte("b"), p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: []string{"alice@example.com"}, Issuer: "https://accounts.example.com"})),
			want: []string{"key " + p256.fingerprint(t), `identity "alice@example.com"`, `issuer "https://accounts.example.com"`,
				`identity "alice@example.com" with issuer "https://accounts.example.com"`},
			wantNot: []SearchQuery{{Identity: "alice@example.com", Issuer: "https://other.example"}, {Identity: "ALICE@example.com"}}},
		{name: "the older issuer extension and URI and DNS names are read too",
			req: p256.request(t, []byte("c"), p256.fulcioVerifier(t, ca, fulciotest.Leaf{URIs: []string{"https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"},
				DNSNames: []string{"build.example"}, Issuer: "https://token.actions.githubusercontent.com", OldIssuerExtension: true})),
			want: []string{"key " + p256.fingerprint(t),
				`identity "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"`, `identity "build.example"`,
				`issuer "https://token.actions.githubusercontent.com"`,
				`identity "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main" with issuer "https://token.actions.githubusercontent.com"`,
				`identity "build.example" with issuer "https://token.actions.githubusercontent.com"`}},
		{name: "a certificate without an issuer gives its names alone",
			req:  p256.request(t, []byte("d"), p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: []string{"bob@example.com"}})),
			want: []string{"key " + p256.fingerprint(t), `identity "bob@example.com"`}},
		{name: "a DSSE entry gives the keys of every signer",
			req:  dsse,
			want: []string{"key " + p256.fingerprint(t), "key " + ed.fingerprint(t), `identity "dsse@example.com"`, `issuer "https://issuer.example"`, `identity "dsse@example.com" with issuer "https://issuer.example"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, body, err := v.Validate(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := EntryKeys(body, rfc6962.DefaultHasher.HashLeaf(body))
			if err != nil {
				t.Fatal(err)
			}
			info, err := rekor.ParseEntry(body)
			if err != nil {
				t.Fatal(err)
			}
			dk, _ := rekor.FormatDigest(info.DigestAlgorithm, info.Digest)
			want := [][]byte{leafKey(rfc6962.DefaultHasher.HashLeaf(body)), []byte(dk)}
			for _, w := range tc.want {
				q := parseQueryString(t, w)
				k, err := q.indexKey()
				if err != nil {
					t.Fatalf("%s: %v", w, err)
				}
				want = append(want, k)
			}
			if len(keys) != len(want) {
				t.Errorf("%d keys, want %d", len(keys), len(want))
			}
			for i, w := range want {
				if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, w) }) {
					t.Errorf("no key %q (want %d)", w, i)
				}
			}
			for _, q := range tc.wantNot {
				k, err := q.indexKey()
				if err != nil {
					t.Fatal(err)
				}
				if slices.ContainsFunc(keys, func(have []byte) bool { return bytes.Equal(have, k) }) {
					t.Errorf("found by %s, which it does not name", q)
				}
			}
		})
	}
	t.Run("a certificate with 40 names is found by the first 16 only", func(t *testing.T) {
		_, body, err := v.Validate(p256.request(t, []byte("e"), p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: manySANs, Issuer: "https://i.example"})))
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := EntryKeys(body, make([]byte, 32))
		// leaf, digest, key, issuer, and 16 names alone and with the issuer.
		if len(keys) != 4+2*maxSANsIndexed {
			t.Fatalf("%d keys, want %d", len(keys), 4+2*maxSANsIndexed)
		}
	})
	t.Run("a leaf another personality wrote has its leaf hash key only", func(t *testing.T) {
		leaf := rfc6962.DefaultHasher.HashLeaf([]byte("not an entry"))
		keys, err := EntryKeys([]byte("not an entry"), leaf)
		if err == nil || len(keys) != 1 || !bytes.Equal(keys[0], leafKey(leaf)) {
			t.Fatalf("EntryKeys = %q, %v; want the leaf key and an error", keys, err)
		}
	})
}

// parseQueryString turns a SearchQuery.String back into the query, for readable tables.
func parseQueryString(t *testing.T, s string) SearchQuery {
	t.Helper()
	var q SearchQuery
	switch {
	case len(s) > 4 && s[:4] == "key ":
		q.Key = s[4:]
	case len(s) > 7 && s[:7] == "issuer ":
		if _, err := fmt.Sscanf(s, "issuer %q", &q.Issuer); err != nil {
			t.Fatal(err)
		}
	default:
		if _, err := fmt.Sscanf(s, "identity %q with issuer %q", &q.Identity, &q.Issuer); err != nil {
			if _, err := fmt.Sscanf(s, "identity %q", &q.Identity); err != nil {
				t.Fatal(err)
			}
			q.Issuer = ""
		}
	}
	if q.String() != s {
		t.Fatalf("query %q reads back as %q", s, q.String())
	}
	return q
}

func TestSearchQueriesAreChecked(t *testing.T) {
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	der, err := x509.MarshalPKIXPublicKey(p256.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	fpKey, err := SearchQuery{Key: p256.fingerprint(t)}.indexKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a PEM key names the same key as its fingerprint", func(t *testing.T) {
		k, err := SearchQuery{Key: pemKey}.indexKey()
		if err != nil || !bytes.Equal(k, fpKey) {
			t.Fatalf("PEM key = %q, %v; want %q", k, err, fpKey)
		}
	})
	for _, tc := range []struct {
		name  string
		q     SearchQuery
		field string
	}{
		{"an empty query is refused", SearchQuery{}, "digest"},
		{"a digest and a key together are refused", SearchQuery{Digest: "sha256:" + p256.fingerprint(t), Key: p256.fingerprint(t)}, "digest"},
		{"a key of 63 hex digits is refused", SearchQuery{Key: p256.fingerprint(t)[1:]}, "key"},
		{"a key that is not hex is refused", SearchQuery{Key: "z" + p256.fingerprint(t)[1:]}, "key"},
		{"a PEM certificate is not a key", SearchQuery{Key: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "key"},
		{"an identity of 5,000 bytes is refused", SearchQuery{Identity: string(make([]byte, 5000))}, "identity"},
		{"a malformed digest is refused", SearchQuery{Digest: "sha256:00"}, "digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.q.indexKey()
			var ie *InvalidRequestError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("indexKey() = %v, want an InvalidRequestError for %q", err, tc.field)
			}
		})
	}
}

// TestAnIndexOfTheEarlierFormatIsRebuilt opens a log whose index was filled before search by key
// existed (digest and leaf keys only, no format recorded), and checks that the follower starts
// over from entry 0, so that the old entries become findable by key.
func TestAnIndexOfTheEarlierFormatIsRebuilt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey := newTestKeys(t)
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	tl := openTestLog(t, filepath.Join(dir, "log"), testLogOpts{pebble: true, skey: skey, vkey: vkey})
	const n = 300
	var bodies [][]byte
	for i := range n {
		tle, err := tl.CreateEntry(ctx, p256.request(t, fmt.Appendf(nil, "old %d", i), p256.pkixVerifier(t)))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, tle.GetCanonicalizedBody())
	}
	tl.close()

	old, err := index.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	var keys [][]byte
	var idx []uint64
	for i, b := range bodies {
		info, err := rekor.ParseEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		dk, _ := rekor.FormatDigest(info.DigestAlgorithm, info.Digest)
		keys = append(keys, leafKey(rfc6962.DefaultHasher.HashLeaf(b)), []byte(dk))
		idx = append(idx, uint64(i), uint64(i))
	}
	if err := old.Add(ctx, keys, idx, n); err != nil {
		t.Fatal(err)
	}

	tl2 := openTestLog(t, filepath.Join(dir, "log"), testLogOpts{pebble: true, index: old, skey: skey, vkey: vkey})
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := tl2.Search(ctx, SearchQuery{Key: p256.fingerprint(t)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Indices) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search by key finds %d of the %d old entries after 20s", len(page.Indices), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f, err := old.Format(ctx); err != nil || f != IndexFormat {
		t.Fatalf("index format = %d, %v; want %d", f, err, IndexFormat)
	}
	waitIndexed(t, tl2.Log, n)
}

// FuzzEntryKeys computes the keys of arbitrary bodies: never a panic, the leaf key always first,
// and the same keys every time.
func FuzzEntryKeys(f *testing.F) {
	f.Add([]byte(`{"kind":"hashedrekord","apiVersion":"0.0.2","spec":{"hashedRekordV002":{"data":{"algorithm":"SHA2_256","digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"signature":{"content":"AA==","verifier":{"keyDetails":"PKIX_ECDSA_P256_SHA_256","x509Certificate":{"rawBytes":"AAAA"}}}}}}`))
	f.Add([]byte(`{"kind":"dsse","apiVersion":"0.0.2","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"signatures":[{"verifier":{"publicKey":{"rawBytes":"AAAA"}}}]}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		leaf := rfc6962.DefaultHasher.HashLeaf(body)
		a, _ := EntryKeys(body, leaf)
		b, _ := EntryKeys(body, leaf)
		if len(a) == 0 || !bytes.Equal(a[0], leafKey(leaf)) {
			t.Fatalf("keys %q do not start with the leaf key", a)
		}
		if !slices.EqualFunc(a, b, bytes.Equal) {
			t.Fatal("the keys of one body differ between calls")
		}
	})
}
