package rekor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// Entry kinds and the one version of each that Quire writes.
const (
	KindHashedRekord = "hashedrekord"
	KindDSSE         = "dsse"
	APIVersion       = "0.0.2"
)

// HashedRekordBody is the canonical body of a hashedrekord v0.0.2 entry for digest (hashed with
// alg) and sig: the RFC 8785 (JCS) canonical form of protojson(Entry{kind, apiVersion,
// spec.hashedRekordV002{data{algorithm, digest}, signature}}), as the Rekor v2 spec (rekor-tiles
// v2.3.0 internal/server/service.go CreateEntry) defines it. The log writes it as the leaf and
// verifiers rebuild it from a bundle to check inclusion (sigstore-go does too). Inputs the log
// accepts take a hand-written path; any other input (an empty field, an unnamed enum value) takes
// the general one, so the result is the canonical form either way.
func HashedRekordBody(digest []byte, alg commonv1.HashAlgorithm, sig *rekorpb.Signature) ([]byte, error) {
	if fastBodyFits(digest, alg, sig) {
		return hashedRekordBodyFast(digest, alg, sig), nil
	}
	return CanonicalEntry(&rekorpb.Entry{
		Kind:       KindHashedRekord,
		ApiVersion: APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
			Data:      &commonv1.HashOutput{Algorithm: alg, Digest: digest},
			Signature: sig,
		}}},
	})
}

// hashedRekordBodyFast writes HashedRekordBody by hand, because protojson and a canonicaliser cost
// more than the rest of a write together. The shape is fixed: JCS (RFC 8785 §3.2.3) sorts members
// by UTF-16 code units, which for these ASCII names is byte order; every value is either a base64
// string (protojson's encoding of bytes, RFC 4648 §4 with padding) or an enum name, and neither
// contains a character JCS escapes (§3.2.2.2). It holds only when fastBodyFits says so; the general
// path (CanonicalEntry) is the reference it is tested and fuzzed against.
func hashedRekordBodyFast(digest []byte, hashAlg commonv1.HashAlgorithm, sig *rekorpb.Signature) []byte {
	v := sig.GetVerifier()
	var raw []byte
	var keyField string
	if pk := v.GetPublicKey(); pk != nil {
		raw, keyField = pk.GetRawBytes(), `"publicKey"`
	} else {
		raw, keyField = v.GetX509Certificate().GetRawBytes(), `"x509Certificate"`
	}
	enc := base64.StdEncoding
	alg, details := hashAlg.String(), v.GetKeyDetails().String()
	// Sized exactly: the body is stored as the leaf, and a buffer one byte short is copied into
	// one twice its size, which the log then keeps.
	size := len(bodyParts[0]) + len(alg) + len(bodyParts[1]) + enc.EncodedLen(len(digest)) + len(bodyParts[2]) +
		enc.EncodedLen(len(sig.GetContent())) + len(bodyParts[3]) + len(details) + len(bodyParts[4]) + len(keyField) +
		len(bodyParts[5]) + enc.EncodedLen(len(raw)) + len(bodyParts[6])
	b := make([]byte, 0, size)
	b = append(b, bodyParts[0]...)
	b = append(b, alg...)
	b = append(b, bodyParts[1]...)
	b = enc.AppendEncode(b, digest)
	b = append(b, bodyParts[2]...)
	b = enc.AppendEncode(b, sig.GetContent())
	b = append(b, bodyParts[3]...)
	b = append(b, details...)
	b = append(b, bodyParts[4]...)
	b = append(b, keyField...)
	b = append(b, bodyParts[5]...)
	b = enc.AppendEncode(b, raw)
	b = append(b, bodyParts[6]...)
	return b
}

// bodyParts are the fixed text of hashedRekordBodyFast's body, around its values.
var bodyParts = [...]string{
	`{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"`,
	`","digest":"`,
	`"},"signature":{"content":"`,
	`","verifier":{"keyDetails":"`,
	`",`,
	`:{"rawBytes":"`,
	`"}}}}}}`,
}

// fastBodyFits reports whether hashedRekordBodyFast's fixed shape holds: every field protojson
// would write is present and non-empty, and both enums have names (protojson writes an unnamed
// value as a bare number).
func fastBodyFits(digest []byte, alg commonv1.HashAlgorithm, sig *rekorpb.Signature) bool {
	v := sig.GetVerifier()
	var raw []byte
	switch {
	case v.GetPublicKey() != nil:
		raw = v.GetPublicKey().GetRawBytes()
	case v.GetX509Certificate() != nil:
		raw = v.GetX509Certificate().GetRawBytes()
	}
	_, algNamed := commonv1.HashAlgorithm_name[int32(alg)]
	_, detailsNamed := commonv1.PublicKeyDetails_name[int32(v.GetKeyDetails())]
	return len(digest) > 0 && len(sig.GetContent()) > 0 && len(raw) > 0 &&
		alg != 0 && algNamed && v.GetKeyDetails() != 0 && detailsNamed
}

// CanonicalEntry is the canonical body of any entry: RFC 8785 JCS of its protojson encoding, as
// rekor-tiles computes it. DSSE entries are built with it; for hashedrekord it is the reference
// HashedRekordBody's hand-written path is checked against.
func CanonicalEntry(e *rekorpb.Entry) ([]byte, error) {
	j, err := protojson.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding entry as JSON: %w", err)
	}
	c, err := jsoncanonicalizer.Transform(j)
	if err != nil {
		return nil, fmt.Errorf("canonicalising entry JSON: %w", err)
	}
	return c, nil
}

// EntryInfo is what a canonical body says about itself: its kind and version, the artifact
// digest it records, and who signed it.
type EntryInfo struct {
	Kind       string
	APIVersion string
	// DigestAlgorithm and Digest are the artifact digest: a hashedrekord's data, a DSSE entry's
	// payload hash. The digest has the length of its algorithm.
	DigestAlgorithm commonv1.HashAlgorithm
	Digest          []byte
	// Verifiers are the signers' verification material as the entry records it, unparsed: one
	// for a hashedrekord, one per signature for DSSE.
	Verifiers []Verifier
}

// Verifier is one signer's verification material: exactly one of a PKIX public key (DER) and an
// X.509 certificate (DER) is set. The log checked the signature against it before writing the
// entry, but these are bytes the signer chose: parse them as untrusted.
type Verifier struct {
	PublicKey   []byte
	Certificate []byte
}

// KindVersion is the kindVersion of a TransparencyLogEntry for this body.
func (e *EntryInfo) KindVersion() *rekorv1.KindVersion {
	return &rekorv1.KindVersion{Kind: e.Kind, Version: e.APIVersion}
}

// entryJSON is the part of a canonical body that EntryInfo needs; encoding/json ignores the rest,
// which keeps the search follower cheap next to the writers.
type entryJSON struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Spec       struct {
		HashedRekordV002 *struct {
			Data      hashOutputJSON `json:"data"`
			Signature signatureJSON  `json:"signature"`
		} `json:"hashedRekordV002"`
		DSSEV002 *struct {
			PayloadHash hashOutputJSON  `json:"payloadHash"`
			Signatures  []signatureJSON `json:"signatures"`
		} `json:"dsseV002"`
	} `json:"spec"`
}

type signatureJSON struct {
	Verifier struct {
		PublicKey *struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"publicKey"`
		X509Certificate *struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"x509Certificate"`
	} `json:"verifier"`
}

func (s *signatureJSON) verifier() (Verifier, bool) {
	switch v := s.Verifier; {
	case v.PublicKey != nil && len(v.PublicKey.RawBytes) > 0:
		return Verifier{PublicKey: v.PublicKey.RawBytes}, true
	case v.X509Certificate != nil && len(v.X509Certificate.RawBytes) > 0:
		return Verifier{Certificate: v.X509Certificate.RawBytes}, true
	}
	return Verifier{}, false
}

type hashOutputJSON struct {
	Algorithm string `json:"algorithm"`
	Digest    []byte `json:"digest"` // base64, as protojson writes bytes
}

// ParseEntry reads the kind, version, artifact digest and verifiers of a canonical body of one of the kinds
// and the version Quire writes. Anything else (another personality's leaf in a shared tree, say)
// is an error.
func ParseEntry(body []byte) (*EntryInfo, error) {
	if info, ok := parseHashedRekordFast(body); ok {
		return info, nil
	}
	return parseEntryJSON(body)
}

// parseEntryJSON is ParseEntry for any body, with encoding/json.
func parseEntryJSON(body []byte) (*EntryInfo, error) {
	var e entryJSON
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("parsing entry JSON: %w", err)
	}
	if e.APIVersion != APIVersion {
		return nil, fmt.Errorf("unsupported entry apiVersion %q", e.APIVersion)
	}
	var h hashOutputJSON
	var sigs []signatureJSON
	switch {
	case e.Kind == KindHashedRekord && e.Spec.HashedRekordV002 != nil:
		h = e.Spec.HashedRekordV002.Data
		sigs = []signatureJSON{e.Spec.HashedRekordV002.Signature}
	case e.Kind == KindDSSE && e.Spec.DSSEV002 != nil:
		h = e.Spec.DSSEV002.PayloadHash
		sigs = e.Spec.DSSEV002.Signatures
	default:
		return nil, fmt.Errorf("unsupported entry kind %q or missing spec", e.Kind)
	}
	v, ok := commonv1.HashAlgorithm_value[h.Algorithm]
	if !ok {
		return nil, fmt.Errorf("unknown digest algorithm %q", h.Algorithm)
	}
	alg := commonv1.HashAlgorithm(v)
	if _, err := checkDigest(alg, h.Digest); err != nil {
		return nil, err
	}
	info := &EntryInfo{Kind: e.Kind, APIVersion: e.APIVersion, DigestAlgorithm: alg, Digest: h.Digest}
	for i := range sigs {
		if v, ok := sigs[i].verifier(); ok {
			info.Verifiers = append(info.Verifiers, v)
		}
	}
	return info, nil
}

// parseHashedRekordFast parses a body in exactly the form hashedRekordBodyFast writes (every
// hashedrekord body this log writes, with any key and signature), without encoding/json, which
// cost the search follower and entry reads more than the rest of their work on an entry. Such a
// body is valid JSON without repeated or unknown members, so encoding/json reads the same from
// it (FuzzParseEntry holds the two to the same answer). It reports false for any other body,
// which ParseEntry then reads with encoding/json.
func parseHashedRekordFast(body []byte) (*EntryInfo, bool) {
	rest, ok := bytes.CutPrefix(body, []byte(`{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"`))
	var alg, digest, field, raw []byte
	if ok {
		alg, rest, ok = cutToken(rest, isEnumChar, `","digest":"`)
	}
	if ok {
		digest, rest, ok = cutToken(rest, isBase64Char, `"},"signature":{"content":"`)
	}
	if ok {
		_, rest, ok = cutToken(rest, isBase64Char, `","verifier":{"keyDetails":"`)
	}
	if ok {
		_, rest, ok = cutToken(rest, isEnumChar, `",`)
	}
	if ok {
		field, rest, ok = bytes.Cut(rest, []byte(`:{"rawBytes":"`))
		ok = ok && (string(field) == `"publicKey"` || string(field) == `"x509Certificate"`)
	}
	if ok {
		raw, rest, ok = cutToken(rest, isBase64Char, `"}}}}}}`)
	}
	if !ok || len(rest) != 0 {
		return nil, false
	}
	v, known := commonv1.HashAlgorithm_value[string(alg)]
	d, err := base64.StdEncoding.DecodeString(string(digest))
	if !known || err != nil {
		return nil, false
	}
	material, err := base64.StdEncoding.DecodeString(string(raw))
	if err != nil {
		return nil, false
	}
	info := &EntryInfo{Kind: KindHashedRekord, APIVersion: APIVersion, DigestAlgorithm: commonv1.HashAlgorithm(v), Digest: d}
	if _, err := checkDigest(info.DigestAlgorithm, info.Digest); err != nil {
		return nil, false
	}
	switch {
	case len(material) == 0:
	case string(field) == `"publicKey"`:
		info.Verifiers = []Verifier{{PublicKey: material}}
	default:
		info.Verifiers = []Verifier{{Certificate: material}}
	}
	return info, true
}

// cutToken splits b at the first occurrence of sep, if every byte before it is of class ok.
func cutToken(b []byte, ok func(byte) bool, sep string) (token, rest []byte, found bool) {
	token, rest, found = bytes.Cut(b, []byte(sep))
	if !found {
		return nil, nil, false
	}
	for _, c := range token {
		if !ok(c) {
			return nil, nil, false
		}
	}
	return token, rest, true
}

func isEnumChar(c byte) bool { return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' }

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}
