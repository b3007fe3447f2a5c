package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"

	"github.com/quirelog/quire/api/client/testlog"
	quirelog "github.com/quirelog/quire/log"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// TestCanonicalBodyMatchesQuiresLeaf checks that the body verify rebuilds is byte-identical to the
// leaf Quire's own log package writes for the same request, for every key type it accepts.
func TestCanonicalBodyMatchesQuiresLeaf(t *testing.T) {
	ctx := context.Background()
	key, err := testlog.NewKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := testlog.Open(ctx, t.TempDir(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	ql, err := quirelog.New(ctx, quirelog.Config{Reader: lg.Reader(), ReadOnly: true, VerifierKey: key.VKey})
	if err != nil {
		t.Fatalf("starting a read-only Quire log: %v", err)
	}
	defer ql.Close()
	for _, keyType := range []string{"ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "ed25519"} {
		t.Run("the rebuilt body of a "+keyType+" entry is Quire's leaf", func(t *testing.T) {
			s := newArtifactSigner(t, keyType)
			h := s.hash.New()
			h.Write([]byte("an artifact"))
			digest := h.Sum(nil)
			der, err := x509.MarshalPKIXPublicKey(s.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			sig := &rekorpb.Signature{Content: s.signDigest(t, digest), Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
				KeyDetails: s.details,
			}}
			_, want, err := ql.Validate(&rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
				HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: digest, Signature: sig},
			}})
			if err != nil {
				t.Fatalf("Quire rejected the request: %v", err)
			}
			got, err := quirelog.HashedRekordBody(digest, hashAlgFor(s.hash), sig)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("rebuilt body\n%s\nQuire's leaf\n%s", got, want)
			}
		})
	}
}
