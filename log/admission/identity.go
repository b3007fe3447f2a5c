package admission

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"strings"
)

// Fulcio's certificate extensions naming the OIDC issuer that vouched for the identity
// (sigstore/fulcio docs/oid-info.md): 1.3.6.1.4.1.57264.1.8 holds a DER UTF8String, the older
// 1.3.6.1.4.1.57264.1.1 the raw string.
var (
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
)

// KeySigner names the signer of a bare public key for rate limiting: its PKIX DER's SHA-256.
func KeySigner(spki []byte) string {
	h := sha256.Sum256(spki)
	return "key:" + hex.EncodeToString(h[:])
}

// CertificateSigner names the signer of a certificate for rate limiting: Fulcio gives every
// signature a fresh key and certificate, so what stays the same is the identity, its subject
// alternative names and the OIDC issuer. A certificate with no such name is named by its key.
func CertificateSigner(cert *x509.Certificate) string {
	var names []string
	names = append(names, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	if len(names) == 0 {
		return KeySigner(cert.RawSubjectPublicKeyInfo)
	}
	issuer := ""
	for _, e := range cert.Extensions {
		switch {
		case e.Id.Equal(oidIssuerV2):
			var s string
			if _, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8"); err == nil {
				issuer = s
			}
		case e.Id.Equal(oidIssuerV1) && issuer == "":
			issuer = string(e.Value)
		}
	}
	return "identity:" + strings.Join(names, ",") + " issuer:" + issuer
}
