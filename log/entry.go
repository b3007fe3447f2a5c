package log

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/proto"

	"github.com/quirelog/quire/api/rekor"
)

// Size limits of entries. A DSSE request is bounded only by the server's request body limit, as
// its payload (which the leaf records by hash) can be a large attestation.
const (
	// MaxLeafBytes is the largest canonical leaf: C2SP tlog-tiles entry bundles prefix each entry
	// with a 16-bit length, so Tessera stores nothing larger.
	MaxLeafBytes = 1<<16 - 1
	// MaxHashedRekordRequestBytes bounds a hashedrekord request (its protobuf encoding). Its parts
	// are a digest, a signature and a key or certificate, each bounded far below it
	// (MaxSignatureBytes, MaxPublicKeyBytes, MaxCertificateBytes), and its leaf must fit
	// MaxLeafBytes anyway.
	MaxHashedRekordRequestBytes = 64 << 10
)

// validated is a request that passed validation, with what the leaf needs.
type validated struct {
	kind string
	body []byte
	// signers name the keys or identities whose signatures verified, for rate limits.
	signers []string
	// searchKeys are the entry's search keys in EntryKeys' order (its leaf key, the digest, then
	// the signer's), for the follower (see keyHandoff), but for the leaf key, nil until
	// handedKeys fills it in once the leaf is hashed; nil when not worked out (no follower, DSSE).
	searchKeys [][]byte
	// signer is the backing array of signers for the usual single signer.
	signer [1]string
}

// handedKeys are v's search keys, its leaf key, whose leaf hash is leafHash, included.
func (v *validated) handedKeys(leafHash []byte) [][]byte {
	v.searchKeys[0] = leafKey(leafHash)
	return v.searchKeys
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
	if err := checkSignatureSize(p+".signature.content", sig.GetContent()); err != nil {
		return nil, err
	}
	v := sig.GetVerifier()
	alg, err := lookupAlgorithm(p+".signature.verifier.keyDetails", v.GetKeyDetails(), false)
	if err != nil {
		return nil, err
	}
	if err := l.admission.checkAlgorithm(p+".signature.verifier.keyDetails", alg); err != nil {
		return nil, err
	}
	key, err := l.keys.publicKey(p+".signature.verifier", v)
	if err != nil {
		return nil, err
	}
	if err := l.admission.admit(p+".signature.verifier", key); err != nil {
		return nil, err
	}
	if err := alg.CheckKey(key.pub); err != nil {
		return nil, invalid(p+".signature.verifier.keyDetails", "%s does not match the key: %w", v.GetKeyDetails(), err)
	}
	if want := alg.Hash.Size(); len(hr.GetDigest()) != want {
		return nil, invalid(p+".digest", "length %d does not match %s, which signs a %d-byte %s digest", len(hr.GetDigest()), v.GetKeyDetails(), want, alg.Hash)
	}
	if err := alg.VerifyDigest(key.pub, hr.GetDigest(), sig.GetContent()); err != nil {
		return nil, invalid(p+".signature.content", "signature does not verify over the digest with the given key: %w", err)
	}
	l.keys.remember(key)
	// The leaf is the Rekor v2 canonical body (RFC 8785 JCS), byte-identical to rekor-tiles'.
	body, err := rekor.HashedRekordBody(hr.GetDigest(), alg.HashAlgorithm(), sig)
	if err != nil {
		return nil, fmt.Errorf("building hashedrekord leaf: %w", err)
	}
	out := &validated{kind: rekor.KindHashedRekord, body: body, signer: [1]string{key.signer}}
	out.signers = out.signer[:]
	if l.handoff != nil {
		if dk, err := rekor.AppendDigest(nil, alg.HashAlgorithm(), hr.GetDigest()); err == nil {
			// Room for every key at once, the leaf key first.
			keys := append(make([][]byte, 1, 2+len(key.indexKeys)), dk)
			out.searchKeys = addKeys(keys, key.indexKeys...)
		}
	}
	return out, nil
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
		field := fmt.Sprintf("%s.envelope.signatures[%d].sig", p, i)
		if len(s.GetSig()) == 0 {
			return nil, invalid(field, "missing")
		}
		if err := checkSignatureSize(field, s.GetSig()); err != nil {
			return nil, err
		}
	}
	msg := newMessageDigests(pae(env.GetPayloadType(), env.GetPayload()))
	signedBy := make([]*rekorpb.Verifier, len(env.GetSignatures()))
	var signers []string
	for i, v := range d.GetVerifiers() {
		vp := fmt.Sprintf("%s.verifiers[%d]", p, i)
		if v == nil {
			return nil, invalid(vp, "missing")
		}
		alg, err := lookupAlgorithm(vp+".keyDetails", v.GetKeyDetails(), true)
		if err != nil {
			return nil, err
		}
		if err := l.admission.checkAlgorithm(vp+".keyDetails", alg); err != nil {
			return nil, err
		}
		key, err := l.keys.publicKey(vp, v)
		if err != nil {
			return nil, err
		}
		if err := l.admission.admit(vp, key); err != nil {
			return nil, err
		}
		if err := alg.CheckKey(key.pub); err != nil {
			return nil, invalid(vp+".keyDetails", "%s does not match the key: %w", v.GetKeyDetails(), err)
		}
		used := false
		for j, s := range env.GetSignatures() {
			if signedBy[j] == nil && verifyMessage(alg, key.pub, msg, s.GetSig()) == nil {
				signedBy[j], used = v, true
			}
		}
		if !used {
			return nil, invalid(vp, "verifies none of the envelope's signatures over the DSSE PAE")
		}
		l.keys.remember(key)
		signers = append(signers, key.signer)
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
		Kind:       rekor.KindDSSE,
		ApiVersion: rekor.APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_DsseV002{DsseV002: &rekorpb.DSSELogEntryV002{
			PayloadHash: &commonv1.HashOutput{Algorithm: commonv1.HashAlgorithm_SHA2_256, Digest: h[:]},
			Signatures:  sigs,
		}}},
	}
	body, err := rekor.CanonicalEntry(e)
	if err != nil {
		return nil, fmt.Errorf("building DSSE leaf: %w", err)
	}
	return &validated{kind: rekor.KindDSSE, body: body, signers: signers}, nil
}

// Validate checks a CreateEntryRequest and returns its entry kind and
// canonical leaf, without touching the log or its rate limits. It returns
// *InvalidRequestError for any bad request or one the log's Admission refuses,
// and *TooLargeError for a hashedrekord request over
// MaxHashedRekordRequestBytes or a leaf over MaxLeafBytes.
func (l *Log) Validate(req *rekorpb.CreateEntryRequest) (kind string, body []byte, err error) {
	v, err := l.validate(req)
	if err != nil {
		return "", nil, err
	}
	return v.kind, v.body, nil
}

func (l *Log) validate(req *rekorpb.CreateEntryRequest) (v *validated, err error) {
	switch s := req.GetSpec().(type) {
	case *rekorpb.CreateEntryRequest_HashedRekordRequestV002:
		if n := proto.Size(s.HashedRekordRequestV002); n > MaxHashedRekordRequestBytes {
			return nil, &TooLargeError{What: "a hashedrekord request", Size: n, Limit: MaxHashedRekordRequestBytes}
		}
		v, err = l.validateHashedRekord(s.HashedRekordRequestV002)
	case *rekorpb.CreateEntryRequest_DsseRequestV002:
		v, err = l.validateDSSE(s.DsseRequestV002)
	default:
		return nil, invalid("spec", "missing: want hashedRekordRequestV002 or dsseRequestV002")
	}
	if err != nil {
		return nil, err
	}
	if len(v.body) > MaxLeafBytes {
		return nil, &TooLargeError{What: "the entry's canonical leaf", Size: len(v.body), Limit: MaxLeafBytes}
	}
	return v, nil
}
