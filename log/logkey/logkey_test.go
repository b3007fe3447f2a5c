package logkey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms/fake"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

const origin = "log.quire.test"

// checkpoint is a note text shaped like a tlog-checkpoint.
const checkpoint = origin + "\n42\nu+7cDJRSb8yf6ByUEEdR5Lri8xrqrrFBxCNWn4OgYPQ=\n"

// TestSignaturesVerifyWithRekorTiles signs a checkpoint with keys in every form the log takes and
// has rekor-tiles' own verifier (pkg/note, what sigstore-go uses for Rekor v2 entries) and
// transparency-dev/formats' verifier (Tessera's fsck, quire-witness) check it, and the log ID
// match rekor-tiles' KeyHash.
func TestSignaturesVerifyWithRekorTiles(t *testing.T) {
	ctx := context.Background()
	edPEM, _, err := GeneratePEM(Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM, _, err := GeneratePEM(ECDSAP256, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	ecKMS, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKMS, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		load func() (*Key, error)
	}{
		{"a signed-note Ed25519 key", func() (*Key, error) { return FromNoteSigner(skey) }},
		{"a PEM Ed25519 key", func() (*Key, error) { return FromPEM(ctx, edPEM, nil, origin) }},
		{"a password-protected PEM ECDSA P-256 key", func() (*Key, error) { return FromPEM(ctx, ecPEM, []byte("correct horse"), origin) }},
		{"an ECDSA P-256 key in sigstore's fake KMS", func() (*Key, error) {
			return FromKMS(context.WithValue(ctx, fake.KmsCtxKey{}, crypto.PrivateKey(ecKMS)), "fakekms://checkpoint-key", origin)
		}},
		{"an Ed25519 key in sigstore's fake KMS", func() (*Key, error) {
			return FromKMS(context.WithValue(ctx, fake.KmsCtxKey{}, crypto.PrivateKey(edKMS)), "fakekms://checkpoint-key", origin)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" signs checkpoints rekor-tiles and formats verify", func(t *testing.T) {
			k, err := tc.load()
			if err != nil {
				t.Fatal(err)
			}
			signed, err := note.Sign(&note.Note{Text: checkpoint}, k.Signer)
			if err != nil {
				t.Fatal(err)
			}
			sv, err := signature.LoadVerifier(k.Public, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			rv, err := rekornote.NewNoteVerifier(origin, sv)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(signed, note.VerifierList(rv)); err != nil {
				t.Errorf("rekor-tiles' verifier rejects the checkpoint: %v\n%s", err, signed)
			}
			fv, err := fnote.NewVerifier(k.VerifierKey)
			if err != nil {
				t.Fatalf("formats cannot read the verifier key %s: %v", k.VerifierKey, err)
			}
			if _, err := note.Open(signed, note.VerifierList(fv)); err != nil {
				t.Errorf("formats' verifier rejects the checkpoint: %v", err)
			}
			_, wantID, err := rekornote.KeyHash(origin, k.Public)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.LogID, wantID) {
				t.Errorf("log ID %x, rekor-tiles %x", k.LogID, wantID)
			}
			pub, err := FromVerifierKey(k.VerifierKey)
			if err != nil || !bytes.Equal(pub.LogID, k.LogID) || pub.Signer != nil {
				t.Errorf("the verifier key reads back as %+v, %v", pub, err)
			}
		})
	}

	t.Run("rekor-tiles' note signer and this one are interchangeable for an Ed25519 PEM key", func(t *testing.T) {
		k, err := FromPEM(ctx, edPEM, nil, origin)
		if err != nil {
			t.Fatal(err)
		}
		priv := mustPrivate(t, edPEM)
		sv, err := signature.LoadDefaultSignerVerifier(priv)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := rekornote.NewNoteSigner(ctx, origin, sv)
		if err != nil {
			t.Fatal(err)
		}
		a, err := note.Sign(&note.Note{Text: checkpoint}, k.Signer)
		if err != nil {
			t.Fatal(err)
		}
		b, err := note.Sign(&note.Note{Text: checkpoint}, theirs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("Ed25519 signatures are deterministic, yet differ:\n%s\n%s", a, b)
		}
	})
}

func mustPrivate(t *testing.T, pemBytes []byte) crypto.PrivateKey {
	t.Helper()
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestOpenSSLKeys loads keys made by `openssl genpkey`, the tool an operator most likely used.
func TestOpenSSLKeys(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (apt-get install openssl; .ci/run installs it)")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		pass []byte
	}{
		{"an Ed25519 key", []string{"-algorithm", "ed25519"}, nil},
		{"an EC P-256 key", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}, nil},
		{"an AES-encrypted EC P-256 key", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-256-cbc", "-pass", "pass:s3cret"}, []byte("s3cret")},
	} {
		t.Run(tc.name+" made by openssl genpkey loads and signs", func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pem")
			out, err := exec.Command("openssl", append(append([]string{"genpkey"}, tc.args...), "-out", path)...).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl: %v\n%s", err, out)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			k, err := FromPEM(context.Background(), data, tc.pass, origin)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Sign(&note.Note{Text: checkpoint}, k.Signer); err != nil {
				t.Fatal(err)
			}
			if tc.pass != nil {
				if _, err := FromPEM(context.Background(), data, []byte("wrong"), origin); err == nil {
					t.Error("an encrypted key loaded with the wrong password")
				}
			}
		})
	}
	t.Run("a key GeneratePEM encrypted is read by openssl with its password", func(t *testing.T) {
		priv, _, err := GeneratePEM(Ed25519, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "generated.pem")
		if err := os.WriteFile(path, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("openssl", "pkey", "-in", path, "-passin", "pass:pw", "-noout").CombinedOutput(); err != nil {
			t.Fatalf("openssl rejects it: %v\n%s", err, out)
		}
	})
}

func TestRefusedKeys(t *testing.T) {
	ctx := context.Background()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPEM, _, err := GeneratePEM(Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		load func() (*Key, error)
		want string
	}{
		{"an ECDSA P-384 key, which the signed-note ECDSA type cannot verify", func() (*Key, error) {
			return FromKMS(context.WithValue(ctx, fake.KmsCtxKey{}, crypto.PrivateKey(p384)), "fakekms://k", origin)
		}, "P-256"},
		{"an RSA key", func() (*Key, error) {
			return FromKMS(context.WithValue(ctx, fake.KmsCtxKey{}, crypto.PrivateKey(rsaKey)), "fakekms://k", origin)
		}, "Ed25519 or ECDSA P-256"},
		{"a KMS URI no provider serves", func() (*Key, error) { return FromKMS(ctx, "nosuchkms://k", origin) }, "nosuchkms"},
		{"an origin with a space", func() (*Key, error) { return FromPEM(ctx, edPEM, nil, "a b") }, "key name"},
		{"PEM that is not a key", func() (*Key, error) {
			return FromPEM(ctx, []byte("-----BEGIN NOTHING-----\n-----END NOTHING-----\n"), nil, origin)
		}, "PEM"},
		{"a note key with a bad hash", func() (*Key, error) { return FromNoteSigner("PRIVATE+KEY+a+00000000+AQ==") }, "note signer key"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := tc.load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzFromPEM(f *testing.F) {
	edPEM, _, err := GeneratePEM(Ed25519, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(edPEM)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := FromPEM(context.Background(), data, nil, origin)
		if err != nil {
			return
		}
		if _, err := note.Sign(&note.Note{Text: checkpoint}, k.Signer); err != nil {
			t.Fatalf("a loaded key cannot sign: %v", err)
		}
	})
}
