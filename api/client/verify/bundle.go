package verify

import (
	"crypto/x509"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"

	quirelog "github.com/quirelog/quire/log"
)

// NewBundle assembles the v0.3 bundle for a hashedrekord entry signed with a public key: the
// message signature, a public key hint (KeyHint of signerDER) and the log's answer.
func NewBundle(tle *protorekor.TransparencyLogEntry, alg protocommon.HashAlgorithm, digest, sig, signerDER []byte) *protobundle.Bundle {
	return &protobundle.Bundle{
		MediaType: bundleMediaTypes[0],
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: KeyHint(signerDER)}},
			TlogEntries: []*protorekor.TransparencyLogEntry{tle},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: alg, Digest: digest},
			Signature:     sig,
		}},
	}
}

// MarshalBundle encodes a bundle as the JSON sigstore clients read.
func MarshalBundle(b *protobundle.Bundle) ([]byte, error) {
	j, err := protojson.MarshalOptions{Multiline: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding bundle: %w", err)
	}
	return j, nil
}

// TrustedRootForLog is a TrustedRoot naming one log by its verifier key, for callers that trust a
// log key directly rather than a distributed trusted_root.json.
func TrustedRootForLog(vkey string) (*prototrust.TrustedRoot, error) {
	v, pub, err := quirelog.ParseEd25519VerifierKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing log key: %w", err)
	}
	origin := v.Name()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding log key: %w", err)
	}
	id := quirelog.Ed25519KeyID(origin, pub)
	return &prototrust.TrustedRoot{
		MediaType: "application/vnd.dev.sigstore.trustedroot.v0.2+json",
		Tlogs: []*prototrust.TransparencyLogInstance{{
			BaseUrl:         "https://" + origin,
			HashAlgorithm:   protocommon.HashAlgorithm_SHA2_256,
			PublicKey:       &protocommon.PublicKey{RawBytes: der, KeyDetails: protocommon.PublicKeyDetails_PKIX_ED25519},
			LogId:           &protocommon.LogId{KeyId: id},
			CheckpointKeyId: &protocommon.LogId{KeyId: id},
		}},
	}, nil
}
