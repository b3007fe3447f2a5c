package verify

import (
	"fmt"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/rekor"
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
// log key directly rather than a distributed trusted_root.json. The log's URL is taken to be
// https://ORIGIN and, with no record of when the key began signing, its validity to start at the
// Unix epoch; neither matters to Bundle, which finds the log by its key.
func TrustedRootForLog(vkey string) (*prototrust.TrustedRoot, error) {
	v, _, err := rekor.ParseEd25519VerifierKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing log key: %w", err)
	}
	return rekor.TrustedRoot(rekor.Log{URL: "https://" + v.Name(), VerifierKey: vkey, Start: time.Unix(0, 0)})
}
