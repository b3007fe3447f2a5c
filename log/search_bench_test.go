package log

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/quirelog/quire/api/rekor/fulciotest"
	"github.com/quirelog/quire/storage/index"
)

// BenchmarkSearchAt1M builds a Pebble search index of 1,000,000 entries, each with the keys a
// certificate-signed entry has (leaf hash, digest, key fingerprint, identity, issuer, identity
// with issuer), where one key signed every thousandth entry, and measures one page of Search:
// by that key (1,000 matches), by an identity with as many, by an issuer that signed half the
// log (a full page out of 500,000), and, as the peer, by a digest with one match. It reports
// p50 and p99 per search as well as the mean.
//
//	go test ./log -run '^$' -bench SearchAt1M -benchtime 2000x
func BenchmarkSearchAt1M(b *testing.B) {
	const (
		entries = 1_000_000
		every   = 1_000 // the target key signed entries 0, 1000, 2000, …
		batch   = 16 * 256
	)
	ctx := context.Background()
	dir := b.TempDir()
	idx, err := index.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { idx.Close() }()
	target := sha256.Sum256([]byte("the busy signer"))
	h := func(tag string, i int) []byte {
		s := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(tag), uint64(i)))
		return s[:]
	}
	start := time.Now()
	var keys [][]byte
	var postings []uint64
	for i := range entries {
		id, iss := fmt.Sprintf("user%d@example.com", i%50_000), "https://accounts.example.com"
		fp := h("key", i%20_000)
		if i%every == 0 {
			fp, id = target[:], "busy@example.com"
		}
		if i%2 == 1 {
			iss = "https://token.actions.githubusercontent.com"
		}
		ks := [][]byte{leafKey(h("leaf", i)), []byte("sha256:" + hex.EncodeToString(h("digest", i))), signerKey(fp),
			identityKey(id), issuerKey(iss), identityIssuerKey(id, iss)}
		for _, k := range ks {
			keys, postings = append(keys, k), append(postings, uint64(i))
		}
		if (i+1)%batch == 0 || i+1 == entries {
			if err := idx.Add(ctx, keys, postings, uint64(i+1)); err != nil {
				b.Fatal(err)
			}
			keys, postings = keys[:0], postings[:0]
		}
	}
	b.Logf("built an index of %d entries (%d keys each) in %s", entries, 6, time.Since(start).Round(time.Millisecond))
	// Reopened read-only, Pebble runs no compactions: what is measured is lookups, not the
	// build's compactions competing for the two cores. Its files are then as the build left
	// them, which if anything makes lookups slower than in a settled index.
	if err := idx.Close(); err != nil {
		b.Fatal(err)
	}
	if idx, err = index.OpenReadOnly(dir, nil); err != nil {
		b.Fatal(err)
	}
	l := &Log{index: idx, searchLimit: DefaultSearchLimit}
	// The build's garbage is not the searches' cost.
	runtime.GC()
	for _, tc := range []struct {
		name    string
		q       SearchQuery
		matches int
	}{
		{"key with 1000 matches", SearchQuery{Key: hex.EncodeToString(target[:])}, 1000},
		{"identity with 1000 matches", SearchQuery{Identity: "busy@example.com"}, 1000},
		{"issuer page of 1000 from 500000", SearchQuery{Issuer: "https://accounts.example.com"}, 1000},
		{"peer digest with 1 match", SearchQuery{Digest: "sha256:" + hex.EncodeToString(h("digest", 777_777))}, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// One search first, so that the blocks it reads are in Pebble's cache, as they are
			// for a key people search for.
			if _, err := l.Search(ctx, tc.q, 0); err != nil {
				b.Fatal(err)
			}
			took := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				p, err := l.Search(ctx, tc.q, 0)
				took = append(took, time.Since(t0))
				if err != nil || len(p.Indices) != tc.matches {
					b.Fatalf("Search = %d indices, %v; want %d", len(p.Indices), err, tc.matches)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkEntryKeys is the follower's cost per entry for the keys of one entry: a hashedrekord
// signed with a key, and one with a Fulcio-style certificate (parsed for its names each time).
func BenchmarkEntryKeys(b *testing.B) {
	ca, err := fulciotest.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	l := &Log{keys: newKeyCache(1 << 20)}
	for _, tc := range []struct {
		name string
		v    *rekorpb.Verifier
	}{
		{"key", s.pkixVerifier(b)},
		{"certificate", s.fulcioVerifier(b, ca, fulciotest.Leaf{Emails: []string{"a@example.com"}, Issuer: "https://accounts.example.com"})},
	} {
		_, body, err := l.Validate(s.request(b, []byte(tc.name), tc.v))
		if err != nil {
			b.Fatal(err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(body)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := EntryKeys(body, leaf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
