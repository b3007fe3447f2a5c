package witness

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/notekey"
)

// GenerateKey makes a new Ed25519 cosignature/v1 key pair named name, reading
// randomness from rand. skey is the private signer key
// ("PRIVATE+KEY+name+hex(keyID)+base64(0x04||seed)") and must be kept secret;
// vkey is the verifier key ("name+hex(keyID)+base64(0x04||pubkey)") that logs
// put in their witness policy. The key ID is SHA-256(name || "\n" || 0x04 ||
// pubkey)[:4] (tlog-cosignature), computed by transparency-dev/formats.
func GenerateKey(rand io.Reader, name string) (skey, vkey string, err error) {
	// x/mod's generator makes a type 0x01 pair; formats converts the
	// verifier to 0x04 and computes the cosignature key ID, so neither the
	// name rules nor the key ID are re-implemented here.
	skey1, vkey1, err := note.GenerateKey(rand, name)
	if err != nil {
		return "", "", fmt.Errorf("generating Ed25519 key %q: %w", name, err)
	}
	vkey, err = fnote.VKeyToCosignatureV1(vkey1)
	if err != nil {
		return "", "", fmt.Errorf("converting verifier key to cosignature/v1: %w", err)
	}
	seed, err := cosignerSeed(skey1)
	if err != nil {
		return "", "", err
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return "", "", fmt.Errorf("parsing generated verifier key: %w", err)
	}
	k := notekey.Key{Name: name, ID: v.KeyHash(), Type: notekey.TypeCosignatureV1, Material: seed}
	return k.SignerKey(), vkey, nil
}

// cosignerSeed returns the Ed25519 seed of a signed-note signer key of type
// 0x01 or 0x04, which tlog-cosignature treats alike.
func cosignerSeed(skey string) ([]byte, error) {
	k, err := notekey.ParseSigner(skey)
	if err != nil {
		return nil, err
	}
	if len(k.Material) != ed25519.SeedSize || (k.Type != notekey.TypeEd25519 && k.Type != notekey.TypeCosignatureV1) {
		return nil, errors.New("signer key is not an Ed25519 key")
	}
	return k.Material, nil
}

// Cosigner produces timestamped Ed25519 cosignature/v1 signatures
// (tlog-cosignature) over checkpoints. It implements note.Signer.
//
// formats' NewSignerForCosignatureV1 reads the wall clock itself; Cosigner
// takes the clock as a parameter so byte-level test vectors can fix the
// timestamp. It is checked against formats' signer and verifier when built,
// so the two cannot drift apart.
type Cosigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	now  func() time.Time
	vkey string
	ver  note.Verifier
}

// NewCosigner parses an Ed25519 signer key (type 0x04, or 0x01, which
// tlog-cosignature treats the same) and returns a Cosigner that stamps each
// signature with now(). A nil now means time.Now.
func NewCosigner(skey string, now func() time.Time) (*Cosigner, error) {
	if now == nil {
		now = time.Now
	}
	ref, err := fnote.NewSignerForCosignatureV1(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("parsing cosigner key: %w", err)
	}
	seed, err := cosignerSeed(skey)
	if err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	vkey := notekey.Key{Name: ref.Name(), ID: ref.KeyHash(), Type: notekey.TypeCosignatureV1, Material: key.Public().(ed25519.PublicKey)}.VerifierKey()
	ver, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing cosigner verifier key: %w", err)
	}
	c := &Cosigner{name: ref.Name(), hash: ref.KeyHash(), key: key, now: now, vkey: vkey, ver: ver}
	if ver.KeyHash() != c.hash {
		return nil, fmt.Errorf("cosigner key ID %08x disagrees with verifier key ID %08x", c.hash, ver.KeyHash())
	}
	probe := []byte("quire-witness/self-test\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, hashSize)) + "\n")
	sig, err := c.Sign(probe)
	if err != nil {
		return nil, fmt.Errorf("cosigner self-test: %w", err)
	}
	if !ref.Verifier().Verify(probe, sig) {
		return nil, errors.New("cosigner self-test: formats' verifier rejects our cosignature")
	}
	return c, nil
}

// Name is the witness name, the first field of its verifier key.
func (c *Cosigner) Name() string { return c.name }

// KeyHash is the cosignature/v1 key ID.
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// VerifierKey returns the vkey text ("name+hex(keyID)+base64(0x04||pubkey)").
func (c *Cosigner) VerifierKey() string { return c.vkey }

// Verifier returns a note.Verifier for c's cosignatures, built by formats.
func (c *Cosigner) Verifier() note.Verifier { return c.ver }

// Sign returns timestamp || Ed25519(key, "cosignature/v1\ntime T\n" || msg),
// as tlog-cosignature, "Format" (the Ed25519 cosignature/v1 variant)
// specifies; note.Sign prepends the key ID. The timestamp must not be zero
// (tlog-witness, "add-checkpoint").
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	if bytes.Count(msg, []byte("\n")) < 3 {
		return nil, errors.New("cosigned message is not a checkpoint")
	}
	t := c.now().Unix()
	if t <= 0 {
		return nil, fmt.Errorf("clock reads %d: cosignature timestamps must be positive", t)
	}
	m := make([]byte, 0, 64+len(msg))
	m = fmt.Appendf(m, "cosignature/v1\ntime %d\n", t)
	m = append(m, msg...)
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, 8+ed25519.SignatureSize), uint64(t))
	return append(sig, ed25519.Sign(c.key, m)...), nil
}

// Log is one log the witness cosigns for: its origin line and a key that
// signs its checkpoints. Several Logs with the same Origin give that log
// several trusted keys.
type Log struct {
	Origin   string
	Verifier note.Verifier
}

// ParseLog parses one log line: "VKEY", where the origin is the key's name,
// or "ORIGIN VKEY". The verifier key is the last field and the origin all
// before it, spaces included, as logs such as "go.sum database tree" have
// them. VKEY is any signed-note verifier key that transparency-dev/formats
// knows (Ed25519, ECDSA, RFC 6962 STH).
func ParseLog(line string) (Log, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return Log{}, errors.New("empty log line, want \"VKEY\" or \"ORIGIN VKEY\"")
	}
	var origin, vkey string
	if i := strings.LastIndexAny(line, " \t"); i < 0 {
		vkey = line
	} else {
		origin, vkey = strings.TrimSpace(line[:i]), line[i+1:]
	}
	v, err := fnote.NewVerifier(vkey)
	if err != nil {
		return Log{}, fmt.Errorf("parsing log verifier key %q (the last field of the line): %w", truncate([]byte(vkey)), err)
	}
	if origin == "" {
		origin = v.Name()
	}
	return Log{Origin: origin, Verifier: v}, nil
}

// ParseLogConfig parses a log list: one ParseLog line per log; blank lines
// and text after '#' are ignored.
func ParseLogConfig(r io.Reader) ([]Log, error) {
	var logs []Log
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		line, _, _ := strings.Cut(s.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		l, err := ParseLog(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		logs = append(logs, l)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading log list: %w", err)
	}
	return logs, nil
}
