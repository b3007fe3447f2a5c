package verify

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
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

// ParseLogVKey reads a log's C2SP signed-note Ed25519 verifier key (name+hash+base64(0x01||key)),
// returning the key name (the log origin) and the public key.
func ParseLogVKey(vkey string) (string, ed25519.PublicKey, error) {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	if len(parts) != 3 {
		return "", nil, errors.New("log key is not a name+hash+key verifier key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return "", nil, fmt.Errorf("decoding log key: %w", err)
	}
	if len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x01 {
		return "", nil, errors.New("log key is not an Ed25519 (type 0x01) key")
	}
	return parts[0], ed25519.PublicKey(raw[1:]), nil
}

// TrustedRootForLog is a TrustedRoot naming one log by its verifier key, for callers that trust a
// log key directly rather than a distributed trusted_root.json.
func TrustedRootForLog(vkey string) (*prototrust.TrustedRoot, error) {
	origin, pub, err := ParseLogVKey(vkey)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding log key: %w", err)
	}
	id := LogID(origin, pub)
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
