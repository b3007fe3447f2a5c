package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParseLogVKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey(testOrigin, pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"an Ed25519 verifier key parses", vkey, true},
		{"a verifier key with a trailing newline parses", vkey + "\n", true},
		{"a key without its hash is rejected", strings.Replace(vkey, "+", "", 1), false},
		{"a key of another type is rejected", testOrigin + "+00000000+BAAAAA==", false},
		{"a key that is not base64 is rejected", testOrigin + "+00000000+!!!!", false},
		{"an empty key is rejected", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin, got, err := ParseLogVKey(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseLogVKey(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && (origin != testOrigin || !bytes.Equal(got, pub)) {
				t.Fatalf("got %q %x, want %q %x", origin, got, testOrigin, pub)
			}
		})
	}
}

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
	if _, err := Bundle(j, bytes.NewReader(l.artifact), Options{TrustedRoot: tr}); err != nil {
		t.Fatalf("a bundle from NewBundle does not verify with TrustedRootForLog: %v", err)
	}
}

func FuzzParseLogVKey(f *testing.F) {
	f.Add("log.example+12345678+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB")
	f.Add("a+b+c+d")
	f.Fuzz(func(t *testing.T, s string) {
		origin, pub, err := ParseLogVKey(s)
		if err != nil {
			return
		}
		if len(pub) != ed25519.PublicKeySize || strings.Contains(origin, "+") {
			t.Fatalf("accepted %q as origin %q key %x", s, origin, pub)
		}
	})
}
