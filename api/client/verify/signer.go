package verify

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
)

// Identity is who a signing certificate must name, as cosign verify-blob's --certificate-identity
// and --certificate-oidc-issuer (or their -regexp forms) say: exactly one of each pair is set.
// The regular expressions are Go's (RE2) and match anywhere unless anchored.
type Identity struct {
	// SubjectAlternativeName is the certificate's SAN: an email address, a URI (a CI workflow),
	// and so on.
	SubjectAlternativeName       string
	SubjectAlternativeNameRegexp string
	// Issuer is the OIDC issuer Fulcio recorded in the certificate's extensions.
	Issuer       string
	IssuerRegexp string
}

func (id *Identity) matcher() (sgverify.CertificateIdentity, error) {
	if (id.SubjectAlternativeName == "") == (id.SubjectAlternativeNameRegexp == "") {
		return sgverify.CertificateIdentity{}, errors.New("give exactly one of the certificate identity and its regular expression")
	}
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return sgverify.CertificateIdentity{}, errors.New("give exactly one of the certificate OIDC issuer and its regular expression")
	}
	m, err := sgverify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.SubjectAlternativeName, id.SubjectAlternativeNameRegexp)
	if err != nil {
		return sgverify.CertificateIdentity{}, fmt.Errorf("certificate identity: %w", err)
	}
	return m, nil
}

// Signer says who made a verified signature.
type Signer struct {
	// KeyDER is the PKIX DER of the signing key.
	KeyDER []byte
	// Identity and Issuer are what the signing certificate names, when the bundle has one.
	Identity, Issuer string
}

func (s Signer) String() string {
	sum := sha256.Sum256(s.KeyDER)
	key := "key SHA256:" + hex.EncodeToString(sum[:])
	if s.Identity == "" {
		return key
	}
	return fmt.Sprintf("%s (issuer %s), %s", s.Identity, s.Issuer, key)
}

// checkSigner is the signer check: the signature's key must be opts.PublicKey, or the certificate
// must satisfy opts.Identity (checkIdentity). keyDER is the signing key, cert the signing
// certificate (nil for a bundle that names its key by a hint).
func checkSigner(b *protobundle.Bundle, keyDER []byte, cert *x509.Certificate, opts Options) (Signer, error) {
	s := Signer{KeyDER: keyDER}
	if opts.PublicKey != nil {
		want, err := x509.MarshalPKIXPublicKey(opts.PublicKey)
		if err != nil {
			return s, fmt.Errorf("encoding the expected key: %w", err)
		}
		if !bytes.Equal(want, keyDER) {
			return s, errors.New("signed by another key than the one expected")
		}
	}
	if cert != nil {
		sum, err := certificate.SummarizeCertificate(cert)
		if err == nil {
			s.Identity, s.Issuer = sum.SubjectAlternativeName, sum.Extensions.Issuer
		}
	}
	if opts.Identity != nil {
		if err := checkIdentity(b, cert, *opts.Identity, opts.TrustedRoot); err != nil {
			return s, err
		}
	}
	return s, nil
}

// checkIdentity is what makes a certificate's name worth anything: the certificate must chain to
// a certificate authority of the trusted root (a Fulcio), valid when a timestamp authority of the
// trusted root says the signature already existed (an RFC 3161 timestamp over the signature, in the
// bundle: a Rekor v2 entry records no time), and name id. sigstore-go does each step, as cosign
// does.
func checkIdentity(b *protobundle.Bundle, cert *x509.Certificate, id Identity, tr *prototrust.TrustedRoot) error {
	want, err := id.matcher()
	if err != nil {
		return err
	}
	if cert == nil {
		return errors.New("the bundle names its signer by a key, not a certificate: verify it with the key")
	}
	material, err := root.NewTrustedRootFromProtobuf(tr)
	if err != nil {
		return fmt.Errorf("reading the trusted root's authorities: %w", err)
	}
	if len(material.FulcioCertificateAuthorities()) == 0 || len(material.TimestampingAuthorities()) == 0 {
		return errors.New("the trusted root names no certificate authority or no timestamp authority, so no certificate identity can be checked")
	}
	stamps, err := sgverify.VerifySignedTimestampWithThreshold(&sgbundle.Bundle{Bundle: b}, material, 1)
	if err != nil {
		return fmt.Errorf("no timestamp from a trusted timestamp authority shows when the signature was made: %w", err)
	}
	var chained bool
	for _, ts := range stamps {
		if _, err := sgverify.VerifyLeafCertificate(ts.Time, cert, material); err == nil {
			chained = true
			break
		}
	}
	if !chained {
		return errors.New("the signing certificate does not chain to a trusted certificate authority at the time the signature was timestamped")
	}
	sum, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return fmt.Errorf("reading the signing certificate's identity: %w", err)
	}
	if err := want.Verify(sum); err != nil {
		return fmt.Errorf("the signing certificate names %s (issuer %s): %w", sum.SubjectAlternativeName, sum.Extensions.Issuer, err)
	}
	return nil
}

// ParsePublicKeyPEM reads the key of a PEM "PUBLIC KEY" block (PKIX), as cosign's --key file holds
// it, for Options.PublicKey.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	return k, nil
}
