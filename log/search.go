package log

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/quirelog/quire/api/rekor"
)

// IndexFormat names the set of keys EntryKeys writes. An index recorded with an earlier format
// (1: leaf hash and digest only, recorded as 0) lacks keys that searches now ask for, so the
// follower restarts it from entry 0 (see follower.checkFormat).
const IndexFormat = 2

// maxSANsIndexed bounds the identity keys of one certificate: Fulcio writes one subject
// alternative name, and a certificate made to carry thousands would otherwise cost thousands of
// postings an entry. Names past the bound are shown on the entry's page but not searchable.
const maxSANsIndexed = 16

// Index key prefixes. Each kind has its own, so no key of one kind equals a key of another:
// digest keys are "sha256:…" (also sha384, sha512), leaf keys "leaf:" and 32 bytes.
const (
	keyPrefix            = "pkix-sha256:"
	identityPrefix       = "identity:"
	issuerPrefix         = "issuer:"
	identityIssuerPrefix = "identity+issuer:"
)

// leafKeyPrefix starts the index key of an RFC 6962 leaf hash.
const leafKeyPrefix = "leaf:"

// leafKey is the index key of an RFC 6962 leaf hash: "leaf:" and the 32 raw bytes.
func leafKey(h []byte) []byte {
	return append([]byte(leafKeyPrefix), h...)
}

func signerKey(fp []byte) []byte { return append([]byte(keyPrefix), fp...) }

func identityKey(id string) []byte { return []byte(identityPrefix + id) }

func issuerKey(iss string) []byte { return []byte(issuerPrefix + iss) }

// identityIssuerKey holds both strings, the first length-prefixed, so that no other pair of
// strings has the same key.
func identityIssuerKey(id, iss string) []byte {
	k := append([]byte(identityIssuerPrefix), binary.AppendUvarint(nil, uint64(len(id)))...)
	return append(append(k, id...), iss...)
}

// EntryKeys returns the search index keys of the entry whose canonical body is body, without
// repeats: its RFC 6962 leaf hash (leafHash, computed by the caller, who has it), and for the
// kinds Quire writes (hashedrekord and DSSE v0.0.2) its artifact digest, the SHA-256 of every
// signer's PKIX public key, and for every signing certificate each subject alternative name (the
// first maxSANsIndexed), its Fulcio OIDC issuer, and each name with the issuer. The keys depend on
// the body alone, so the index can be rebuilt from the tiles and an offline checker can recompute
// them. A non-nil error says why the entry has no keys but its leaf hash (a leaf another
// personality wrote); a certificate that does not parse only loses its identity keys.
func EntryKeys(body, leafHash []byte) ([][]byte, error) {
	keys := [][]byte{leafKey(leafHash)}
	info, err := rekor.ParseEntry(body)
	if err != nil {
		return keys, err
	}
	dk, err := rekor.AppendDigest(nil, info.DigestAlgorithm, info.Digest)
	if err != nil {
		return keys, err
	}
	keys = addKeys(keys, dk)
	for _, v := range info.Verifiers {
		if v.PublicKey != nil {
			keys = addKeys(keys, publicKeyIndexKeys(v.PublicKey)...)
			continue
		}
		id, err := rekor.ParseCertificateIdentity(v.Certificate)
		if err != nil {
			continue
		}
		keys = addKeys(keys, certificateIndexKeys(id)...)
	}
	return keys, nil
}

// addKeys appends to keys those of more it does not hold yet.
func addKeys(keys [][]byte, more ...[]byte) [][]byte {
next:
	for _, k := range more {
		for _, have := range keys {
			if bytes.Equal(have, k) {
				continue next
			}
		}
		keys = append(keys, k)
	}
	return keys
}

// publicKeyIndexKeys are the keys of a signer named by its PKIX public key (DER).
func publicKeyIndexKeys(der []byte) [][]byte {
	fp := rekor.KeyFingerprint(der)
	return [][]byte{signerKey(fp[:])}
}

// certificateIndexKeys are the keys of a signer named by its certificate, in EntryKeys' order.
func certificateIndexKeys(id *rekor.CertificateIdentity) [][]byte {
	fp := rekor.KeyFingerprint(id.KeyDER)
	keys := [][]byte{signerKey(fp[:])}
	sans := id.SANs()
	sans = sans[:min(len(sans), maxSANsIndexed)]
	for _, san := range sans {
		keys = append(keys, identityKey(san))
	}
	if id.Issuer != "" {
		keys = append(keys, issuerKey(id.Issuer))
		for _, san := range sans {
			keys = append(keys, identityIssuerKey(san, id.Issuer))
		}
	}
	return keys
}

// SearchQuery names what a Search looks for: exactly one of Digest, Key, and Identity or Issuer
// (both: entries whose certificate names that identity and was issued for that OIDC issuer).
type SearchQuery struct {
	// Digest is an artifact digest, "sha256:HEX" (also sha384, sha512).
	Digest string
	// Key is a signing key: the SHA-256 of its PKIX DER as 64 hex digits, or a PEM public key.
	Key string
	// Identity is a certificate's subject alternative name (email, URI or DNS name), matched
	// exactly; Issuer is the OIDC issuer of Fulcio's extension, matched exactly.
	Identity string
	Issuer   string
}

// maxQueryString bounds an identity or issuer: longer ones are no name a certificate carries
// searchably, and a bound keeps the lookup key small.
const maxQueryString = 4096

// indexKey checks q and returns the index key it names. A malformed query is an
// *InvalidRequestError naming the field.
func (q SearchQuery) indexKey() ([]byte, error) {
	given := 0
	for _, s := range []string{q.Digest, q.Key, q.Identity + q.Issuer} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return nil, invalid("digest", "give exactly one of digest, key, and identity and/or issuer")
	}
	switch {
	case q.Digest != "":
		return ParseDigest(q.Digest)
	case q.Key != "":
		fp, err := rekor.ParseKeyFingerprint(q.Key)
		if err != nil {
			return nil, invalid("key", "%w", err)
		}
		return signerKey(fp[:]), nil
	}
	if len(q.Identity) > maxQueryString {
		return nil, invalid("identity", "%d bytes, at most %d", len(q.Identity), maxQueryString)
	}
	if len(q.Issuer) > maxQueryString {
		return nil, invalid("issuer", "%d bytes, at most %d", len(q.Issuer), maxQueryString)
	}
	switch {
	case q.Issuer == "":
		return identityKey(q.Identity), nil
	case q.Identity == "":
		return issuerKey(q.Issuer), nil
	default:
		return identityIssuerKey(q.Identity, q.Issuer), nil
	}
}

// String is the query as a person would write it, for errors and logs.
func (q SearchQuery) String() string {
	switch {
	case q.Digest != "":
		return "digest " + q.Digest
	case q.Key != "":
		return "key " + q.Key
	case q.Issuer == "":
		return fmt.Sprintf("identity %q", q.Identity)
	case q.Identity == "":
		return fmt.Sprintf("issuer %q", q.Issuer)
	}
	return fmt.Sprintf("identity %q with issuer %q", q.Identity, q.Issuer)
}
