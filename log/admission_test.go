package log

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	trustrootv1 "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quirelog/quire/log/admission"
)

// testCA is a certificate authority of a test PKI.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var testSerial = big.NewInt(100)

// issue makes a certificate for pub signed by parent (itself when parent is nil), valid in
// [from, to]; a CA when ca is set, else a Fulcio-style code signing leaf for email.
func issue(t *testing.T, parent *testCA, pub crypto.PublicKey, key crypto.Signer, name string, from, to time.Time, ca bool, eku []x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	testSerial.Add(testSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Set(testSerial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    from,
		NotAfter:     to,
		ExtKeyUsage:  eku,
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.Subject = pkix.Name{}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.EmailAddresses = []string{name}
	}
	issuerCert, issuerKey := tmpl, key
	if parent != nil {
		issuerCert, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, pub, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func newTestCA(t *testing.T, parent *testCA, name string, from, to time.Time) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var eku []x509.ExtKeyUsage
	if parent != nil {
		// Fulcio's intermediate carries the code signing usage it issues for.
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	return &testCA{cert: issue(t, parent, key.Public(), key, name, from, to, true, eku), key: key}
}

func certVerifier(s *testSigner, cert *x509.Certificate) *rekorpb.Verifier {
	return &rekorpb.Verifier{KeyDetails: s.details, Verifier: &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: cert.Raw}}}
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// TestTrustedCAs submits certificates from a CA hierarchy (root, intermediate) and from
// outside it, and checks that exactly the ones the CAs vouched for at their issuance are logged,
// an expired ten-minute Fulcio-style certificate among them.
func TestTrustedCAs(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, nil, "test root", now.Add(-5*year), now.Add(5*year))
	// The intermediate's own validity began a year ago: a leaf dated before that was not issued
	// within the CA's validity.
	inter := newTestCA(t, root, "test intermediate", now.Add(-year), now.Add(year))
	other := newTestCA(t, nil, "another root", now.Add(-5*year), now.Add(5*year))
	codeSigning := []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}

	s := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	leaf := func(ca *testCA, from time.Time, eku []x509.ExtKeyUsage) *x509.Certificate {
		return issue(t, ca, s.priv.Public(), nil, "signer@example.com", from, from.Add(10*time.Minute), false, eku)
	}

	pemCAs, err := admission.ParseCAs(pemCerts(inter.cert, root.cert))
	if err != nil {
		t.Fatal(err)
	}
	// The same hierarchy as a trusted_root.json whose CA stopped issuing a day ago, though its
	// certificates are still valid: a rotated Fulcio.
	tr := &trustrootv1.TrustedRoot{
		MediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
		CertificateAuthorities: []*trustrootv1.CertificateAuthority{{
			Uri: "https://fulcio.example.com",
			CertChain: &commonv1.X509CertificateChain{Certificates: []*commonv1.X509Certificate{
				{RawBytes: inter.cert.Raw}, {RawBytes: root.cert.Raw},
			}},
			ValidFor: &commonv1.TimeRange{Start: timestamppb.New(now.Add(-year)), End: timestamppb.New(now.Add(-24 * time.Hour))},
		}},
	}
	trJSON, err := protojson.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	rotatedCAs, err := admission.ParseCAs(trJSON)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		cas      *admission.CAs
		verifier *rekorpb.Verifier
		// refused is a part of the 400's message, or "" when the entry must be logged.
		refused string
	}{
		{"a Fulcio-style leaf that expired an hour ago is logged", pemCAs, certVerifier(s, leaf(inter, now.Add(-time.Hour), codeSigning)), ""},
		{"a leaf issued by the root itself is logged", pemCAs, certVerifier(s, leaf(root, now.Add(-time.Minute), codeSigning)), ""},
		{"a leaf from another CA is refused", pemCAs, certVerifier(s, leaf(other, now.Add(-time.Minute), codeSigning)), "does not chain to a trusted CA"},
		{"a leaf dated before its intermediate's validity is refused", pemCAs, certVerifier(s, leaf(inter, now.Add(-2*year), codeSigning)), "has expired or is not yet valid"},
		{"a leaf without the code signing usage is refused", pemCAs, certVerifier(s, leaf(inter, now.Add(-time.Minute), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})), "incompatible key usage"},
		{"a leaf dated in the future is refused", pemCAs, certVerifier(s, leaf(inter, now.Add(time.Hour), codeSigning)), "issued in the future"},
		{"a self-signed certificate is refused", pemCAs, s.certVerifier(t), "does not chain to a trusted CA"},
		{"a leaf issued after the trusted root's validFor ended is refused", rotatedCAs, certVerifier(s, leaf(inter, now.Add(-time.Hour), codeSigning)), "outside the validity of certificateAuthorities[0] (https://fulcio.example.com)"},
		{"a leaf issued within the trusted root's validFor is logged", rotatedCAs, certVerifier(s, leaf(inter, now.Add(-48*time.Hour), codeSigning)), ""},
		{"a public key is logged when public keys are allowed", pemCAs, s.pkixVerifier(t), ""},
	}
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := openTestLog(t, t.TempDir(), testLogOpts{pebble: true, admit: Admission{CAs: c.cas}})
			_, err := l.CreateEntry(ctx, s.request(t, []byte(fmt.Sprint("artifact ", i)), c.verifier))
			checkAdmission(t, l, err, c.refused, "hashedRekordRequestV002.signature.verifier")
		})
	}
}

// checkAdmission checks that a write was refused with a 400 naming field and saying want, and
// nothing was logged; or, with want empty, that it was logged.
func checkAdmission(t *testing.T, l *testLog, err error, want, field string) {
	t.Helper()
	size, serr := l.store.IntegratedSize(context.Background())
	if serr != nil {
		t.Fatal(serr)
	}
	if want == "" {
		if err != nil || size != 1 {
			t.Fatalf("refused (%v), log size %d; want it logged", err, size)
		}
		return
	}
	var inv *InvalidRequestError
	if !errors.As(err, &inv) || !strings.Contains(inv.Error(), want) || !strings.HasPrefix(inv.Field, field) {
		t.Fatalf("got %v, want an invalid %s saying %q", err, field, want)
	}
	if size != 0 {
		t.Errorf("a refused write left the log at size %d", size)
	}
}

func TestAdmissionRules(t *testing.T) {
	p256 := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	ed := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ED25519_PH)
	onlyP256 := []commonv1.PublicKeyDetails{commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}
	cases := []struct {
		name    string
		admit   Admission
		signer  *testSigner
		cert    bool
		refused string
		field   string
	}{
		{"an allowed algorithm is logged", Admission{Algorithms: onlyP256}, p256, false, "", ""},
		{"an algorithm outside the allow-list is refused by name", Admission{Algorithms: onlyP256}, ed, false, "signing algorithm ed25519-ph (PKIX_ED25519_PH) is not allowed by this log: it accepts ecdsa-sha2-256-nistp256", "hashedRekordRequestV002.signature.verifier.keyDetails"},
		{"a public key is refused when only certificates are", Admission{RefusePublicKeys: true}, p256, false, "accepts only X.509 certificates", "hashedRekordRequestV002.signature.verifier.publicKey"},
		{"a certificate is logged when public keys are refused", Admission{RefusePublicKeys: true}, p256, true, "", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := openTestLog(t, t.TempDir(), testLogOpts{pebble: true, admit: c.admit})
			v := c.signer.pkixVerifier(t)
			if c.cert {
				v = c.signer.certVerifier(t)
			}
			_, err := l.CreateEntry(context.Background(), c.signer.request(t, []byte(fmt.Sprint("artifact ", i)), v))
			checkAdmission(t, l, err, c.refused, c.field)
		})
	}
}

// TestSignerRateLimit checks that a signer's bucket refuses the write past its burst with a
// *RateLimitedError, that another signer is not affected, and that a refused signature does not
// spend the signer's budget.
func TestSignerRateLimit(t *testing.T) {
	lim, err := admission.NewLimiter(admission.Limit{Name: "signer", Rate: 0.001, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	l := openTestLog(t, t.TempDir(), testLogOpts{pebble: true, admit: Admission{Signers: lim}})
	ctx := context.Background()
	a := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	b := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)

	bad := a.request(t, []byte("forged"), a.pkixVerifier(t))
	bad.GetHashedRekordRequestV002().GetSignature().Content = b.signDigest(t, a.digest([]byte("forged")))
	for range 3 {
		var inv *InvalidRequestError
		if _, err := l.CreateEntry(ctx, bad); !errors.As(err, &inv) {
			t.Fatalf("a forged signature got %v, want a 400", err)
		}
	}
	for i := range 2 {
		if _, err := l.CreateEntry(ctx, a.request(t, []byte(fmt.Sprint("a", i)), a.pkixVerifier(t))); err != nil {
			t.Fatalf("write %d within the burst: %v", i, err)
		}
	}
	_, err = l.CreateEntry(ctx, a.request(t, []byte("a2"), a.pkixVerifier(t)))
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.By != "signer" || rl.RetryAfter < time.Minute {
		t.Fatalf("the write past the burst got %v, want a signer *RateLimitedError with a long RetryAfter", err)
	}
	if _, err := l.CreateEntry(ctx, b.request(t, []byte("b0"), b.pkixVerifier(t))); err != nil {
		t.Fatalf("another signer was refused: %v", err)
	}
	if size, _ := l.store.IntegratedSize(ctx); size != 3 {
		t.Errorf("log size %d, want 3", size)
	}
}

// TestCertificateSignerIsTheIdentity checks that two Fulcio-style certificates for one identity,
// with different keys, share a rate-limit bucket.
func TestCertificateSignerIsTheIdentity(t *testing.T) {
	now := time.Now()
	root := newTestCA(t, nil, "root", now.Add(-time.Hour), now.Add(time.Hour))
	var names []string
	for range 2 {
		s := newTestSigner(t, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
		c := issue(t, root, s.priv.Public(), nil, "ci@example.com", now, now.Add(10*time.Minute), false, nil)
		c.URIs = append(c.URIs, &url.URL{Scheme: "https", Host: "github.com", Path: "/o/r"})
		names = append(names, admission.CertificateSigner(c))
	}
	if names[0] != names[1] || !strings.Contains(names[0], "ci@example.com") {
		t.Errorf("one identity named %q and %q", names[0], names[1])
	}
	if k := admission.KeySigner([]byte("x")); strings.Contains(k, "ci@") {
		t.Errorf("key signer %q", k)
	}
}
