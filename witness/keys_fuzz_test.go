package witness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// FuzzNewCosigner checks the witness signer-key parser: it never panics, its errors never echo the
// key text, and every key it accepts yields a cosigner whose verifier key, parsed afresh by formats,
// verifies what it signs.
func FuzzNewCosigner(f *testing.F) {
	skey4, _, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), "witness.example/w")
	if err != nil {
		f.Fatal(err)
	}
	skey1, _, err := note.GenerateKey(rand.Reader, "w1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(skey4)
	f.Add(skey1)
	f.Add(" " + skey4 + "\n")
	f.Add("PRIVATE+KEY+w+00000000+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("PRIVATE+KEY+w+deadbeef+AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	msg := []byte("example.com/log\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, hashSize)) + "\n")
	f.Fuzz(func(t *testing.T, skey string) {
		c, err := NewCosigner(skey, nil)
		if err != nil {
			if secret := strings.TrimSpace(skey); len(secret) > 16 && strings.Contains(err.Error(), secret) {
				t.Fatalf("error echoes the key text: %v", err)
			}
			return
		}
		v, err := fnote.NewVerifierForCosignatureV1(c.VerifierKey())
		if err != nil {
			t.Fatalf("the cosigner's own verifier key %q does not parse: %v", c.VerifierKey(), err)
		}
		if v.Name() != c.Name() || v.KeyHash() != c.KeyHash() {
			t.Fatalf("verifier %s/%08x disagrees with cosigner %s/%08x", v.Name(), v.KeyHash(), c.Name(), c.KeyHash())
		}
		sig, err := c.Sign(msg)
		if err != nil {
			t.Fatalf("signing a checkpoint: %v", err)
		}
		if !v.Verify(msg, sig) {
			t.Fatal("formats' verifier rejects the cosignature")
		}
	})
}

// FuzzParseLog checks one log line of the witness's log list: an accepted line gives a log whose
// origin is a single field and, when the line names none, the verifier key's own name.
func FuzzParseLog(f *testing.F) {
	_, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{3}, 32)), "example.com/log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vkey)
	f.Add("other.example/log " + vkey)
	f.Add("a b c")
	f.Add("example.com/log+00000000+AQ==")
	f.Fuzz(func(t *testing.T, line string) {
		l, err := ParseLog(line)
		if err != nil {
			return
		}
		fields := strings.Fields(line)
		if l.Verifier == nil || l.Origin == "" || strings.ContainsAny(l.Origin, " \t\n\r") {
			t.Fatalf("accepted %q as %+v", line, l)
		}
		if len(fields) == 1 && l.Origin != l.Verifier.Name() {
			t.Fatalf("origin %q is not the key name %q", l.Origin, l.Verifier.Name())
		}
		if len(fields) == 2 && l.Origin != fields[0] {
			t.Fatalf("origin %q is not the line's first field %q", l.Origin, fields[0])
		}
	})
}
