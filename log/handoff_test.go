package log

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"

	"github.com/quirelog/quire/api/rekor/fulciotest"
	"github.com/quirelog/quire/storage/index"
)

// handedKeysOf is what CreateEntry hands the follower for a validated request.
func handedKeysOf(v *validated) [][]byte {
	return v.handedKeys(rfc6962.DefaultHasher.HashLeaf(v.body))
}

func TestHandedKeysAreEntryKeys(t *testing.T) {
	ca, err := fulciotest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	rsa := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256)
	p384 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384)
	manySANs := make([]string, 40)
	for i := range manySANs {
		manySANs[i] = fmt.Sprintf("n%02d@example.com", i%10)
	}
	for _, tc := range []struct {
		name string
		s    *testSigner
		v    *rekorpb.Verifier
	}{
		{"a P-256 public key", p256, p256.pkixVerifier(t)},
		{"an RSA public key", rsa, rsa.pkixVerifier(t)},
		{"a P-384 key, whose digest is SHA-384", p384, p384.pkixVerifier(t)},
		{"a Fulcio certificate with an email and an issuer", p256, p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: []string{"alice@example.com"}, Issuer: "https://accounts.example.com"})},
		{"a certificate with URI and DNS names and the older issuer extension", p256, p256.fulcioVerifier(t, ca, fulciotest.Leaf{URIs: []string{"https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"},
			DNSNames: []string{"build.example"}, Issuer: "https://token.actions.githubusercontent.com", OldIssuerExtension: true})},
		{"a certificate without an issuer", p256, p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: []string{"bob@example.com"}})},
		{"a certificate with 40 names, some repeated", p256, p256.fulcioVerifier(t, ca, fulciotest.Leaf{Emails: manySANs, Issuer: "https://i.example"})},
		{"a certificate that is not Fulcio's", p256, p256.certVerifier(t)},
	} {
		t.Run(tc.name+" hands off the keys EntryKeys finds in the body", func(t *testing.T) {
			l := &Log{keys: newKeyCache(1 << 20), handoff: new(keyHandoff)}
			// The first request parses the key, the second finds it in the cache.
			for i, from := range []string{"parsed", "cached"} {
				v, err := l.validate(tc.s.request(t, fmt.Appendf(nil, "artifact %d", i), tc.v))
				if err != nil {
					t.Fatal(err)
				}
				want, err := EntryKeys(v.body, rfc6962.DefaultHasher.HashLeaf(v.body))
				if err != nil {
					t.Fatal(err)
				}
				if got := handedKeysOf(v); !slices.EqualFunc(got, want, bytes.Equal) {
					t.Fatalf("with the key %s, the write hands off\n%q\nwhere EntryKeys finds\n%q", from, got, want)
				}
			}
		})
	}
	t.Run("a DSSE request hands off nothing, its keys are found from the body", func(t *testing.T) {
		l := &Log{keys: newKeyCache(1 << 20), handoff: new(keyHandoff)}
		v, err := l.validate(dsseRequest(t, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), p256))
		if err != nil {
			t.Fatal(err)
		}
		if v.searchKeys != nil {
			t.Fatalf("DSSE hands off %q", v.searchKeys)
		}
	})
}

func TestKeyHandoff(t *testing.T) {
	leaf := rfc6962.DefaultHasher.HashLeaf([]byte("entry"))
	keys := [][]byte{leafKey(leaf), []byte("sha256:00")}
	t.Run("keys are taken once, for their index and leaf hash only", func(t *testing.T) {
		var h keyHandoff
		h.put(7, keys)
		if got := h.take(7+handoffSlots, leaf); got != nil {
			t.Fatalf("index %d took the keys of index 7: %q", 7+handoffSlots, got)
		}
		if got := h.take(7, rfc6962.DefaultHasher.HashLeaf([]byte("another entry"))); got != nil {
			t.Fatalf("another leaf at index 7 took the keys: %q", got)
		}
		h.put(7, keys)
		if got := h.take(7, leaf); !slices.EqualFunc(got, keys, bytes.Equal) {
			t.Fatalf("take = %q, want %q", got, keys)
		}
		if got := h.take(7, leaf); got != nil {
			t.Fatalf("the keys were taken twice: %q", got)
		}
	})
	t.Run("a later write in the same slot replaces the keys", func(t *testing.T) {
		var h keyHandoff
		h.put(7, keys)
		h.put(7+handoffSlots, keys)
		if got := h.take(7, leaf); got != nil {
			t.Fatalf("index 7 took the keys of index %d: %q", 7+handoffSlots, got)
		}
	})
	t.Run("keys over the byte bound are not kept", func(t *testing.T) {
		var h keyHandoff
		big := append(slices.Clone(keys), make([]byte, handoffMaxBytes))
		h.put(7, big)
		if got := h.take(7, leaf); got != nil {
			t.Fatalf("%d bytes of keys were kept", keysBytes(big))
		}
	})
}

// TestTheFollowerIndexesTheLogNotTheHandoff hands the follower wrong keys for the leaves it is
// about to index; it must find the entries' own keys, and none of the handed ones.
func TestTheFollowerIndexesTheLogNotTheHandoff(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	idx, err := index.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	tl := openTestLog(t, filepath.Join(dir, "log"), testLogOpts{pebble: true})
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	const n = 3
	var bodies [][]byte
	for i := range n {
		v, err := tl.validate(p256.request(t, fmt.Appendf(nil, "artifact %d", i), p256.pkixVerifier(t)))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, v.body)
	}
	// Entry 0 is handed keys for another leaf; entry 1 is not handed anything; entry 2 is handed
	// its own leaf with a key it does not have, which the follower takes as the write's word.
	tl.handoff = new(keyHandoff)
	tl.handoff.put(0, [][]byte{leafKey(rfc6962.DefaultHasher.HashLeaf([]byte("another"))), []byte("wrong:0")})
	tl.handoff.put(2, [][]byte{leafKey(rfc6962.DefaultHasher.HashLeaf(bodies[2])), []byte("handed:2")})
	var last tessera.IndexFuture
	for _, b := range bodies {
		last = tl.appender.Add(ctx, tessera.NewEntry(b))
	}
	if _, _, err := tl.awaiter.Await(ctx, last); err != nil {
		t.Fatal(err)
	}
	tl.index = idx
	f := &follower{l: tl.Log, bundles: DefaultFollowBundles}
	for caughtUp := false; !caughtUp; {
		if caughtUp, err = f.step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	signer, err := SearchQuery{Key: p256.fingerprint(t)}.indexKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		want []uint64
	}{
		{"wrong:0", nil},
		{"handed:2", []uint64{2}},
		{string(signer), []uint64{0, 1}},
	} {
		got, err := idx.Lookup(ctx, []byte(tc.key), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("key %q names entries %v, want %v", tc.key, got, tc.want)
		}
	}
}
