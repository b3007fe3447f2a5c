package verify

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestATrustedRootForALogVerifiesItsBundles(t *testing.T) {
	l := buildSignedLog(t, newArtifactSigner(t, "ecdsa-p384"), 0, 0)
	der := l.trustedRoot.GetTlogs()[0].GetPublicKey().GetRawBytes()
	vkey, err := note.NewEd25519VerifierKey(testOrigin, mustEd25519(der))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := TrustedRootForLog(vkey)
	if err != nil {
		t.Fatal(err)
	}
	msg := l.bundle.GetMessageSignature()
	tle := l.bundle.GetVerificationMaterial().GetTlogEntries()[0]
	signerDER := mustPKIX(t, l.signerPub)
	b := NewBundle(tle, msg.GetMessageDigest().GetAlgorithm(), msg.GetMessageDigest().GetDigest(), msg.GetSignature(), signerDER)
	j, err := MarshalBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bundle(j, bytes.NewReader(l.artifact), Options{TrustedRoot: tr, PublicKey: l.signerPub}); err != nil {
		t.Fatalf("a bundle from NewBundle does not verify with TrustedRootForLog: %v", err)
	}
}
