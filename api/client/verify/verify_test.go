package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/rekor-tiles/v2/pkg/types/hashedrekord"
	"github.com/sigstore/sigstore/pkg/signature"
	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/quirelog/quire/api/rekor"
)

var update = flag.Bool("update", false, "rewrite the fixtures in testdata/")

const testOrigin = "log.quire.test"

// signedLog is a small log with one hashedrekord entry among filler leaves, its checkpoint signed by
// an Ed25519 note key and cosigned by some witnesses.
type signedLog struct {
	bundle      *protobundle.Bundle
	artifact    []byte
	trustedRoot *prototrust.TrustedRoot
	// witnessVKeys are the cosignature/v1 (0x04) verifier keys of every witness; only the first
	// cosigned witnesses signed the checkpoint.
	witnessVKeys []string
	signerPub    crypto.PublicKey
}

// artifactSigner signs digests the way a hashedrekord client does.
type artifactSigner struct {
	name    string
	details protocommon.PublicKeyDetails
	hash    crypto.Hash
	key     crypto.Signer
	// cert, if set, is a DER certificate for key that names the signer instead of the key.
	cert []byte
}

// withCert names the signer by a self-signed certificate, as a Fulcio-issued one would.
func withCert(t testing.TB, s artifactSigner) artifactSigner {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "signer@quire.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.key.Public(), s.key)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	s.cert = der
	s.name += " certificate"
	return s
}

func newArtifactSigner(t testing.TB, name string) artifactSigner {
	t.Helper()
	var (
		k   crypto.Signer
		err error
		d   protocommon.PublicKeyDetails
		h   crypto.Hash
	)
	switch name {
	case "ecdsa-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		d, h = protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, crypto.SHA256
	case "ecdsa-p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		d, h = protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, crypto.SHA384
	case "ecdsa-p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		d, h = protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512, crypto.SHA512
	case "rsa-2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
		d, h = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, crypto.SHA256
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
		d, h = protocommon.PublicKeyDetails_PKIX_ED25519_PH, crypto.SHA512
	default:
		t.Fatalf("unknown key type %q", name)
	}
	if err != nil {
		t.Fatalf("generating %s key: %v", name, err)
	}
	return artifactSigner{name: name, details: d, hash: h, key: k}
}

func (s artifactSigner) signDigest(t testing.TB, digest []byte) []byte {
	t.Helper()
	var opts crypto.SignerOpts = s.hash
	if _, ok := s.key.(ed25519.PrivateKey); ok {
		opts = &ed25519.Options{Hash: crypto.SHA512}
	}
	sig, err := s.key.Sign(rand.Reader, digest, opts)
	if err != nil {
		t.Fatalf("signing digest: %v", err)
	}
	return sig
}

// buildSignedLog makes the entry with rekor-tiles' own hashedrekord code (an independent
// implementation of the canonical leaf), so a disagreement with CanonicalBody shows up as a failure.
func buildSignedLog(t testing.TB, s artifactSigner, witnesses, cosigned int) *signedLog {
	t.Helper()
	artifact := []byte(fmt.Sprintf("artifact signed with %s\n", s.name))
	h := s.hash.New()
	h.Write(artifact)
	digest := h.Sum(nil)
	sig := s.signDigest(t, digest)
	pubDER, err := x509.MarshalPKIXPublicKey(s.key.Public())
	if err != nil {
		t.Fatalf("encoding signer key: %v", err)
	}
	verifier := &rekorpb.Verifier{
		Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: pubDER}},
		KeyDetails: s.details,
	}
	if s.cert != nil {
		verifier.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: s.cert}}
	}
	req := &rekorpb.HashedRekordRequestV002{
		Digest:    digest,
		Signature: &rekorpb.Signature{Content: sig, Verifier: verifier},
	}
	registry, err := signature.NewAlgorithmRegistryConfig([]protocommon.PublicKeyDetails{s.details})
	if err != nil {
		t.Fatalf("algorithm registry: %v", err)
	}
	entry, err := hashedrekord.ToLogEntry(req, registry)
	if err != nil {
		t.Fatalf("rekor-tiles rejected the entry: %v", err)
	}
	j, err := protojson.Marshal(entry)
	if err != nil {
		t.Fatalf("encoding entry: %v", err)
	}
	body, err := jsoncanonicalizer.Transform(j)
	if err != nil {
		t.Fatalf("canonicalising entry: %v", err)
	}
	wantLeaf, err := hashedrekord.ToEntryHash(digest, req.Signature)
	if err != nil {
		t.Fatalf("rekor-tiles entry hash: %v", err)
	}
	if got := rfc6962.DefaultHasher.HashLeaf(body); !bytes.Equal(got, wantLeaf) {
		t.Fatalf("leaf hash %x, rekor-tiles says %x", got, wantLeaf)
	}

	tree := testonly.New(rfc6962.DefaultHasher)
	const index, size = 5, 19
	for i := range uint64(size) {
		if i == index {
			tree.AppendData(body)
			continue
		}
		tree.AppendData([]byte(fmt.Sprintf("filler leaf %d", i)))
	}
	hashes, err := tree.InclusionProof(index, size)
	if err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}

	logSkey, logVkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatalf("generating log key: %v", err)
	}
	logSigner, err := note.NewSigner(logSkey)
	if err != nil {
		t.Fatalf("log signer: %v", err)
	}
	signers := []note.Signer{logSigner}
	var witnessVKeys []string
	for i := range witnesses {
		skey, vkey, err := note.GenerateKey(rand.Reader, fmt.Sprintf("witness%d.test", i))
		if err != nil {
			t.Fatalf("generating witness key: %v", err)
		}
		cs, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatalf("cosignature signer: %v", err)
		}
		cvkey, err := fnote.VKeyToCosignatureV1(vkey)
		if err != nil {
			t.Fatalf("cosignature vkey: %v", err)
		}
		witnessVKeys = append(witnessVKeys, cvkey)
		if i < cosigned {
			signers = append(signers, cs)
		}
	}
	cpText := flog.Checkpoint{Origin: testOrigin, Size: size, Hash: tree.Hash()}.Marshal()
	envelope, err := note.Sign(&note.Note{Text: string(cpText)}, signers...)
	if err != nil {
		t.Fatalf("signing checkpoint: %v", err)
	}

	logPub := ed25519PubFromVkey(t, logVkey)
	hashAlg, err := rekor.HashAlgorithmFor(s.hash)
	if err != nil {
		t.Fatal(err)
	}
	b := &protobundle.Bundle{
		MediaType: bundleMediaTypes[0],
		VerificationMaterial: &protobundle.VerificationMaterial{
			TlogEntries: []*protorekor.TransparencyLogEntry{{
				LogIndex:    index,
				LogId:       &protocommon.LogId{KeyId: rekor.Ed25519KeyID(testOrigin, logPub)},
				KindVersion: &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
				InclusionProof: &protorekor.InclusionProof{
					LogIndex: index, RootHash: tree.Hash(), TreeSize: size, Hashes: hashes,
					Checkpoint: &protorekor.Checkpoint{Envelope: string(envelope)},
				},
				CanonicalizedBody: body,
			}},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: hashAlg, Digest: digest},
			Signature:     sig,
		}},
	}
	b.VerificationMaterial.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: KeyHint(pubDER)}}
	if s.cert != nil {
		b.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: s.cert}}
	}
	return &signedLog{
		bundle:       b,
		artifact:     artifact,
		trustedRoot:  trustedRootFor(logPub),
		witnessVKeys: witnessVKeys,
		signerPub:    s.key.Public(),
	}
}

// trustedRootFor is the trusted root `quire trust-root` would write for the test log with key pub.
func trustedRootFor(pub ed25519.PublicKey) *prototrust.TrustedRoot {
	vkey, err := note.NewEd25519VerifierKey(testOrigin, pub)
	if err != nil {
		panic(err)
	}
	tr, err := rekor.TrustedRoot(rekor.Log{URL: "https://" + testOrigin, VerifierKey: vkey, Start: time.Unix(0, 0)})
	if err != nil {
		panic(err)
	}
	return tr
}

func mustEd25519(der []byte) ed25519.PublicKey {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		panic(err)
	}
	return k.(ed25519.PublicKey)
}

func ed25519PubFromVkey(t testing.TB, vkey string) ed25519.PublicKey {
	t.Helper()
	_, pub, err := rekor.ParseEd25519VerifierKey(vkey)
	if err != nil {
		t.Fatalf("decoding vkey %q: %v", vkey, err)
	}
	return pub
}

func policyText(vkeys []string, threshold string) []byte {
	var b bytes.Buffer
	var names string
	for i, k := range vkeys {
		fmt.Fprintf(&b, "witness w%d %s https://w%d.example\n", i, k, i)
		names += fmt.Sprintf(" w%d", i)
	}
	fmt.Fprintf(&b, "group g %s%s\nquorum g\n", threshold, names)
	return b.Bytes()
}

func marshalBundle(t testing.TB, b *protobundle.Bundle) []byte {
	t.Helper()
	j, err := protojson.Marshal(b)
	if err != nil {
		t.Fatalf("encoding bundle: %v", err)
	}
	return j
}

func checkOf(err error) Check {
	var ve *Error
	if errors.As(err, &ve) {
		return ve.Check
	}
	return ""
}

func TestBundleVerifiesForEveryAcceptedKeyType(t *testing.T) {
	var signers []artifactSigner
	for _, keyType := range []string{"ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "ed25519"} {
		signers = append(signers, newArtifactSigner(t, keyType))
	}
	signers = append(signers, withCert(t, newArtifactSigner(t, "ecdsa-p256")))
	for _, s := range signers {
		t.Run("a bundle signed with "+s.name+" verifies", func(t *testing.T) {
			l := buildSignedLog(t, s, 1, 1)
			policy, err := ParseWitnessPolicy(policyText(l.witnessVKeys, "all"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Bundle(marshalBundle(t, l.bundle), bytes.NewReader(l.artifact), Options{
				TrustedRoot: l.trustedRoot, WitnessPolicy: policy, PublicKey: l.signerPub,
			})
			if err != nil {
				t.Fatalf("verification failed: %v", err)
			}
			if res.LogIndex != 5 || res.TreeSize != 19 || res.Origin != testOrigin {
				t.Errorf("result %+v, want index 5 of 19 in %s", res, testOrigin)
			}
		})
	}
}

func TestBundleNamesTheFirstFailedCheck(t *testing.T) {
	signer := newArtifactSigner(t, "ecdsa-p256")
	other := newArtifactSigner(t, "ecdsa-p256")
	for _, tc := range []struct {
		name   string
		mutate func(l *signedLog, opts *Options)
		want   Check
	}{
		{
			name:   "a changed artifact fails the artifact digest check",
			mutate: func(l *signedLog, _ *Options) { l.artifact = append(l.artifact, '!') },
			want:   CheckArtifactDigest,
		},
		{
			name: "a signature by another key fails the signature check",
			mutate: func(l *signedLog, _ *Options) {
				l.bundle.GetMessageSignature().Signature = other.signDigest(t, l.bundle.GetMessageSignature().GetMessageDigest().GetDigest())
			},
			want: CheckSignature,
		},
		{
			name:   "an unexpected signer key fails the signer check",
			mutate: func(_ *signedLog, o *Options) { o.PublicKey = other.key.Public() },
			want:   CheckSigner,
		},
		{
			name: "a wrong key hint fails the signature check",
			mutate: func(l *signedLog, _ *Options) {
				l.bundle.GetVerificationMaterial().GetPublicKey().Hint = KeyHint([]byte("another key"))
			},
			want: CheckSignature,
		},
		{
			name: "a logged body that is not canonical fails the canonical body check",
			mutate: func(l *signedLog, _ *Options) {
				tle := l.bundle.GetVerificationMaterial().GetTlogEntries()[0]
				tle.CanonicalizedBody = append([]byte(" "), tle.CanonicalizedBody...)
			},
			want: CheckCanonicalBody,
		},
		{
			name: "a changed proof hash fails the inclusion proof check",
			mutate: func(l *signedLog, _ *Options) {
				l.bundle.GetVerificationMaterial().GetTlogEntries()[0].GetInclusionProof().Hashes[0][0] ^= 1
			},
			want: CheckInclusionProof,
		},
		{
			name: "a proof for another index fails the inclusion proof check",
			mutate: func(l *signedLog, _ *Options) {
				tle := l.bundle.GetVerificationMaterial().GetTlogEntries()[0]
				tle.LogIndex, tle.InclusionProof.LogIndex = 4, 4
			},
			want: CheckInclusionProof,
		},
		{
			name: "a wrong log key fails the checkpoint signature check",
			mutate: func(l *signedLog, o *Options) {
				pub, _, _ := ed25519.GenerateKey(rand.Reader)
				o.TrustedRoot = trustedRootFor(pub)
			},
			want: CheckCheckpoint,
		},
		{
			name: "an unmet witness policy fails the witness policy check",
			mutate: func(l *signedLog, o *Options) {
				p, err := ParseWitnessPolicy(policyText(l.witnessVKeys, "2"))
				if err != nil {
					t.Fatal(err)
				}
				o.WitnessPolicy = p
			},
			want: CheckWitnessPolicy,
		},
		{
			name: "a bundle of another media type fails the bundle check",
			mutate: func(l *signedLog, _ *Options) {
				l.bundle.MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.1"
			},
			want: CheckBundle,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := buildSignedLog(t, signer, 2, 1)
			anyPolicy, err := ParseWitnessPolicy(policyText(l.witnessVKeys, "any"))
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{TrustedRoot: l.trustedRoot, WitnessPolicy: anyPolicy, PublicKey: l.signerPub}
			if _, err := Bundle(marshalBundle(t, l.bundle), bytes.NewReader(l.artifact), opts); err != nil {
				t.Fatalf("the unmodified bundle does not verify: %v", err)
			}
			tc.mutate(l, &opts)
			_, err = Bundle(marshalBundle(t, l.bundle), bytes.NewReader(l.artifact), opts)
			if got := checkOf(err); got != tc.want {
				t.Fatalf("got error %v (check %q), want check %q", err, got, tc.want)
			}
		})
	}
}

func TestEveryChangedBundleByteFails(t *testing.T) {
	l := buildSignedLog(t, newArtifactSigner(t, "ecdsa-p256"), 1, 1)
	policy, err := ParseWitnessPolicy(policyText(l.witnessVKeys, "all"))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{TrustedRoot: l.trustedRoot, WitnessPolicy: policy, PublicKey: l.signerPub}
	orig := marshalBundle(t, l.bundle)
	if _, err := Bundle(orig, bytes.NewReader(l.artifact), opts); err != nil {
		t.Fatalf("the unmodified bundle does not verify: %v", err)
	}
	// Flipping the low bit of a byte either breaks the JSON or changes a value; the few flips that
	// decode to the same bundle (unused trailing base64 bits) are not a change and are skipped.
	same := 0
	for i := range orig {
		mutated := bytes.Clone(orig)
		mutated[i] ^= 1
		_, err := Bundle(mutated, bytes.NewReader(l.artifact), opts)
		if err == nil {
			if mb, perr := ParseBundle(mutated); perr == nil && proto.Equal(mb, l.bundle) {
				same++
				continue
			}
			t.Fatalf("bundle with byte %d (%q) flipped still verifies: ...%s...", i, orig[i], orig[max(0, i-40):min(len(orig), i+10)])
		}
		if checkOf(err) == "" {
			t.Fatalf("byte %d flipped: error %v is not a verify.Error", i, err)
		}
	}
	if same > len(orig)/20 {
		t.Errorf("%d of %d flips decoded to the same bundle; the check is too weak", same, len(orig))
	}
}

func TestFixtureInTestdataVerifies(t *testing.T) {
	dir := "testdata"
	if *update {
		l := buildSignedLog(t, newArtifactSigner(t, "ecdsa-p256"), 2, 2)
		tr, err := protojson.MarshalOptions{Multiline: true}.Marshal(l.trustedRoot)
		if err != nil {
			t.Fatal(err)
		}
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(l.bundle)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{
			"signer.pub":              pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, l.signerPub)}),
			"bundle.json":             b,
			"artifact.txt":            l.artifact,
			"trusted_root.json":       tr,
			"witness-policy-met.txt":  policyText(l.witnessVKeys, "all"),
			"witness-policy-2of3.txt": policyText(append(l.witnessVKeys[:1:1], newCosignerVKey(t)), "2"),
		} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("reading fixture (regenerate with -update): %v", err)
		}
		return data
	}
	tr, err := ParseTrustedRoot(read("trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ParsePublicKeyPEM(read("signer.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		policy string
		want   Check
	}{
		{name: "the fixture verifies with no witness policy"},
		{name: "the fixture verifies with a policy its cosignatures meet", policy: "witness-policy-met.txt"},
		{name: "the fixture fails a policy needing a witness that did not cosign", policy: "witness-policy-2of3.txt", want: CheckWitnessPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{TrustedRoot: tr, PublicKey: signer}
			if tc.policy != "" {
				p, err := ParseWitnessPolicy(read(tc.policy))
				if err != nil {
					t.Fatal(err)
				}
				opts.WitnessPolicy = p
			}
			_, err := Bundle(read("bundle.json"), bytes.NewReader(read("artifact.txt")), opts)
			if got := checkOf(err); got != tc.want || (tc.want == "" && err != nil) {
				t.Fatalf("got %v, want check %q", err, tc.want)
			}
		})
	}
}

func newCosignerVKey(t testing.TB) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "absent-witness.test")
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return cvkey
}

// FuzzBundle checks that no input panics and that every bundle that verifies proves what the fixture does.
func FuzzBundle(f *testing.F) {
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	b, artifact := read("bundle.json"), read("artifact.txt")
	tr, err := ParseTrustedRoot(read("trusted_root.json"))
	if err != nil {
		f.Fatal(err)
	}
	signer, err := ParsePublicKeyPEM(read("signer.pub"))
	if err != nil {
		f.Fatal(err)
	}
	want, err := Bundle(b, bytes.NewReader(artifact), Options{TrustedRoot: tr, PublicKey: signer})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(bytes.Replace(b, []byte(`"logIndex"`), []byte(`"log_index"`), 1))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Bundle(data, bytes.NewReader(artifact), Options{TrustedRoot: tr, PublicKey: signer})
		if err != nil {
			if checkOf(err) == "" {
				t.Fatalf("error %v is not a verify.Error", err)
			}
			return
		}
		// Bytes the checks do not cover (a cosignature from a witness no policy names, a key hint)
		// may differ from the fixture; what the bundle proves may not.
		if got.LogIndex != want.LogIndex || got.TreeSize != want.TreeSize || got.Origin != want.Origin ||
			!bytes.Equal(got.Digest, want.Digest) || !bytes.Equal(got.SignerKey, want.SignerKey) {
			t.Fatalf("a bundle proving other than the fixture verified (%+v, fixture %+v): %s", got, want, data)
		}
	})
}

func mustPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
