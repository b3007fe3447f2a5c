package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/keyfile"
)

func init() {
	commands["keygen"] = cli.Command{Run: runKeygen, Args: "--out DIR [--type TYPE]",
		Summary: "make a signing key pair for submit (PKCS#8 private key 0600, PKIX public key)"}
}

func runKeygen(_ context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	out := fs.String("out", "", "`DIR` to write key.pem (private) and key.pub (public) in")
	keyType := fs.String("type", string(client.KeyECDSAP256), "key `TYPE`: ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096 or ed25519")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("--out is required")
	}
	name := *keyType
	// Hashedrekord signs digests, so an Ed25519 key always signs as Ed25519ph.
	if strings.EqualFold(name, "ed25519") {
		name = string(client.KeyEd25519ph)
	}
	kt, err := client.ParseKeyType(name)
	if err != nil {
		return cli.Usagef("--type: %w", err)
	}
	key, err := client.GenerateKey(kt)
	if err != nil {
		return err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encoding public key: %w", err)
	}
	privPath, pubPath := filepath.Join(*out, "key.pem"), filepath.Join(*out, "key.pub")
	if err := keyfile.WritePair(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})); err != nil {
		return err
	}
	fmt.Fprintf(inv.Stdout, "wrote %s (%s private key, mode 0600) and %s\n", privPath, kt, pubPath)
	return nil
}
