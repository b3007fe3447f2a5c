// Package fulciotest makes Fulcio-style signing certificates for tests: a throwaway certificate
// authority, and short-lived leaf certificates that carry subject alternative names and the OIDC
// issuer in Fulcio's extensions, encoded as Fulcio encodes them (sigstore/fulcio docs/oid-info.md:
// 1.3.6.1.4.1.57264.1.8 as a DER UTF8String, the deprecated .1.1 as the issuer's raw bytes).
package fulciotest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/quirelog/quire/api/rekor"
)

// CA is a test certificate authority.
type CA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// NewCA makes a self-signed ECDSA P-256 authority named "sigstore-test".
func NewCA() (*CA, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sigstore-test", Organization: []string{"sigstore.dev"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return &CA{key: k, cert: cert}, nil
}

// Leaf is what a leaf certificate names.
type Leaf struct {
	// Emails, URIs and DNSNames become the subject alternative names; a URI must parse.
	Emails, URIs, DNSNames []string
	// Issuer is the OIDC issuer; OldIssuerExtension writes it in the deprecated .1.1 extension
	// instead of .1.8.
	Issuer             string
	OldIssuerExtension bool
}

// Issue certifies pub for l, valid for ten minutes as Fulcio's certificates are, and returns the
// certificate's DER.
func (ca *CA) Issue(pub crypto.PublicKey, l Leaf) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("drawing serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		NotBefore:      time.Now().Add(-time.Minute),
		NotAfter:       time.Now().Add(10 * time.Minute),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: l.Emails,
		DNSNames:       l.DNSNames,
	}
	for _, s := range l.URIs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("SAN URI %q: %w", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if l.Issuer != "" {
		ext := pkix.Extension{Id: rekor.OIDIssuerV1, Value: []byte(l.Issuer)}
		if !l.OldIssuerExtension {
			v, err := asn1.MarshalWithParams(l.Issuer, "utf8")
			if err != nil {
				return nil, fmt.Errorf("encoding issuer: %w", err)
			}
			ext = pkix.Extension{Id: rekor.OIDIssuerV2, Value: v}
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issuing certificate: %w", err)
	}
	return der, nil
}
