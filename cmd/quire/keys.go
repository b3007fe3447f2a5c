package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/keyfile"
	"github.com/quirelog/quire/log/logkey"
)

const (
	keyFileName    = "log.key"
	pubFileName    = "log.pub"
	pemKeyFileName = "log.pem"
	pemPubFileName = "log.pub.pem"
)

// logKey is the log's checkpoint key: its origin is the key name in checkpoints; vkey is its C2SP
// signed-note verifier key (Ed25519, or ECDSA P-256 for a PEM or KMS key) and logID the
// logId.keyId of its answers. signer is nil for a key read from its public half.
type logKey struct {
	origin   string
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	public   crypto.PublicKey
	logID    []byte
}

func fromLogKey(k *logkey.Key) *logKey {
	return &logKey{origin: k.Origin, signer: k.Signer, verifier: k.Verifier, vkey: k.VerifierKey, public: k.Public, logID: k.LogID}
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

// writeNewPEMKey generates a PEM key of algorithm alg and writes DIR/log.pem (0600, PKCS#8,
// encrypted with password if it is not empty), DIR/log.pub.pem (the PKIX public key, for trusted
// roots made by other tools) and DIR/log.pub (the verifier key, named origin).
func writeNewPEMKey(dir, origin, alg string, password []byte) (keyPath, pubPath string, err error) {
	priv, pubPEM, err := logkey.GeneratePEM(alg, password)
	if err != nil {
		return "", "", err
	}
	pub, err := logkey.FromPublicPEM(pubPEM, origin)
	if err != nil {
		return "", "", err
	}
	keyPath = filepath.Join(dir, pemKeyFileName)
	pubPath = filepath.Join(dir, pubFileName)
	if err := keyfile.WritePair(keyPath, priv, pubPath, []byte(pub.VerifierKey+"\n")); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, pemPubFileName), pubPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("writing public key: %w", err)
	}
	return keyPath, pubPath, nil
}

// keySource says where the checkpoint key comes from: a key file (a note signer key or a PEM
// private key, with its password) or a KMS URI. A PEM or KMS key has no name of its own, so it
// takes origin.
type keySource struct {
	path     string
	password string
	kms      string
	origin   string
}

// load loads the signer key src names. A key file readable by group or other is refused: whoever
// reads it can sign checkpoints in the log's name.
func (src keySource) load(ctx context.Context) (*logKey, error) {
	if src.kms != "" {
		k, err := logkey.FromKMS(ctx, src.kms, src.origin)
		if err != nil {
			return nil, err
		}
		return fromLogKey(k), nil
	}
	b, err := keyfile.ReadPrivate(src.path)
	if err != nil {
		return nil, err
	}
	if logkey.IsPEM(b) {
		k, err := logkey.FromPEM(ctx, b, []byte(src.password), src.origin)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", src.path, err)
		}
		return fromLogKey(k), nil
	}
	k, err := parseSignerKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("parsing key file %s: %w", src.path, err)
	}
	return k, nil
}

// loadSignerKey reads a note signer key file written by writeNewKey.
func loadSignerKey(path string) (*logKey, error) {
	return keySource{path: path}.load(context.Background())
}

// parseSignerKey parses a C2SP signed-note Ed25519 signer key.
func parseSignerKey(skey string) (*logKey, error) {
	k, err := logkey.FromNoteSigner(skey)
	if err != nil {
		return nil, err
	}
	return fromLogKey(k), nil
}

// parseVerifierKey parses a log's verifier key: Ed25519 (name+hash+base64(0x01||key)) or ECDSA
// P-256 (0x02).
func parseVerifierKey(vkey string) (*logKey, error) {
	k, err := logkey.FromVerifierKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing verifier key: %w", err)
	}
	return fromLogKey(k), nil
}

// readPublicKey reads the public half of a log key from a file: a note signer key, a verifier key,
// a PEM private key (password-protected ones with password) or a PEM public key. A PEM key has no
// name of its own and takes origin.
func readPublicKey(path, password, origin string) (*logKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	text := strings.TrimSpace(string(b))
	switch {
	case strings.HasPrefix(text, "-----BEGIN PUBLIC KEY-----"):
		k, err := logkey.FromPublicPEM(b, origin)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		return fromLogKey(k), nil
	case logkey.IsPEM(b), strings.HasPrefix(text, "PRIVATE+KEY+"):
		return keySource{path: path, password: password, origin: origin}.load(context.Background())
	}
	k, err := parseVerifierKey(text)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// addKeyFlags adds the flags that go with --key to a command that signs checkpoints.
func addKeyFlags(fs *cli.FlagSet, password, kms *string) {
	fs.StringVar(password, "key-password", "", "password of an encrypted PEM --key (as rekor-tiles' --signer-password); prefer the environment variable to the command line")
	fs.StringVar(kms, "kms", "", "checkpoint key in a KMS, by sigstore `URI`: awskms://, gcpkms://, azurekms:// or hashivault:// (ECDSA P-256 or Ed25519; credentials from the provider's usual environment)")
}
