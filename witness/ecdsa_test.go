package witness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"net/http"
	"testing"

	"github.com/quirelog/quire/api/notekey"
)

// ecdsaNoteSigner signs notes as a log with an ECDSA P-256 checkpoint key does (rekor-tiles,
// Quire with a PEM or KMS key): an ASN.1 signature over the SHA-256 of the text, under the key ID
// SHA-256(DER SPKI)[:4] of the C2SP signed-note ECDSA type 0x02.
type ecdsaNoteSigner struct {
	name string
	key  *ecdsa.PrivateKey
	id   uint32
}

func (s *ecdsaNoteSigner) Name() string    { return s.name }
func (s *ecdsaNoteSigner) KeyHash() uint32 { return s.id }
func (s *ecdsaNoteSigner) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, s.key, d[:])
}

// TestAddCheckpointFromAnECDSALog has the witness cosign checkpoints of a log whose key is ECDSA
// P-256, configured by its type 0x02 verifier key.
func TestAddCheckpointFromAnECDSALog(t *testing.T) {
	l := newTestLog(t, "ecdsa.example.com/log", "ecdsa", "e", 8)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(der)
	l.signer = &ecdsaNoteSigner{name: l.origin, key: k, id: binary.BigEndian.Uint32(h[:])}
	l.vkey = notekey.ECDSAVerifierKey(l.origin, der)
	f := startWitness(t, t.TempDir(), 0, 0, l.config(t))
	cp := l.checkpoint(t, 8)
	r := post(t, f.srv.URL, l.request(t, 0, 8))
	if r.status != http.StatusOK {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if got := openCosigned(t, cp, r.body, f.cos.Verifier()); got.Size != 8 {
		t.Fatalf("cosigned size %d, want 8", got.Size)
	}
}
