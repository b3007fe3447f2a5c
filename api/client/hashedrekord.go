package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"strings"

	commonpb "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/rekor"
)

// KeyType names a signing key the log accepts for hashedrekord entries.
type KeyType string

// The key types Quire accepts for hashedrekord (the rekor-tiles v2.3 algorithm registry less plain
// Ed25519, which cannot sign a prehashed digest).
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyECDSAP384 KeyType = "ecdsa-p384"
	KeyECDSAP521 KeyType = "ecdsa-p521"
	KeyRSA2048   KeyType = "rsa-2048"
	KeyRSA3072   KeyType = "rsa-3072"
	KeyRSA4096   KeyType = "rsa-4096"
	KeyEd25519ph KeyType = "ed25519ph"
)

// KeyTypes lists every KeyType, the default (ECDSA P-256) first.
func KeyTypes() []KeyType {
	return []KeyType{KeyECDSAP256, KeyECDSAP384, KeyECDSAP521, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519ph}
}

// ParseKeyType accepts a KeyType name, case-insensitively.
func ParseKeyType(s string) (KeyType, error) {
	for _, kt := range KeyTypes() {
		if strings.EqualFold(s, string(kt)) {
			return kt, nil
		}
	}
	names := make([]string, 0, len(KeyTypes()))
	for _, kt := range KeyTypes() {
		names = append(names, string(kt))
	}
	return "", fmt.Errorf("unknown key type %q (want one of %s)", s, strings.Join(names, ", "))
}

// GenerateKey makes a fresh private key of type kt.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyEd25519ph:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating Ed25519 key: %w", err)
		}
		return priv, nil
	}
	return nil, fmt.Errorf("generating key: unknown key type %q", kt)
}

// Algorithm is how a key signs a hashedrekord: the key details the request declares and the hash
// the artifact digest must be computed with.
type Algorithm struct {
	KeyDetails commonpb.PublicKeyDetails
	Hash       crypto.Hash
}

// AlgorithmFor gives the algorithm Rekor v2 pairs with pub: ECDSA P-256/SHA-256, P-384/SHA-384,
// P-521/SHA-512, RSA PKCS#1 v1.5 2048/3072/4096 with SHA-256, Ed25519ph with SHA-512. The pairing
// is the log's own (rekor.KeyDetailsFor), so a request built here is one the log accepts.
func AlgorithmFor(pub crypto.PublicKey) (Algorithm, error) {
	details, h, err := rekor.KeyDetailsFor(pub)
	if err != nil {
		return Algorithm{}, err
	}
	return Algorithm{KeyDetails: details, Hash: h}, nil
}

// Digest hashes an artifact with the algorithm's hash.
func (a Algorithm) Digest(r io.Reader) ([]byte, error) {
	h := a.Hash.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("hashing artifact with %s: %w", a.Hash, err)
	}
	return h.Sum(nil), nil
}

// SignDigest signs a prehashed artifact digest the way the log verifies it: ASN.1 ECDSA, RSA
// PKCS#1 v1.5, or Ed25519ph (RFC 8032 section 5.1 with the SHA-512 prehash).
func SignDigest(signer crypto.Signer, digest []byte) ([]byte, error) {
	alg, err := AlgorithmFor(signer.Public())
	if err != nil {
		return nil, err
	}
	if len(digest) != alg.Hash.Size() {
		return nil, fmt.Errorf("digest is %d bytes, %s needs %d (%s)", len(digest), alg.KeyDetails, alg.Hash.Size(), alg.Hash)
	}
	var opts crypto.SignerOpts = alg.Hash
	if alg.KeyDetails == commonpb.PublicKeyDetails_PKIX_ED25519_PH {
		opts = &ed25519.Options{Hash: crypto.SHA512}
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signing digest with %s: %w", alg.KeyDetails, err)
	}
	return sig, nil
}

// RequestOption changes how NewHashedRekordRequest describes the signer.
type RequestOption func(*requestOptions)

type requestOptions struct {
	certDER []byte
}

// WithCertificate names the signer by its DER X.509 certificate instead of its public key. The
// certificate's key must be the signer's; the log checks that.
func WithCertificate(der []byte) RequestOption {
	return func(o *requestOptions) { o.certDER = der }
}

// NewHashedRekordRequest signs digest with signer and wraps it as a hashedrekord v0.0.2
// CreateEntryRequest (rekor-tiles api/proto/rekor/v2/hashedrekord.proto): the digest, the
// signature, and a verifier holding the PKIX DER public key (or certificate) and key details.
func NewHashedRekordRequest(signer crypto.Signer, digest []byte, opts ...RequestOption) (*pb.CreateEntryRequest, error) {
	var o requestOptions
	for _, opt := range opts {
		opt(&o)
	}
	alg, err := AlgorithmFor(signer.Public())
	if err != nil {
		return nil, err
	}
	sig, err := SignDigest(signer, digest)
	if err != nil {
		return nil, err
	}
	v := &pb.Verifier{KeyDetails: alg.KeyDetails}
	if o.certDER != nil {
		v.Verifier = &pb.Verifier_X509Certificate{X509Certificate: &commonpb.X509Certificate{RawBytes: o.certDER}}
	} else {
		der, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil {
			return nil, fmt.Errorf("encoding public key: %w", err)
		}
		v.Verifier = &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}
	}
	return &pb.CreateEntryRequest{
		Spec: &pb.CreateEntryRequest_HashedRekordRequestV002{
			HashedRekordRequestV002: &pb.HashedRekordRequestV002{
				Digest: digest,
				Signature: &pb.Signature{
					Content:  sig,
					Verifier: v,
				},
			},
		},
	}, nil
}
