package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParseKeys(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "log.example.com")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		text    string
		signer  bool
		wantErr bool
	}{
		{name: "a generated signer key parses and yields its verifier key", text: skey, signer: true},
		{name: "a generated verifier key parses", text: vkey},
		{name: "a signer key with a wrong hash is refused", text: skey[:len("PRIVATE+KEY+log.example.com+")] + "00000000" + skey[len("PRIVATE+KEY+log.example.com+00000000"):], signer: true, wantErr: true},
		{name: "a truncated signer key is refused", text: skey[:len(skey)-4], signer: true, wantErr: true},
		{name: "a verifier key for a non-Ed25519 type is refused", text: "log.example.com+12345678+AgAAAA==", wantErr: true},
		{name: "an empty text is refused", text: "", signer: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var k *logKey
			var err error
			if tc.signer {
				k, err = parseSignerKey(tc.text)
			} else {
				k, err = parseVerifierKey(tc.text)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				if tc.text != "" && strings.Contains(err.Error(), tc.text) {
					t.Errorf("error %q repeats the key text", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.vkey != vkey || k.origin != "log.example.com" || len(k.public) != ed25519.PublicKeySize {
				t.Errorf("got origin %q vkey %q, want %q", k.origin, k.vkey, vkey)
			}
		})
	}
}

// FuzzParseSignerKey checks that no input crashes the key parsers, that an accepted signer key's
// derived verifier verifies what the signer signs, and that errors never echo the key text.
func FuzzParseSignerKey(f *testing.F) {
	seeds, err := os.ReadFile(filepath.Join("testdata", "keys.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(seeds), "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, text string) {
		k, err := parseSignerKey(text)
		if err != nil {
			if len(text) > 16 && strings.Contains(err.Error(), text) {
				t.Fatalf("error echoes the key text")
			}
		} else {
			n, err := note.Sign(&note.Note{Text: "hello\n"}, k.signer)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(n, note.VerifierList(k.verifier)); err != nil {
				t.Fatalf("derived verifier rejects the signer's note: %v", err)
			}
		}
		if k, err := parseVerifierKey(text); err == nil && len(k.public) != ed25519.PublicKeySize {
			t.Fatalf("accepted a verifier key with a %d-byte public key", len(k.public))
		}
	})
}
