package verify

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// fuzzFixture holds the checked-in bundle, its artifact and the trusted root it verifies under.
type fuzzFixture struct {
	bundle, artifact, trustedRoot []byte
	signer                        crypto.PublicKey
}

func readFuzzFixture(f *testing.F) fuzzFixture {
	f.Helper()
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	signer, err := ParsePublicKeyPEM(read("signer.pub"))
	if err != nil {
		f.Fatal(err)
	}
	return fuzzFixture{bundle: read("bundle.json"), artifact: read("artifact.txt"), trustedRoot: read("trusted_root.json"), signer: signer}
}

// FuzzParseBundleRoundTrip checks that a bundle ParseBundle accepts survives MarshalBundle and a
// second ParseBundle unchanged, so `quirectl verify` reads back every bundle `quirectl submit` writes.
func FuzzParseBundleRoundTrip(f *testing.F) {
	fx := readFuzzFixture(f)
	f.Add(fx.bundle)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"tlogEntries":[{"logIndex":"1"}]}}`))
	f.Add([]byte(`{"unknownField":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		j, err := MarshalBundle(b)
		if err != nil {
			t.Fatalf("an accepted bundle does not marshal: %v", err)
		}
		again, err := ParseBundle(j)
		if err != nil {
			t.Fatalf("MarshalBundle's output does not parse: %v\n%s", err, j)
		}
		if !proto.Equal(b, again) {
			t.Fatalf("bundle changed across marshal and parse:\n%s", j)
		}
	})
}

// FuzzParseTrustedRoot checks that an accepted trusted root round-trips through protojson, and that
// verifying the fixture bundle under any accepted root either succeeds or fails with a typed *Error:
// a hostile trusted_root.json reaches the checkpoint-key code (openCheckpoint) and must not panic it.
func FuzzParseTrustedRoot(f *testing.F) {
	fx := readFuzzFixture(f)
	f.Add(fx.trustedRoot)
	f.Add(bytes.Replace(fx.trustedRoot, []byte(`"PKIX_ED25519"`), []byte(`"PKIX_ECDSA_P256_SHA_256"`), 1))
	f.Add([]byte(`{"tlogs":[{"baseUrl":"https://x","publicKey":{"rawBytes":"AAAA"},"logId":{"keyId":"AAAA"}}]}`))
	f.Add([]byte(`{"tlogs":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseTrustedRoot(data)
		if err != nil {
			return
		}
		j, err := protojson.Marshal(tr)
		if err != nil {
			t.Fatalf("an accepted trusted root does not marshal: %v", err)
		}
		again, err := ParseTrustedRoot(j)
		if err != nil || !proto.Equal(tr, again) {
			t.Fatalf("trusted root changed across marshal and parse (err %v):\n%s", err, j)
		}
		if _, err := Bundle(fx.bundle, bytes.NewReader(fx.artifact), Options{TrustedRoot: tr, PublicKey: fx.signer}); err != nil && checkOf(err) == "" {
			t.Fatalf("error %v is not a verify.Error", err)
		}
	})
}

// FuzzParseWitnessPolicy checks that any policy the parser accepts can be applied to the fixture:
// the fixture passes every other check, so the only failure an accepted policy may cause is
// CheckWitnessPolicy.
func FuzzParseWitnessPolicy(f *testing.F) {
	fx := readFuzzFixture(f)
	for _, name := range []string{"witness-policy-met.txt", "witness-policy-2of3.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("quorum none\n"))
	f.Add([]byte("group g 0\nquorum g\n"))
	f.Add([]byte("group a any b\ngroup b any a\nquorum a\n"))
	tr, err := ParseTrustedRoot(fx.trustedRoot)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wg, err := ParseWitnessPolicy(data)
		if err != nil {
			return
		}
		for url, v := range wg.Endpoints() {
			if v == nil || !bytes.Contains(data, []byte(v.Name())) {
				t.Fatalf("endpoint %q has a verifier whose key is not in the policy text", url)
			}
		}
		_, err = Bundle(fx.bundle, bytes.NewReader(fx.artifact), Options{TrustedRoot: tr, WitnessPolicy: wg, PublicKey: fx.signer})
		if err != nil && checkOf(err) != CheckWitnessPolicy {
			t.Fatalf("an accepted policy made the fixture fail another check: %v", err)
		}
	})
}
