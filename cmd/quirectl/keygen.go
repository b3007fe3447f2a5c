package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/cmd/internal/keyfile"
)

func init() {
	commands["keygen"] = command{summary: "make a signing key pair for submit (PKCS#8 private key 0600, PKIX public key)", run: runKeygen}
}

func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for key.pem (private) and key.pub (public)")
	keyType := fs.String("type", string(client.KeyECDSAP256), "ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096 or ed25519")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("keygen: --out DIR is required and no other arguments are taken")
	}
	name := *keyType
	// Hashedrekord signs digests, so an Ed25519 key always signs as Ed25519ph.
	if strings.EqualFold(name, "ed25519") {
		name = string(client.KeyEd25519ph)
	}
	kt, err := client.ParseKeyType(name)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	key, err := client.GenerateKey(kt)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("keygen: encoding private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("keygen: encoding public key: %w", err)
	}
	privPath, pubPath := filepath.Join(*out, "key.pem"), filepath.Join(*out, "key.pub")
	if err := keyfile.WritePair(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%s private key, mode 0600) and %s\n", privPath, kt, pubPath)
	return nil
}
