// Package admission holds what decides who may write to a Quire log beyond a valid signature:
// the certificate authorities a signing certificate must chain to, and token-bucket rate limits per
// client address and per signer. Package log applies them to each write; this package knows
// nothing of entries.
//
// Certificates are judged as Sigstore verifiers judge a Fulcio certificate (sigstore-go
// verify/certificate.go, Fulcio's CA hierarchy): the chain is checked at the moment the
// certificate was issued (its NotBefore), so a ten-minute Fulcio certificate that has since
// expired is accepted, while one issued before or after its CA's validity (the CA certificates'
// own NotBefore/NotAfter and a trusted_root.json's validFor window) is not. Leaves must allow code
// signing, the extended key usage Fulcio issues. TestTrustedCAs proves these rules.
package admission

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	trustrootv1 "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// MaxClockSkew is how far in the future a certificate's NotBefore may be and still count as
// issued: a CA whose clock runs ahead of the log's is not an error.
const MaxClockSkew = 5 * time.Minute

// ca is one certificate authority: its roots and intermediates, and the window in which it may
// issue (zero times: no bound beyond its certificates' validity).
type ca struct {
	name          string
	roots         *x509.CertPool
	intermediates *x509.CertPool
	start, end    time.Time
}

// CAs are the certificate authorities a log trusts to vouch for signers. The zero value trusts
// none; use LoadCAs or ParseCAs.
type CAs struct {
	cas []ca
}

// LoadCAs reads the CAs in file path: PEM certificates (roots and intermediates, in any order)
// or a Sigstore trusted_root.json, whose certificateAuthorities are used.
func LoadCAs(path string) (*CAs, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading trusted CAs: %w", err)
	}
	c, err := ParseCAs(data)
	if err != nil {
		return nil, fmt.Errorf("trusted CAs in %s: %w", path, err)
	}
	return c, nil
}

// ParseCAs reads CAs from PEM certificates or a Sigstore trusted_root.json (told apart by a
// leading '{'). PEM certificates form one CA: the self-signed ones are its roots, the others
// intermediates. Each trusted_root.json certificate authority is a CA of its own, bound to its
// validFor window. At least one root is required.
func ParseCAs(data []byte) (*CAs, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		return parseTrustedRoot(trimmed)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificates and not a trusted_root.json")
	}
	c, err := newCA("the PEM certificates", certs)
	if err != nil {
		return nil, err
	}
	return &CAs{cas: []ca{c}}, nil
}

func parseTrustedRoot(data []byte) (*CAs, error) {
	var tr trustrootv1.TrustedRoot
	// Fields a later trusted_root.json version adds do not change what its CAs are.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &tr); err != nil {
		return nil, fmt.Errorf("parsing trusted_root.json: %w", err)
	}
	out := &CAs{}
	for i, a := range tr.GetCertificateAuthorities() {
		name := fmt.Sprintf("certificateAuthorities[%d]", i)
		if a.GetUri() != "" {
			name += " (" + a.GetUri() + ")"
		}
		var certs []*x509.Certificate
		for j, raw := range a.GetCertChain().GetCertificates() {
			cert, err := x509.ParseCertificate(raw.GetRawBytes())
			if err != nil {
				return nil, fmt.Errorf("%s certificate %d: %w", name, j, err)
			}
			certs = append(certs, cert)
		}
		c, err := newCA(name, certs)
		if err != nil {
			return nil, err
		}
		if v := a.GetValidFor(); v != nil {
			if v.GetStart() != nil {
				c.start = v.GetStart().AsTime()
			}
			if v.GetEnd() != nil {
				c.end = v.GetEnd().AsTime()
			}
		}
		out.cas = append(out.cas, c)
	}
	if len(out.cas) == 0 {
		return nil, errors.New("trusted_root.json has no certificateAuthorities")
	}
	return out, nil
}

func newCA(name string, certs []*x509.Certificate) (ca, error) {
	c := ca{name: name, roots: x509.NewCertPool(), intermediates: x509.NewCertPool()}
	roots := 0
	for _, cert := range certs {
		if bytes.Equal(cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(cert) == nil {
			c.roots.AddCert(cert)
			roots++
		} else {
			c.intermediates.AddCert(cert)
		}
	}
	if roots == 0 {
		return ca{}, fmt.Errorf("%s hold no self-signed root certificate", name)
	}
	return c, nil
}

// Verify says whether leaf chains to one of the CAs as it stood when leaf was issued: the
// chain is built at leaf.NotBefore, for code signing, and leaf.NotBefore must fall within the
// CA's validFor window and not after now (plus MaxClockSkew). The leaf's expiry is not checked:
// signers prove when they signed, not the log. The error says what failed, for the CA that came
// closest (a chain that failed on time or key usage rather than an unknown issuer).
func (c *CAs) Verify(leaf *x509.Certificate, now time.Time) error {
	issued := leaf.NotBefore
	if issued.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("certificate is issued in the future (NotBefore %s)", issued.UTC().Format(time.RFC3339))
	}
	var unknown, closest error
	for _, a := range c.cas {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         a.roots,
			Intermediates: a.intermediates,
			CurrentTime:   issued,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		})
		var ua x509.UnknownAuthorityError
		switch {
		case errors.As(err, &ua):
			unknown = err
			continue
		case err != nil:
			closest = fmt.Errorf("certificate does not chain to %s at its issuance (%s): %w", a.name, issued.UTC().Format(time.RFC3339), err)
			continue
		case !a.start.IsZero() && issued.Before(a.start), !a.end.IsZero() && issued.After(a.end):
			closest = fmt.Errorf("certificate was issued at %s, outside the validity of %s (%s)", issued.UTC().Format(time.RFC3339), a.name, window(a.start, a.end))
			continue
		}
		return nil
	}
	if closest != nil {
		return closest
	}
	return fmt.Errorf("certificate does not chain to a trusted CA: %w", unknown)
}

func window(start, end time.Time) string {
	var b strings.Builder
	b.WriteString("valid from ")
	if start.IsZero() {
		b.WriteString("the start")
	} else {
		b.WriteString(start.UTC().Format(time.RFC3339))
	}
	if !end.IsZero() {
		b.WriteString(" to " + end.UTC().Format(time.RFC3339))
	}
	return b.String()
}
