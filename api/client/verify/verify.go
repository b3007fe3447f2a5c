// Package verify checks, fully offline, a Sigstore bundle (protobuf-specs bundle/v1, media type v0.3)
// whose transparency-log entry is a Rekor v2 hashedrekord v0.0.2 made by a Quire (or rekor-tiles) log.
//
// The checks run in a fixed order and the first one that fails is returned as an *Error naming it:
//
//  1. CheckBundle: the bundle parses and has a message signature and a hashedrekord v0.0.2 entry
//     with an inclusion proof and a checkpoint.
//  2. CheckArtifactDigest: the artifact's digest equals the bundle's messageDigest.
//  3. CheckSignature: the signature verifies over that digest with the signer's key (a certificate in
//     the bundle, or, for a public key hint, the key recorded in the log entry).
//  4. CheckSigner: the signer is the one expected, as cosign verify-blob requires one: the key
//     given (Options.PublicKey), or a certificate that chains to a certificate authority of the
//     trusted root, at a time a timestamp authority of the trusted root vouches for, and names the
//     identity and issuer given (Options.Identity).
//  5. CheckCanonicalBody: the Rekor v2 canonical body rebuilt from the bundle (RFC 8785 JCS of the
//     protojson form of rekor-tiles' Entry) is byte-identical to the entry's canonicalizedBody.
//  6. CheckInclusionProof: the RFC 6962 leaf hash of that body is proven into the tree by the
//     inclusion proof (RFC 9162 §2.1.3.2).
//  7. CheckCheckpoint: the checkpoint (C2SP tlog-checkpoint) is signed by a log key from the trusted
//     root and commits to the proof's tree size and root hash.
//  8. CheckWitnessPolicy: with a policy, the checkpoint's cosignatures (C2SP tlog-cosignature)
//     satisfy it.
package verify

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/rekor"
)

// Check names one of the verification steps, in the order they run.
type Check string

// The checks Bundle performs; an *Error carries the first one that failed.
const (
	CheckBundle         Check = "bundle"
	CheckArtifactDigest Check = "artifact digest"
	CheckSignature      Check = "signature"
	CheckSigner         Check = "signer"
	CheckCanonicalBody  Check = "canonical body"
	CheckInclusionProof Check = "inclusion proof"
	CheckCheckpoint     Check = "checkpoint signature"
	CheckWitnessPolicy  Check = "witness policy"
)

// Error is the failure of one check. Use errors.As to find which check failed.
type Error struct {
	Check Check
	Err   error
}

func (e *Error) Error() string { return string(e.Check) + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func fail(c Check, format string, args ...any) error {
	return &Error{Check: c, Err: fmt.Errorf(format, args...)}
}

// Bundle media types accepted; the first is what Quire writes.
var bundleMediaTypes = []string{
	"application/vnd.dev.sigstore.bundle.v0.3+json",
	"application/vnd.dev.sigstore.bundle+json;version=0.3",
}

// Options say what the caller trusts and whom it expects to have signed. One of PublicKey and
// Identity is required: a bundle proves that someone signed, and only the caller knows who should
// have.
type Options struct {
	// TrustedRoot holds the logs whose Ed25519 keys may sign checkpoints and, for Identity, the
	// certificate and timestamp authorities. Required.
	TrustedRoot *prototrust.TrustedRoot
	// WitnessPolicy, when set, must be satisfied by the checkpoint's cosignatures.
	WitnessPolicy *tessera.WitnessGroup
	// PublicKey, when set, is the only signer key accepted.
	PublicKey crypto.PublicKey
	// Identity, when set, is who the signing certificate must name (see CheckSigner).
	Identity *Identity
}

// Result describes a bundle that passed every check.
type Result struct {
	LogIndex uint64
	TreeSize uint64
	Origin   string
	// Digest is the artifact digest the signature covers.
	Digest []byte
	// SignerKey is the PKIX DER of the key that made the signature.
	SignerKey []byte
	// Signer says who signed: the key and, with a certificate, the identity it names.
	Signer Signer
}

// ParseBundle decodes bundle JSON, rejecting unknown fields.
func ParseBundle(data []byte) (*protobundle.Bundle, error) {
	b := &protobundle.Bundle{}
	if err := protojson.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("decoding bundle JSON: %w", err)
	}
	return b, nil
}

// ParseTrustedRoot decodes a protobuf-specs TrustedRoot JSON document.
func ParseTrustedRoot(data []byte) (*prototrust.TrustedRoot, error) {
	tr := &prototrust.TrustedRoot{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, tr); err != nil {
		return nil, fmt.Errorf("decoding trusted root JSON: %w", err)
	}
	return tr, nil
}

// ParseWitnessPolicy reads the policy text Tessera's NewWitnessGroupFromPolicy reads.
func ParseWitnessPolicy(data []byte) (*tessera.WitnessGroup, error) {
	wg, err := tessera.NewWitnessGroupFromPolicy(data)
	if err != nil {
		return nil, fmt.Errorf("parsing witness policy: %w", err)
	}
	return &wg, nil
}

// Bundle verifies bundleJSON for the artifact read from artifact. It returns an *Error for the first
// check that fails (see the package doc for the order).
func Bundle(bundleJSON []byte, artifact io.Reader, opts Options) (*Result, error) {
	b, err := ParseBundle(bundleJSON)
	if err != nil {
		return nil, &Error{Check: CheckBundle, Err: err}
	}
	return ParsedBundle(b, artifact, opts)
}

// ParsedBundle is Bundle for a bundle already decoded.
func ParsedBundle(b *protobundle.Bundle, artifact io.Reader, opts Options) (*Result, error) {
	if opts.TrustedRoot == nil {
		return nil, errors.New("verify: Options.TrustedRoot is required")
	}
	if opts.PublicKey == nil && opts.Identity == nil {
		return nil, errors.New("verify: say who must have signed: Options.PublicKey or Options.Identity")
	}
	parts, err := bundleParts(b)
	if err != nil {
		return nil, err
	}

	// Step 2: the artifact is what was signed.
	digestHash, err := rekor.HashFor(parts.msg.GetMessageDigest().GetAlgorithm())
	if err != nil {
		return nil, &Error{Check: CheckArtifactDigest, Err: err}
	}
	h := digestHash.New()
	if _, err := io.Copy(h, artifact); err != nil {
		return nil, fail(CheckArtifactDigest, "reading artifact: %w", err)
	}
	digest := parts.msg.GetMessageDigest().GetDigest()
	if got := h.Sum(nil); !bytes.Equal(got, digest) {
		return nil, fail(CheckArtifactDigest, "artifact %s is %x, bundle says %x", digestHash, got, digest)
	}

	// Step 3: the signature, with the key the log recorded or the bundle's certificate.
	sigVerifier, keyDER, cert, err := signerOf(b, parts.body)
	if err != nil {
		return nil, &Error{Check: CheckSignature, Err: err}
	}
	pub, err := x509.ParsePKIXPublicKey(keyDER)
	if err != nil {
		return nil, fail(CheckSignature, "parsing signer key: %w", err)
	}
	keyDetails := parts.body.GetSignature().GetVerifier().GetKeyDetails()
	want, err := rekor.HashForKeyDetails(keyDetails)
	if err != nil {
		return nil, &Error{Check: CheckSignature, Err: err}
	}
	if digestHash != want {
		return nil, fail(CheckSignature, "digest is %s but key details %s require %s", digestHash, keyDetails, want)
	}
	if err := rekor.VerifyDigest(pub, keyDetails, digest, parts.msg.GetSignature()); err != nil {
		return nil, &Error{Check: CheckSignature, Err: err}
	}

	// Step 4: the signer is the one the caller expects.
	signer, err := checkSigner(b, keyDER, cert, opts)
	if err != nil {
		return nil, &Error{Check: CheckSigner, Err: err}
	}

	// Step 5: rebuild the leaf from what the bundle says, never trusting the stored body.
	sigVerifier.KeyDetails = keyDetails
	rebuilt, err := rekor.HashedRekordBody(digest, parts.msg.GetMessageDigest().GetAlgorithm(), &rekorpb.Signature{
		Content:  parts.msg.GetSignature(),
		Verifier: sigVerifier,
	})
	if err != nil {
		return nil, &Error{Check: CheckCanonicalBody, Err: err}
	}
	if !bytes.Equal(rebuilt, parts.tle.GetCanonicalizedBody()) {
		return nil, fail(CheckCanonicalBody, "rebuilt body %q differs from the logged body %q", rebuilt, parts.tle.GetCanonicalizedBody())
	}

	// Steps 6 to 8: the leaf is in the tree a trusted, witnessed checkpoint names.
	res, err := included(parts.tle, rebuilt, opts)
	if err != nil {
		return nil, err
	}
	res.Digest, res.SignerKey, res.Signer = digest, keyDER, signer
	return res, nil
}

// Entry checks a log entry as a log serves it (Quire's GET /quire/v1/entries/{index}): that its
// canonicalized body is in the tree its inclusion proof ends at, and that a log key of
// opts.TrustedRoot signed the checkpoint of that tree (and opts.WitnessPolicy holds, if set), the
// checks CheckInclusionProof, CheckCheckpoint and CheckWitnessPolicy of Bundle. It does not check
// the entry's signature: with no artifact there is nothing to check it against. Result's Digest
// and SignerKey are left empty.
func Entry(tle *protorekor.TransparencyLogEntry, opts Options) (*Result, error) {
	if opts.TrustedRoot == nil {
		return nil, errors.New("verify: Options.TrustedRoot is required")
	}
	return included(tle, tle.GetCanonicalizedBody(), opts)
}

// included runs steps 6 to 8 for the entry whose canonical body is body.
func included(tle *protorekor.TransparencyLogEntry, body []byte, opts Options) (*Result, error) {
	// Step 6: RFC 9162 §2.1.3.2 inclusion of the leaf in the tree the proof names.
	ip := tle.GetInclusionProof()
	if ip.GetLogIndex() < 0 || ip.GetTreeSize() < 0 || ip.GetLogIndex() != tle.GetLogIndex() {
		return nil, fail(CheckInclusionProof, "proof index %d, entry index %d, tree size %d", ip.GetLogIndex(), tle.GetLogIndex(), ip.GetTreeSize())
	}
	index, size := uint64(ip.GetLogIndex()), uint64(ip.GetTreeSize())
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf, ip.GetHashes(), ip.GetRootHash()); err != nil {
		return nil, fail(CheckInclusionProof, "entry %d in tree of size %d: %w", index, size, err)
	}

	// Step 7: the checkpoint, signed by a trusted log key, names the same tree.
	envelope := []byte(ip.GetCheckpoint().GetEnvelope())
	cp, logKey, err := openCheckpoint(envelope, opts.TrustedRoot)
	if err != nil {
		return nil, &Error{Check: CheckCheckpoint, Err: err}
	}
	if id := tle.GetLogId().GetKeyId(); len(id) > 0 && !bytes.Equal(id, rekor.Ed25519KeyID(cp.Origin, logKey)) {
		return nil, fail(CheckCheckpoint, "entry's log ID %x is not the checkpoint key's %x", id, rekor.Ed25519KeyID(cp.Origin, logKey))
	}
	if cp.Size != size || !bytes.Equal(cp.Hash, ip.GetRootHash()) {
		return nil, fail(CheckCheckpoint, "checkpoint is for size %d root %x, proof for size %d root %x", cp.Size, cp.Hash, size, ip.GetRootHash())
	}

	// Step 8: cosignatures, per the policy's groups and thresholds.
	if opts.WitnessPolicy != nil && !opts.WitnessPolicy.Satisfied(envelope) {
		return nil, fail(CheckWitnessPolicy, "the checkpoint's cosignatures do not satisfy the witness policy")
	}
	return &Result{LogIndex: index, TreeSize: size, Origin: cp.Origin}, nil
}

type parts struct {
	msg  *protocommon.MessageSignature
	tle  *protorekor.TransparencyLogEntry
	body *rekorpb.HashedRekordLogEntryV002
}

// bundleParts finds the message signature and the hashedrekord v0.0.2 entry: step 1.
func bundleParts(b *protobundle.Bundle) (*parts, error) {
	mediaOK := false
	for _, mt := range bundleMediaTypes {
		mediaOK = mediaOK || b.GetMediaType() == mt
	}
	if !mediaOK {
		return nil, fail(CheckBundle, "media type %q is not a v0.3 bundle", b.GetMediaType())
	}
	msg := b.GetMessageSignature()
	if msg == nil || msg.GetMessageDigest() == nil || len(msg.GetSignature()) == 0 {
		return nil, fail(CheckBundle, "no message signature with a digest")
	}
	var tle *protorekor.TransparencyLogEntry
	for _, e := range b.GetVerificationMaterial().GetTlogEntries() {
		if kv := e.GetKindVersion(); kv.GetKind() == "hashedrekord" && kv.GetVersion() == "0.0.2" {
			tle = e
			break
		}
	}
	if tle == nil {
		return nil, fail(CheckBundle, "no hashedrekord 0.0.2 transparency log entry")
	}
	if tle.GetInclusionProof().GetCheckpoint().GetEnvelope() == "" {
		return nil, fail(CheckBundle, "log entry %d has no inclusion proof with a checkpoint", tle.GetLogIndex())
	}
	entry := &rekorpb.Entry{}
	if err := protojson.Unmarshal(tle.GetCanonicalizedBody(), entry); err != nil {
		return nil, fail(CheckBundle, "decoding the canonicalized body: %w", err)
	}
	body := entry.GetSpec().GetHashedRekordV002()
	if entry.GetKind() != "hashedrekord" || entry.GetApiVersion() != "0.0.2" || body == nil {
		return nil, fail(CheckBundle, "canonicalized body is %s %s, not hashedrekord 0.0.2", entry.GetKind(), entry.GetApiVersion())
	}
	return &parts{msg: msg, tle: tle, body: body}, nil
}

// signerOf returns the verifier to put in the rebuilt body, the signer's PKIX DER key and, when the
// bundle has one, its certificate. A certificate comes from the bundle; a public key hint names a
// key out of band, so the key is the one the log recorded, which the canonical body and inclusion
// checks then bind to this signature.
func signerOf(b *protobundle.Bundle, body *rekorpb.HashedRekordLogEntryV002) (*rekorpb.Verifier, []byte, *x509.Certificate, error) {
	vm := b.GetVerificationMaterial()
	var certDER []byte
	switch {
	case vm.GetCertificate() != nil:
		certDER = vm.GetCertificate().GetRawBytes()
	case len(vm.GetX509CertificateChain().GetCertificates()) > 0:
		certDER = vm.GetX509CertificateChain().GetCertificates()[0].GetRawBytes()
	case vm.GetPublicKey() != nil:
		raw := body.GetSignature().GetVerifier().GetPublicKey().GetRawBytes()
		if len(raw) == 0 {
			return nil, nil, nil, errors.New("the bundle has a public key hint but the log entry holds no public key")
		}
		if hint := vm.GetPublicKey().GetHint(); hint != "" && hint != KeyHint(raw) {
			return nil, nil, nil, fmt.Errorf("public key hint %q does not name the logged key (%q)", hint, KeyHint(raw))
		}
		return &rekorpb.Verifier{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: raw}}}, raw, nil, nil
	default:
		return nil, nil, nil, errors.New("the bundle has no certificate and no public key hint")
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parsing the signing certificate: %w", err)
	}
	return &rekorpb.Verifier{Verifier: &rekorpb.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: certDER}}},
		cert.RawSubjectPublicKeyInfo, cert, nil
}

// KeyHint is the public key hint sigstore-go writes into bundles: base64 of SHA-256 of the PKIX DER
// key. A non-empty hint must match the logged key, so that no byte of a bundle goes unchecked.
func KeyHint(pkixDER []byte) string {
	sum := sha256.Sum256(pkixDER)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// openCheckpoint verifies the checkpoint with each Ed25519 log key in the trusted root. Per C2SP
// signed-note the key name is the checkpoint origin, and the key ID is derived from that name, the
// Ed25519 signature type 0x01 and the public key (note.NewEd25519VerifierKey does exactly that).
// strictSignatureLines refuses signature lines whose base64 is not canonical. sumdb/note decodes
// leniently (nonzero padding bits pass), so without this a bundle could be altered in a signature
// line's last character and still verify, and a verified bundle would not pin its own bytes.
func strictSignatureLines(envelope []byte) error {
	_, sigs, ok := bytes.Cut(envelope, []byte("\n\n"))
	if !ok {
		return errors.New("checkpoint has no signature block")
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 3 || fields[0] != "—" {
			return fmt.Errorf("checkpoint signature line %q is malformed", line)
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(fields[2]); err != nil {
			return fmt.Errorf("checkpoint signature by %q is not canonical base64: %w", fields[1], err)
		}
	}
	return nil
}

func openCheckpoint(envelope []byte, tr *prototrust.TrustedRoot) (*flog.Checkpoint, ed25519.PublicKey, error) {
	origin, _, ok := strings.Cut(string(envelope), "\n")
	if !ok || origin == "" {
		return nil, nil, errors.New("checkpoint has no origin line")
	}
	if err := strictSignatureLines(envelope); err != nil {
		return nil, nil, err
	}
	var tried int
	var lastErr error
	for _, tl := range tr.GetTlogs() {
		v, err := LogVerifier(origin, tl.GetPublicKey().GetRawBytes())
		if err != nil {
			continue
		}
		tried++
		cp, _, _, err := flog.ParseCheckpoint(envelope, origin, v)
		if err == nil {
			pub, _ := x509.ParsePKIXPublicKey(tl.GetPublicKey().GetRawBytes())
			return cp, pub.(ed25519.PublicKey), nil
		}
		lastErr = err
	}
	if tried == 0 {
		return nil, nil, errors.New("the trusted root holds no Ed25519 log key")
	}
	return nil, nil, fmt.Errorf("no trusted log key (of %d) verifies the checkpoint for origin %q: %w", tried, origin, lastErr)
}

// LogVerifier builds the C2SP signed-note verifier for a log's Ed25519 key given in PKIX DER.
func LogVerifier(origin string, pkixDER []byte) (note.Verifier, error) {
	pub, err := x509.ParsePKIXPublicKey(pkixDER)
	if err != nil {
		return nil, fmt.Errorf("parsing log key: %w", err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("log key is %T, want Ed25519", pub)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, edPub)
	if err != nil {
		return nil, fmt.Errorf("building verifier key for %q: %w", origin, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("building verifier for %q: %w", origin, err)
	}
	return v, nil
}
