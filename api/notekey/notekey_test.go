package notekey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestKeysOfXModNote splits keys made by golang.org/x/mod/sumdb/note and checks the fields
// against what that package says of them.
func TestKeysOfXModNote(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "log.example.org")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ParseSigner(skey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	vk, err := ParseVerifier(" " + vkey)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("both halves have the name, key ID and type note gives", func(t *testing.T) {
		for _, k := range []Key{sk, vk} {
			if k.Name != v.Name() || k.ID != v.KeyHash() || k.Type != TypeEd25519 {
				t.Fatalf("key %s %08x type %d, want %s %08x type 1", k.Name, k.ID, k.Type, v.Name(), v.KeyHash())
			}
		}
	})
	t.Run("the signer key's seed gives the verifier key's public key", func(t *testing.T) {
		if len(sk.Material) != ed25519.SeedSize {
			t.Fatalf("seed of %d bytes", len(sk.Material))
		}
		pub := ed25519.NewKeyFromSeed(sk.Material).Public().(ed25519.PublicKey)
		if !bytes.Equal(pub, vk.Material) {
			t.Fatalf("public key %x, verifier key holds %x", pub, vk.Material)
		}
	})
	t.Run("both halves are written back as they were read", func(t *testing.T) {
		if got := sk.SignerKey(); got != skey {
			t.Errorf("SignerKey = %q, want the key read", got)
		}
		if got := vk.VerifierKey(); got != vkey {
			t.Errorf("VerifierKey = %q, want %q", got, vkey)
		}
	})
}

func TestMalformedKeys(t *testing.T) {
	const secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw=="
	for _, tc := range []struct {
		name, in string
		signer   bool
		want     string
	}{
		{"a signer key without its prefix is refused", "log+01234567+" + secret, true, "does not start with"},
		{"a verifier key without a name is refused", "+01234567+AQID", false, "no name"},
		{"a key without a key ID is refused", "log+AQID", false, "no 8-digit key ID"},
		{"a key ID that is not hex is refused", "log+0123456z+AQID", false, "not hexadecimal"},
		{"a key that is not base64 is refused", "PRIVATE+KEY+log+01234567+!!!!" + secret, true, "not base64"},
		{"a key of one byte is refused", "log+01234567+AQ==", false, "not base64 of a signature type and a key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.signer {
				_, err = ParseSigner(tc.in)
			} else {
				_, err = ParseVerifier(tc.in)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "AQID") {
				t.Fatalf("error %q repeats the key", err)
			}
		})
	}
}

// FuzzParseSigner checks that an accepted signer key is written back as read and that no error
// repeats the key.
func FuzzParseSigner(f *testing.F) {
	f.Add("PRIVATE+KEY+log.example+01234567+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB")
	f.Add("PRIVATE+KEY+a+b+c")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSigner(s)
		if err != nil {
			if len(s) > 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q repeats the key text", err)
			}
			return
		}
		again, err := ParseSigner(k.SignerKey())
		if err != nil || again.Name != k.Name || again.ID != k.ID || again.Type != k.Type || !bytes.Equal(again.Material, k.Material) {
			t.Fatalf("%q reads back as %+v, %v; want %+v", k.SignerKey(), again, err, k)
		}
	})
}
