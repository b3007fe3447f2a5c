package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	testIdentity = "signer@quire.test"
	testIssuer   = "https://issuer.quire.test"
)

// certChain is a certificate chain in trusted-root form.
func certChain(certs ...*x509.Certificate) *protocommon.X509CertificateChain {
	c := &protocommon.X509CertificateChain{}
	for _, cert := range certs {
		c.Certificates = append(c.Certificates, &protocommon.X509Certificate{RawBytes: cert.Raw})
	}
	return c
}

// withAuthorities is tr with a certificate authority (a Fulcio) and a timestamp authority added,
// as the Sigstore public-good trusted root carries them.
func withAuthorities(tr *prototrust.TrustedRoot, fulcio *root.FulcioCertificateAuthority, tsa *root.SigstoreTimestampingAuthority) *prototrust.TrustedRoot {
	tr = proto.Clone(tr).(*prototrust.TrustedRoot)
	since := &protocommon.TimeRange{Start: timestamppb.New(time.Now().Add(-24 * time.Hour))}
	tr.CertificateAuthorities = append(tr.CertificateAuthorities, &prototrust.CertificateAuthority{
		Uri: fulcio.URI, CertChain: certChain(append(fulcio.Intermediates, fulcio.Root)...), ValidFor: since,
	})
	tr.TimestampAuthorities = append(tr.TimestampAuthorities, &prototrust.CertificateAuthority{
		Uri: tsa.URI, CertChain: certChain(append(append([]*x509.Certificate{tsa.Leaf}, tsa.Intermediates...), tsa.Root)...), ValidFor: since,
	})
	return tr
}

// virtualSigstore is a Fulcio and a timestamp authority for tests (sigstore-go's own test CA).
type virtualSigstore struct {
	*ca.VirtualSigstore
	fulcio *root.FulcioCertificateAuthority
	tsa    *root.SigstoreTimestampingAuthority
}

func newVirtualSigstore(t *testing.T) *virtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return &virtualSigstore{
		VirtualSigstore: vs,
		fulcio:          vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority),
		tsa:             vs.TimestampingAuthorities()[0].(*root.SigstoreTimestampingAuthority),
	}
}

// certSigner signs with a key whose certificate vs issued now for identity and issuer.
func (vs *virtualSigstore) certSigner(t *testing.T, identity, issuer string) artifactSigner {
	t.Helper()
	cert, key, err := vs.GenerateLeafCert(identity, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return artifactSigner{name: "fulcio", details: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, hash: crypto.SHA256, key: key.(crypto.Signer), cert: cert.Raw}
}

// timestamp adds to l's bundle an RFC 3161 timestamp by tsa over its signature.
func timestamp(t *testing.T, l *signedLog, tsa *virtualSigstore) {
	t.Helper()
	ts, err := tsa.TimestampResponse(l.bundle.GetMessageSignature().GetSignature())
	if err != nil {
		t.Fatal(err)
	}
	l.bundle.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
		Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts}},
	}
}

func TestBundleChecksTheSignersIdentity(t *testing.T) {
	vs := newVirtualSigstore(t)
	other := newVirtualSigstore(t)
	want := &Identity{SubjectAlternativeName: testIdentity, Issuer: testIssuer}
	// signed is a bundle signed by a certificate vs issued to testIdentity, timestamped by vs.
	signed := func(t *testing.T) *signedLog {
		l := buildSignedLog(t, vs.certSigner(t, testIdentity, testIssuer), 0, 0)
		timestamp(t, l, vs)
		l.trustedRoot = withAuthorities(l.trustedRoot, vs.fulcio, vs.tsa)
		return l
	}
	for _, tc := range []struct {
		name     string
		log      func(t *testing.T) *signedLog
		identity *Identity
		says     string // "" when the bundle verifies
	}{
		{name: "a certificate a trusted authority issued to the identity verifies", log: signed, identity: want},
		{name: "regular expressions for identity and issuer match", log: signed,
			identity: &Identity{SubjectAlternativeNameRegexp: `^signer@quire\.test$`, IssuerRegexp: `^https://issuer\.`}},
		{name: "another identity is refused, naming the certificate's", log: signed,
			identity: &Identity{SubjectAlternativeName: "someone@else.test", Issuer: testIssuer}, says: testIdentity},
		{name: "another issuer is refused", log: signed,
			identity: &Identity{SubjectAlternativeName: testIdentity, Issuer: "https://accounts.example"}, says: testIssuer},
		{name: "an identity given without an issuer is refused", log: signed,
			identity: &Identity{SubjectAlternativeName: testIdentity}, says: "issuer"},
		{name: "a bundle without a timestamp is refused", identity: want, says: "timestamp", log: func(t *testing.T) *signedLog {
			l := signed(t)
			l.bundle.VerificationMaterial.TimestampVerificationData = nil
			return l
		}},
		{name: "a timestamp by an untrusted authority is refused", identity: want, says: "timestamp", log: func(t *testing.T) *signedLog {
			l := signed(t)
			timestamp(t, l, other)
			return l
		}},
		{name: "a certificate an untrusted authority issued is refused, whatever it names", identity: want, says: "does not chain", log: func(t *testing.T) *signedLog {
			l := buildSignedLog(t, other.certSigner(t, testIdentity, testIssuer), 0, 0)
			timestamp(t, l, vs)
			l.trustedRoot = withAuthorities(l.trustedRoot, vs.fulcio, vs.tsa)
			return l
		}},
		{name: "a certificate expired when the signature was timestamped is refused", identity: want, says: "does not chain", log: func(t *testing.T) *signedLog {
			rootCert, rootKey, err := ca.GenerateRootCa()
			if err != nil {
				t.Fatal(err)
			}
			inter, interKey, err := ca.GenerateFulcioIntermediate(rootCert, rootKey)
			if err != nil {
				t.Fatal(err)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ca.GenerateLeafCert(testIdentity, testIssuer, time.Now().Add(-time.Hour), key, inter, interKey)
			if err != nil {
				t.Fatal(err)
			}
			l := buildSignedLog(t, artifactSigner{name: "expired", details: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, hash: crypto.SHA256, key: key, cert: cert.Raw}, 0, 0)
			timestamp(t, l, vs)
			l.trustedRoot = withAuthorities(l.trustedRoot, &root.FulcioCertificateAuthority{URI: "https://expired.test", Root: rootCert, Intermediates: []*x509.Certificate{inter}}, vs.tsa)
			return l
		}},
		{name: "a bundle naming its signer by a key has no identity to check", identity: want, says: "by a key", log: func(t *testing.T) *signedLog {
			l := buildSignedLog(t, newArtifactSigner(t, "ecdsa-p256"), 0, 0)
			l.trustedRoot = withAuthorities(l.trustedRoot, vs.fulcio, vs.tsa)
			return l
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.log(t)
			res, err := Bundle(marshalBundle(t, l.bundle), bytes.NewReader(l.artifact), Options{TrustedRoot: l.trustedRoot, Identity: tc.identity})
			if tc.says == "" {
				if err != nil {
					t.Fatalf("verification failed: %v", err)
				}
				if res.Signer.Identity != testIdentity || res.Signer.Issuer != testIssuer || !strings.Contains(res.Signer.String(), testIdentity) {
					t.Fatalf("the result names signer %+v, want %s from %s", res.Signer, testIdentity, testIssuer)
				}
				return
			}
			if checkOf(err) != CheckSigner || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want the signer check failing and saying %q", err, tc.says)
			}
		})
	}
}

func TestBundleRequiresAnExpectedSigner(t *testing.T) {
	l := buildSignedLog(t, newArtifactSigner(t, "ecdsa-p256"), 0, 0)
	if _, err := Bundle(marshalBundle(t, l.bundle), bytes.NewReader(l.artifact), Options{TrustedRoot: l.trustedRoot}); err == nil || !strings.Contains(err.Error(), "who must have signed") {
		t.Fatalf("a bundle verified without an expected signer: %v", err)
	}
	res, err := Bundle(marshalBundle(t, l.bundle), bytes.NewReader(l.artifact), Options{TrustedRoot: l.trustedRoot, PublicKey: l.signerPub})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Signer.KeyDER, mustPKIX(t, l.signerPub)) || !strings.HasPrefix(res.Signer.String(), "key SHA256:") {
		t.Fatalf("the result names signer %v, want the key", res.Signer)
	}
}
