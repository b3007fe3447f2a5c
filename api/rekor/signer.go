package rekor

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Fulcio's certificate extensions for the OIDC issuer that vouched for the signer
// (sigstore/fulcio docs/oid-info.md): .1.8 holds a DER UTF8String and supersedes .1.1, which
// holds the issuer's bytes as they are.
var (
	OIDIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	OIDIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
)

// KeyFingerprint is the SHA-256 of a PKIX (SubjectPublicKeyInfo) DER public key: how Quire's
// search and pages name a signing key.
func KeyFingerprint(pkixDER []byte) [sha256.Size]byte {
	return sha256.Sum256(pkixDER)
}

// ParseKeyFingerprint reads a signing key given as its fingerprint (64 hex digits, either case,
// optionally prefixed "sha256:") or as a PEM "PUBLIC KEY" block, which it hashes.
func ParseKeyFingerprint(s string) ([sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-----BEGIN") {
		block, rest := pem.Decode([]byte(t))
		if block == nil || block.Type != "PUBLIC KEY" {
			return fp, errors.New("not a PEM \"PUBLIC KEY\" block")
		}
		if len(strings.TrimSpace(string(rest))) != 0 {
			return fp, errors.New("text after the PEM block")
		}
		if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return fp, fmt.Errorf("PEM block is not a PKIX public key: %w", err)
		}
		return KeyFingerprint(block.Bytes), nil
	}
	h := strings.TrimPrefix(strings.ToLower(t), "sha256:")
	if len(h) != 2*sha256.Size {
		return fp, fmt.Errorf("a key is 64 hex digits (the SHA-256 of its PKIX DER) or a PEM public key, not %d characters", len(h))
	}
	if _, err := hex.Decode(fp[:], []byte(h)); err != nil {
		return fp, fmt.Errorf("key fingerprint is not hex: %w", err)
	}
	return fp, nil
}

// CertificateIdentity is who a signing certificate names, as Fulcio writes it. Every string is
// the signer's choice (the log checks the signature, not who issued the certificate): show it
// escaped, never as markup.
type CertificateIdentity struct {
	Subject string
	// Emails, URIs and DNSNames are the subject alternative names.
	Emails, URIs, DNSNames []string
	// Issuer is the OIDC issuer from Fulcio's extension (.1.8, else .1.1); empty when neither is
	// there or .1.8 is malformed.
	Issuer              string
	CertIssuer          string
	NotBefore, NotAfter time.Time
	// KeyDER is the certificate's public key, PKIX DER.
	KeyDER []byte
}

// SANs are the subject alternative names, emails then URIs then DNS names.
func (c *CertificateIdentity) SANs() []string {
	out := make([]string, 0, len(c.Emails)+len(c.URIs)+len(c.DNSNames))
	out = append(out, c.Emails...)
	out = append(out, c.URIs...)
	return append(out, c.DNSNames...)
}

// ParseCertificateIdentity reads the identity of a DER X.509 certificate.
func ParseCertificateIdentity(der []byte) (*CertificateIdentity, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	return CertificateIdentityOf(cert), nil
}

// CertificateIdentityOf is ParseCertificateIdentity for a certificate already parsed, so that a
// server that parsed it to check a signature need not parse it again.
func CertificateIdentityOf(cert *x509.Certificate) *CertificateIdentity {
	id := &CertificateIdentity{
		Subject:    cert.Subject.String(),
		Emails:     cert.EmailAddresses,
		DNSNames:   cert.DNSNames,
		CertIssuer: cert.Issuer.String(),
		NotBefore:  cert.NotBefore,
		NotAfter:   cert.NotAfter,
		KeyDER:     cert.RawSubjectPublicKeyInfo,
	}
	for _, u := range cert.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	id.Issuer = FulcioIssuer(cert)
	return id
}

// FulcioIssuer is the OIDC issuer a Fulcio certificate names: extension .1.8, else .1.1; empty
// when neither is there or .1.8 is malformed.
func FulcioIssuer(cert *x509.Certificate) string {
	var v1, v2 string
	var hasV2 bool
	for _, e := range cert.Extensions {
		switch {
		case e.Id.Equal(OIDIssuerV2):
			rest, err := asn1.UnmarshalWithParams(e.Value, &v2, "utf8")
			hasV2 = err == nil && len(rest) == 0
		case e.Id.Equal(OIDIssuerV1):
			v1 = string(e.Value)
		}
	}
	if hasV2 {
		return v2
	}
	return v1
}
