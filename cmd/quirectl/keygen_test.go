package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestKeygen(t *testing.T) {
	for _, kt := range []string{"ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "ed25519"} {
		t.Run("keygen writes a matching "+kt+" key pair with a private key only the owner reads", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if code, out := quirectl(t, "keygen", "--out", dir, "--type", kt); code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			fi, err := os.Stat(filepath.Join(dir, "key.pem"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key.pem: %v, mode %v", err, fi.Mode())
			}
			signer, err := loadSigner(filepath.Join(dir, "key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, err := os.ReadFile(filepath.Join(dir, "key.pub"))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(pubPEM)
			if block == nil || block.Type != "PUBLIC KEY" {
				t.Fatalf("key.pub is not a PEM PUBLIC KEY: %q", pubPEM)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pub, crypto.PublicKey(signer.Public())) {
				t.Fatal("key.pub is not the public half of key.pem")
			}
			if code, _ := quirectl(t, "keygen", "--out", dir, "--type", kt); code == 0 {
				t.Fatal("keygen overwrote an existing key")
			}
		})
	}
	t.Run("keygen refuses an unknown key type", func(t *testing.T) {
		if code, _ := quirectl(t, "keygen", "--out", t.TempDir(), "--type", "dsa-1024"); code == 0 {
			t.Fatal("keygen accepted dsa-1024")
		}
	})
}
