package main

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert issues a certificate for pub from (parentCert, parentKey), or self-signed when
// parentCert is nil: a CA when ca is set, else a Fulcio-style ten-minute code signing leaf.
func testCert(t *testing.T, serial int64, pub any, parentCert *x509.Certificate, parentKey *ecdsa.PrivateKey, from time.Time, ca bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: from}
	if ca {
		tmpl.Subject = pkix.Name{CommonName: fmt.Sprint("test CA ", serial)}
		tmpl.NotAfter = from.Add(10 * 365 * 24 * time.Hour)
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		tmpl.NotAfter = from.Add(10 * time.Minute)
		tmpl.EmailAddresses = []string{"signer@example.com"}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	if parentCert == nil {
		parentCert = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// certRekord is a hashedrekord request signed by k and verified by cert.
func certRekord(t *testing.T, k *ecdsa.PrivateKey, cert *x509.Certificate, artifact []byte) []byte {
	t.Helper()
	d := sha256.Sum256(artifact)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`{"hashedRekordRequestV002":{"digest":%q,"signature":{"content":%q,"verifier":{"x509Certificate":{"rawBytes":%q},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`,
		b64(d[:]), b64(sig), b64(cert.Raw)))
}

// TestServeTrustedCA runs quire serve with --trusted-ca and checks that an expired Fulcio-style
// certificate from the CA is logged and one from another CA is refused with 400 saying why.
func TestServeTrustedCA(t *testing.T) {
	work := t.TempDir()
	now := time.Now()
	caKey, otherKey, signer := newECDSA(t), newECDSA(t), newECDSA(t)
	ca := testCert(t, 1, caKey.Public(), nil, caKey, now.Add(-24*time.Hour), true)
	other := testCert(t, 2, otherKey.Public(), nil, otherKey, now.Add(-24*time.Hour), true)
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, work, "--trusted-ca", caFile)
	defer s.stop()

	expired := testCert(t, 3, signer.Public(), ca, caKey, now.Add(-time.Hour), false)
	if status, body := s.post(certRekord(t, signer, expired, []byte("from the trusted CA"))); status != http.StatusCreated {
		t.Errorf("an expired leaf of the trusted CA: status %d, want 201: %s", status, body)
	}
	foreign := testCert(t, 4, signer.Public(), other, otherKey, now.Add(-time.Minute), false)
	status, body := s.post(certRekord(t, signer, foreign, []byte("from another CA")))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "does not chain to a trusted CA") || !strings.Contains(string(body), "x509Certificate") {
		t.Errorf("a leaf of another CA: status %d, want 400 saying it does not chain: %s", status, body)
	}
}
