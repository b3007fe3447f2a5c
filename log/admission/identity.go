package admission

import (
	"crypto/x509"
	"encoding/hex"
	"strings"

	"github.com/quirelog/quire/api/rekor"
)

// KeySigner names the signer of a bare public key for rate limiting: its fingerprint, as search
// names it.
func KeySigner(spki []byte) string {
	h := rekor.KeyFingerprint(spki)
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
	return "identity:" + strings.Join(names, ",") + " issuer:" + rekor.FulcioIssuer(cert)
}
