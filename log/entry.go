package log

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// Entry kinds and the one version of each that this log writes.
const (
	KindHashedRekord = "hashedrekord"
	KindDSSE         = "dsse"
	APIVersion       = "0.0.2"
)

// validated is a request that passed validation, with what the leaf needs.
type validated struct {
	kind string
	body []byte
}

// validateHashedRekord checks a HashedRekordRequestV002 the way rekor-tiles
// v2.3.0 pkg/types/hashedrekord.ToLogEntry does (required fields, supported
// key details, digest length, signature over the digest), but names the
// failing field and also demands that the key is the one keyDetails names.
// It returns the canonical leaf.
func (l *Log) validateHashedRekord(hr *rekorpb.HashedRekordRequestV002) (*validated, error) {
	const p = "hashedRekordRequestV002"
	if hr == nil {
		return nil, invalid(p, "missing")
	}
	sig := hr.GetSignature()
	switch {
	case sig == nil:
		return nil, invalid(p+".signature", "missing")
	case len(sig.GetContent()) == 0:
		return nil, invalid(p+".signature.content", "missing")
	case sig.GetVerifier() == nil:
		return nil, invalid(p+".signature.verifier", "missing")
	case len(hr.GetDigest()) == 0:
		return nil, invalid(p+".digest", "missing")
	}
	v := sig.GetVerifier()
	alg, err := lookupAlgorithm(p+".signature.verifier.keyDetails", v.GetKeyDetails(), false)
	if err != nil {
		return nil, err
	}
	pub, err := l.keys.publicKey(p+".signature.verifier", v)
	if err != nil {
		return nil, err
	}
	if err := alg.keyMatch(pub); err != nil {
		return nil, invalid(p+".signature.verifier.keyDetails", "%s does not match the key: %w", v.GetKeyDetails(), err)
	}
	if want := alg.hash.Size(); len(hr.GetDigest()) != want {
		return nil, invalid(p+".digest", "length %d does not match %s, which signs a %d-byte %s digest", len(hr.GetDigest()), v.GetKeyDetails(), want, alg.hash)
	}
	if err := alg.verifyDigest(pub, hr.GetDigest(), sig.GetContent()); err != nil {
		return nil, invalid(p+".signature.content", "signature does not verify over the digest with the given key: %w", err)
	}
	return &validated{kind: KindHashedRekord, body: hashedRekordLeaf(hr.GetDigest(), alg.hashAlg, sig)}, nil
}

// hashedRekordLeaf is the canonical leaf of a hashedrekord v0.0.2 entry:
// the RFC 8785 (JCS) canonical form of protojson(Entry{kind, apiVersion,
// spec.hashedRekordV002{data{algorithm, digest}, signature}}), as the Rekor v2
// spec (rekor-tiles v2.3.0 internal/server/service.go CreateEntry) defines it;
// sigstore-go rebuilds it from a bundle to check inclusion.
//
// It is written by hand rather than through protojson and a canonicaliser
// because those cost more than the rest of a write together. The shape is
// fixed: JCS (RFC 8785 §3.2.3) sorts members by UTF-16 code units, which for
// these ASCII names is byte order; every value is either a base64 string
// (protojson's encoding of bytes, RFC 4648 §4 with padding) or an enum name,
// and neither contains a character JCS escapes (§3.2.2.2). Empty fields, which
// protojson omits, cannot occur: validation rejects them. canonicalSlow is the
// reference this is tested and fuzzed against.
func hashedRekordLeaf(digest []byte, hashAlg commonv1.HashAlgorithm, sig *rekorpb.Signature) []byte {
	v := sig.GetVerifier()
	var raw []byte
	var keyField string
	if pk := v.GetPublicKey(); pk != nil {
		raw, keyField = pk.GetRawBytes(), `"publicKey"`
	} else {
		raw, keyField = v.GetX509Certificate().GetRawBytes(), `"x509Certificate"`
	}
	enc := base64.StdEncoding
	b := make([]byte, 0, 220+enc.EncodedLen(len(digest))+enc.EncodedLen(len(sig.GetContent()))+enc.EncodedLen(len(raw)))
	b = append(b, `{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"`...)
	b = append(b, hashAlg.String()...)
	b = append(b, `","digest":"`...)
	b = enc.AppendEncode(b, digest)
	b = append(b, `"},"signature":{"content":"`...)
	b = enc.AppendEncode(b, sig.GetContent())
	b = append(b, `","verifier":{"keyDetails":"`...)
	b = append(b, v.GetKeyDetails().String()...)
	b = append(b, `",`...)
	b = append(b, keyField...)
	b = append(b, `:{"rawBytes":"`...)
	b = enc.AppendEncode(b, raw)
	b = append(b, `"}}}}}}`...)
	return b
}

// HashedRekordBody is the canonical leaf of a hashedrekord v0.0.2 entry for
// digest (hashed with alg) and sig, byte-identical to the leaf the log writes
// and to rekor-tiles' (Rekor v2; RFC 8785 JCS of the protojson Entry).
// Verifiers rebuild it from a bundle. Inputs the log would accept take the
// hand-written path; any other input (an empty field, an unnamed enum value)
// takes the general one, so the result is the canonical form either way.
func HashedRekordBody(digest []byte, alg commonv1.HashAlgorithm, sig *rekorpb.Signature) ([]byte, error) {
	if fastLeafFits(digest, alg, sig) {
		return hashedRekordLeaf(digest, alg, sig), nil
	}
	return canonicalSlow(&rekorpb.Entry{
		Kind:       KindHashedRekord,
		ApiVersion: APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
			Data:      &commonv1.HashOutput{Algorithm: alg, Digest: digest},
			Signature: sig,
		}}},
	})
}

// fastLeafFits reports whether hashedRekordLeaf's fixed shape holds: every
// field protojson would write is present and non-empty, and both enums have
// names (protojson writes an unnamed value as a bare number).
func fastLeafFits(digest []byte, alg commonv1.HashAlgorithm, sig *rekorpb.Signature) bool {
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

// canonicalSlow is the general canonical form of an entry: RFC 8785 JCS of
// its protojson encoding, as rekor-tiles computes it. DSSE entries use it;
// for hashedrekord it is the reference the fast path is checked against.
func canonicalSlow(e *rekorpb.Entry) ([]byte, error) {
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

// digestKey is the search key of an artifact digest: "sha256:HEX" (or sha384,
// sha512), lowercase hex.
func digestKey(alg commonv1.HashAlgorithm, digest []byte) ([]byte, error) {
	var name string
	switch alg {
	case commonv1.HashAlgorithm_SHA2_256:
		name = "sha256"
	case commonv1.HashAlgorithm_SHA2_384:
		name = "sha384"
	case commonv1.HashAlgorithm_SHA2_512:
		name = "sha512"
	default:
		return nil, fmt.Errorf("unsupported digest algorithm %s", alg)
	}
	const hexdigits = "0123456789abcdef"
	k := make([]byte, 0, len(name)+1+2*len(digest))
	k = append(k, name...)
	k = append(k, ':')
	for _, c := range digest {
		k = append(k, hexdigits[c>>4], hexdigits[c&0xf])
	}
	return k, nil
}

// pae is the DSSE v1 pre-authentication encoding of an envelope's payload
// (DSSE protocol, "Signature definition").
func pae(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(payloadType)+len(payload))
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	b = append(b, payload...)
	return b
}

// DSSE request limits, as rekor-tiles v2 enforced them (pkg/types/dsse).
const (
	maxDSSEVerifiers  = 10
	maxDSSESignatures = 10
)

// validateDSSE checks a DSSERequestV002 and returns the v0.0.2 DSSE leaf as
// rekor-tiles v2 built it before v2.3.0 dropped the type (pkg/types/dsse
// ToLogEntry): every envelope signature must verify over the DSSE PAE with
// one of the given verifiers; the entry records the SHA-256 of the payload
// and each distinct signature with the verifier that checked it, sorted by
// the raw signature bytes. Where rekor-tiles tried verifiers in map order
// and ignored the ones left over once every signature had verified, here a
// signature goes to the first verifier in request order that checks it, and
// a verifier that checks none is refused, so the result never depends on
// iteration order.
func (l *Log) validateDSSE(d *rekorpb.DSSERequestV002) (*validated, error) {
	const p = "dsseRequestV002"
	if d == nil {
		return nil, invalid(p, "missing")
	}
	env := d.GetEnvelope()
	switch {
	case env == nil:
		return nil, invalid(p+".envelope", "missing")
	case len(env.GetPayload()) == 0:
		return nil, invalid(p+".envelope.payload", "missing")
	case env.GetPayloadType() == "":
		return nil, invalid(p+".envelope.payloadType", "missing")
	case len(env.GetSignatures()) == 0:
		return nil, invalid(p+".envelope.signatures", "missing")
	case len(env.GetSignatures()) > maxDSSESignatures:
		return nil, invalid(p+".envelope.signatures", "%d signatures, at most %d allowed", len(env.GetSignatures()), maxDSSESignatures)
	case len(d.GetVerifiers()) == 0:
		return nil, invalid(p+".verifiers", "missing")
	case len(d.GetVerifiers()) > maxDSSEVerifiers:
		return nil, invalid(p+".verifiers", "%d verifiers, at most %d allowed", len(d.GetVerifiers()), maxDSSEVerifiers)
	}
	for i, s := range env.GetSignatures() {
		if len(s.GetSig()) == 0 {
			return nil, invalid(fmt.Sprintf("%s.envelope.signatures[%d].sig", p, i), "missing")
		}
	}
	msg := pae(env.GetPayloadType(), env.GetPayload())
	signedBy := make([]*rekorpb.Verifier, len(env.GetSignatures()))
	for i, v := range d.GetVerifiers() {
		vp := fmt.Sprintf("%s.verifiers[%d]", p, i)
		if v == nil {
			return nil, invalid(vp, "missing")
		}
		alg, err := lookupAlgorithm(vp+".keyDetails", v.GetKeyDetails(), true)
		if err != nil {
			return nil, err
		}
		pub, err := l.keys.publicKey(vp, v)
		if err != nil {
			return nil, err
		}
		if err := alg.keyMatch(pub); err != nil {
			return nil, invalid(vp+".keyDetails", "%s does not match the key: %w", v.GetKeyDetails(), err)
		}
		used := false
		for j, s := range env.GetSignatures() {
			if signedBy[j] == nil && alg.verifyMessage(pub, msg, s.GetSig()) == nil {
				signedBy[j], used = v, true
			}
		}
		if !used {
			return nil, invalid(vp, "verifies none of the envelope's signatures over the DSSE PAE")
		}
	}
	sigs := make([]*rekorpb.Signature, 0, len(signedBy))
	for j, v := range signedBy {
		if v == nil {
			return nil, invalid(fmt.Sprintf("%s.envelope.signatures[%d]", p, j), "no verifier in the request verifies this signature over the DSSE PAE")
		}
		sigs = append(sigs, &rekorpb.Signature{Content: env.GetSignatures()[j].GetSig(), Verifier: v})
	}
	slices.SortStableFunc(sigs, func(a, b *rekorpb.Signature) int { return bytes.Compare(a.Content, b.Content) })
	sigs = slices.CompactFunc(sigs, func(a, b *rekorpb.Signature) bool { return bytes.Equal(a.Content, b.Content) })
	h := sha256.Sum256(env.GetPayload())
	e := &rekorpb.Entry{
		Kind:       KindDSSE,
		ApiVersion: APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_DsseV002{DsseV002: &rekorpb.DSSELogEntryV002{
			PayloadHash: &commonv1.HashOutput{Algorithm: commonv1.HashAlgorithm_SHA2_256, Digest: h[:]},
			Signatures:  sigs,
		}}},
	}
	body, err := canonicalSlow(e)
	if err != nil {
		return nil, fmt.Errorf("building DSSE leaf: %w", err)
	}
	return &validated{kind: KindDSSE, body: body}, nil
}

// Validate checks a CreateEntryRequest and returns its entry kind and
// canonical leaf, without touching the log. It returns *InvalidRequestError
// for any bad request.
func (l *Log) Validate(req *rekorpb.CreateEntryRequest) (kind string, body []byte, err error) {
	var v *validated
	switch s := req.GetSpec().(type) {
	case *rekorpb.CreateEntryRequest_HashedRekordRequestV002:
		v, err = l.validateHashedRekord(s.HashedRekordRequestV002)
	case *rekorpb.CreateEntryRequest_DsseRequestV002:
		v, err = l.validateDSSE(s.DsseRequestV002)
	default:
		return "", nil, invalid("spec", "missing: want hashedRekordRequestV002 or dsseRequestV002")
	}
	if err != nil {
		return "", nil, err
	}
	return v.kind, v.body, nil
}
