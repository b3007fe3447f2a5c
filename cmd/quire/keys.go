package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/notekey"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/keyfile"
)

const (
	keyFileName = "log.key"
	pubFileName = "log.pub"
)

// logKey is the log's checkpoint key: a C2SP signed-note Ed25519 key whose name is the log's origin.
type logKey struct {
	origin   string
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	public   ed25519.PublicKey
}

// writeNewKey generates a note key for origin and writes DIR/log.key (0600, the signer key) and
// DIR/log.pub (the verifier key). It refuses to overwrite an existing key: losing a log key loses the log.
func writeNewKey(dir, origin string) (keyPath, pubPath string, err error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("generating key for origin %q: %w", origin, err)
	}
	keyPath = filepath.Join(dir, keyFileName)
	pubPath = filepath.Join(dir, pubFileName)
	if err := keyfile.WritePair(keyPath, []byte(skey+"\n"), pubPath, []byte(vkey+"\n")); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

// loadSignerKey reads a signer key file written by writeNewKey. A key readable by group or other is
// refused: whoever reads it can sign checkpoints in the log's name.
func loadSignerKey(path string) (*logKey, error) {
	b, err := keyfile.ReadPrivate(path)
	if err != nil {
		return nil, err
	}
	k, err := parseSignerKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("parsing key file %s: %w", path, err)
	}
	return k, nil
}

// errMalformedKey never includes the key text: a private key must not reach logs through an error.
var errMalformedKey = errors.New("not a note signer key (PRIVATE+KEY+name+hash+base64)")

// parseSignerKey parses a C2SP signed-note Ed25519 signer key and derives its public half, which
// note.Signer does not expose but the trust root needs.
func parseSignerKey(skey string) (*logKey, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, errMalformedKey
	}
	// note.NewSigner has checked the layout, the algorithm and that the hash matches the key.
	k, err := notekey.ParseSigner(skey)
	if err != nil || k.Type != notekey.TypeEd25519 || len(k.Material) != ed25519.SeedSize {
		return nil, errMalformedKey
	}
	pub := ed25519.NewKeyFromSeed(k.Material).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("encoding verifier key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("building verifier: %w", err)
	}
	return &logKey{origin: signer.Name(), signer: signer, verifier: verifier, vkey: vkey, public: pub}, nil
}

// parseVerifierKey parses a C2SP signed-note Ed25519 verifier key (name+hash+base64(0x01||key)).
func parseVerifierKey(vkey string) (*logKey, error) {
	verifier, pub, err := rekor.ParseEd25519VerifierKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing verifier key: %w", err)
	}
	return &logKey{origin: verifier.Name(), verifier: verifier, vkey: strings.TrimSpace(vkey), public: pub}, nil
}

// readPublicKey reads either a signer key file or a verifier key file and returns the public half.
func readPublicKey(path string) (*logKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "PRIVATE+KEY+") {
		k, err := loadSignerKey(path)
		if err != nil {
			return nil, err
		}
		return k, nil
	}
	k, err := parseVerifierKey(text)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}
