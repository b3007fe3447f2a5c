package rekor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/notekey"
)

// TestKeyIDMatchesRekorTiles checks the log ID against rekor-tiles' own computation (pkg/note
// KeyHash), the value rekor-tiles puts in logId.keyId.
func TestKeyIDMatchesRekorTiles(t *testing.T) {
	for i := 0; i < 64; i++ {
		_, vkey, err := note.GenerateKey(rand.Reader, fmt.Sprintf("log%d.quire.test", i))
		if err != nil {
			t.Fatal(err)
		}
		k, err := notekey.ParseVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		_, want, err := rekornote.KeyHash(k.Name, ed25519.PublicKey(k.Material))
		if err != nil {
			t.Fatal(err)
		}
		got, err := KeyID(vkey)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("KeyID(%s) = %x, rekor-tiles logID %x", vkey, got, want)
		}
	}
	for _, bad := range []string{"", "name", "name+1234", "name+12345678+!!!"} {
		if _, err := KeyID(bad); err == nil {
			t.Errorf("KeyID(%q) succeeded", bad)
		}
	}
}

func TestParseEd25519VerifierKey(t *testing.T) {
	const origin = "log.quire.test"
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	name, hash, _ := strings.Cut(vkey, "+")
	hash, b64, _ := strings.Cut(hash, "+")
	wrongHash := name + "+" + strings.Repeat("0", len(hash)) + "+" + b64
	if wrongHash == vkey {
		wrongHash = name + "+" + strings.Repeat("1", len(hash)) + "+" + b64
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"an Ed25519 verifier key parses", vkey, true},
		{"a verifier key with a trailing newline parses", vkey + "\n", true},
		{"a key without its hash is rejected", strings.Replace(vkey, "+", "", 1), false},
		{"a key whose hash does not match it is rejected", wrongHash, false},
		{"a key of another type is rejected", origin + "+00000000+BAAAAA==", false},
		{"a key that is not base64 is rejected", origin + "+00000000+!!!!", false},
		{"an empty key is rejected", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, got, err := ParseEd25519VerifierKey(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseEd25519VerifierKey(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if v.Name() != origin || !bytes.Equal(got, pub) {
				t.Fatalf("got %q %x, want %q %x", v.Name(), got, origin, pub)
			}
			id, err := KeyID(strings.TrimSpace(tc.in))
			if err != nil || !bytes.Equal(id, Ed25519KeyID(origin, pub)) {
				t.Fatalf("KeyID of the vkey %x (%v) differs from Ed25519KeyID %x", id, err, Ed25519KeyID(origin, pub))
			}
			if want := id[:4]; v.KeyHash() != uint32(want[0])<<24|uint32(want[1])<<16|uint32(want[2])<<8|uint32(want[3]) {
				t.Fatalf("the note key hash %08x is not the first four bytes of the log ID %x", v.KeyHash(), id)
			}
		})
	}
}

func FuzzParseEd25519VerifierKey(f *testing.F) {
	f.Add("log.example+12345678+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB")
	f.Add("a+b+c+d")
	f.Fuzz(func(t *testing.T, s string) {
		v, pub, err := ParseEd25519VerifierKey(s)
		if err != nil {
			if len(s) > 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q repeats the key text", err)
			}
			return
		}
		if len(pub) != ed25519.PublicKeySize || strings.Contains(v.Name(), "+") {
			t.Fatalf("accepted %q as origin %q key %x", s, v.Name(), pub)
		}
	})
}
