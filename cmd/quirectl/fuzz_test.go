package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadSigner checks the `quirectl submit --key` file parser: it never panics, its errors name
// the file, and a key it accepts re-encodes as PKCS#8 to the same key, so the key it signs with is
// the key in the file.
func FuzzLoadSigner(f *testing.F) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, k := range []crypto.Signer{ec, ed} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("not a key"))
	path := filepath.Join(f.TempDir(), "key.pem")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := loadSigner(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the key file", err)
			}
			return
		}
		der, err := x509.MarshalPKCS8PrivateKey(s)
		if err != nil {
			t.Fatalf("an accepted %T does not re-encode: %v", s, err)
		}
		again, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatalf("re-encoded key does not parse: %v", err)
		}
		eq, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(again.(crypto.Signer).Public()) {
			t.Fatalf("%T changed across PKCS#8 re-encoding", s)
		}
	})
}
