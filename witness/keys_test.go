package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/cosignature_v1.json from the fixed seeds")

// vector is one cosignature/v1 test vector (tlog-cosignature, Ed25519
// variant). Everything but the inputs (Seed, Name, Timestamp, Checkpoint) is
// derived, and checked byte for byte.
type vector struct {
	Seed       string `json:"seed_hex"`
	Name       string `json:"name"`
	Timestamp  int64  `json:"timestamp"`
	Checkpoint string `json:"checkpoint"`
	SKey       string `json:"skey"`
	VKey       string `json:"vkey"`
	KeyID      string `json:"key_id_hex"`
	Signature  string `json:"signature_line"`
}

var vectorInputs = []vector{
	{Seed: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", Name: "witness.example/w1", Timestamp: 1700000000,
		Checkpoint: "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"},
	{Seed: "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100", Name: "quire.example/witness", Timestamp: 1,
		Checkpoint: "log.quire.example\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"},
	{Seed: "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", Name: "w", Timestamp: 4102444800,
		Checkpoint: "example.com/log\n1\nbjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=\nextension line\n"},
}

func fixedClock(unix int64) func() time.Time {
	return func() time.Time { return time.Unix(unix, 0) }
}

func deriveVector(t *testing.T, in vector) vector {
	t.Helper()
	seed, err := hex.DecodeString(in.Seed)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := GenerateKey(bytes.NewReader(seed), in.Name)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	c, err := NewCosigner(skey, fixedClock(in.Timestamp))
	if err != nil {
		t.Fatalf("NewCosigner: %v", err)
	}
	signed, err := note.Sign(&note.Note{Text: in.Checkpoint}, c)
	if err != nil {
		t.Fatalf("note.Sign: %v", err)
	}
	out := in
	out.SKey, out.VKey = skey, vkey
	out.KeyID = fmt.Sprintf("%08x", c.KeyHash())
	out.Signature = string(signed[len(in.Checkpoint)+1:])
	return out
}

// TestCosignatureVectors recomputes every vector in testdata from its inputs
// and compares the bytes, then verifies each signature independently of the
// code that made it: the key ID by hand from the spec's formula, the
// signature with crypto/ed25519 over the spec's message, and the whole line
// with transparency-dev/formats' verifier.
func TestCosignatureVectors(t *testing.T) {
	path := filepath.Join("testdata", "cosignature_v1.json")
	if *updateVectors {
		var vs []vector
		for _, in := range vectorInputs {
			vs = append(vs, deriveVector(t, in))
		}
		b, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("parsing vectors: %v", err)
	}
	if len(vs) != len(vectorInputs) {
		t.Fatalf("testdata holds %d vectors, want %d", len(vs), len(vectorInputs))
	}
	for _, want := range vs {
		t.Run(fmt.Sprintf("the vector for %s at time %d is reproduced byte for byte", want.Name, want.Timestamp), func(t *testing.T) {
			if got := deriveVector(t, want); got != want {
				t.Fatalf("recomputed vector differs:\n got  %+v\n want %+v", got, want)
			}
		})
		t.Run(fmt.Sprintf("the key ID of %s is SHA-256(name, newline, 0x04, pubkey)[:4]", want.Name), func(t *testing.T) {
			parts := strings.SplitN(want.VKey, "+", 3)
			pub, err := base64.StdEncoding.DecodeString(parts[2])
			if err != nil || len(pub) != 33 || pub[0] != 0x04 {
				t.Fatalf("vkey key field = %x (err %v), want 0x04 || 32 bytes", pub, err)
			}
			h := sha256.Sum256(append([]byte(want.Name+"\n"), pub...))
			if id := hex.EncodeToString(h[:4]); id != want.KeyID || parts[1] != want.KeyID || parts[0] != want.Name {
				t.Fatalf("key ID by hand %s, vector %s, vkey %s", id, want.KeyID, parts[1])
			}
		})
		t.Run(fmt.Sprintf("the signature of %s verifies with ed25519 and with formats", want.Name), func(t *testing.T) {
			parts := strings.SplitN(want.VKey, "+", 3)
			pub, err := base64.StdEncoding.DecodeString(parts[2])
			if err != nil || len(pub) != 1+ed25519.PublicKeySize {
				t.Fatalf("vkey key field is %d bytes (err %v)", len(pub), err)
			}
			line := strings.TrimSuffix(strings.TrimPrefix(want.Signature, "— "+want.Name+" "), "\n")
			sig, err := base64.StdEncoding.DecodeString(line)
			if err != nil || len(sig) != 4+8+64 {
				t.Fatalf("signature is %d bytes (err %v), want key ID || timestamp || Ed25519", len(sig), err)
			}
			if hex.EncodeToString(sig[:4]) != want.KeyID || binary.BigEndian.Uint64(sig[4:12]) != uint64(want.Timestamp) {
				t.Fatalf("signature header %x, want key ID %s and timestamp %d", sig[:12], want.KeyID, want.Timestamp)
			}
			msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", want.Timestamp, want.Checkpoint)
			if !ed25519.Verify(pub[1:], []byte(msg), sig[12:]) {
				t.Fatal("crypto/ed25519 rejects the signature over the cosignature/v1 message")
			}
			v, err := fnote.NewVerifierForCosignatureV1(want.VKey)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open([]byte(want.Checkpoint+"\n"+want.Signature), note.VerifierList(v)); err != nil {
				t.Fatalf("formats' verifier rejects the vector: %v", err)
			}
			other := strings.Replace(want.Checkpoint, "\n", "x\n", 1)
			if _, err := note.Open([]byte(other+"\n"+want.Signature), note.VerifierList(v)); err == nil {
				t.Fatal("formats' verifier accepts the signature on another checkpoint")
			}
		})
	}
}

func TestCosignerRefuses(t *testing.T) {
	skey, _, err := GenerateKey(seededRand("refuse"), "w")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		skey string
		now  func() time.Time
		msg  string
	}{
		{"a clock before 1970 gives no signature", skey, fixedClock(-5), "o\n1\nAA==\n"},
		{"a clock at the epoch gives no signature", skey, fixedClock(0), "o\n1\nAA==\n"},
		{"a message that is not a checkpoint gives no signature", skey, nil, "just one line\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCosigner(tc.skey, fixedClock(10))
			if err != nil {
				t.Fatal(err)
			}
			c.now = tc.now
			if c.now == nil {
				c.now = time.Now
			}
			if _, err := c.Sign([]byte(tc.msg)); err == nil {
				t.Fatal("Sign succeeded")
			}
		})
	}
	for _, tc := range []struct{ name, skey string }{
		{"a verifier key is not a signer key", "w+12345678+AQIDBA=="},
		{"an ECDSA-typed signer key is refused", "PRIVATE+KEY+w+12345678+" + base64.StdEncoding.EncodeToString(append([]byte{2}, make([]byte, 32)...))},
		{"garbage is refused", "PRIVATE+KEY+w"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewCosigner(tc.skey, nil); err == nil {
				t.Fatal("NewCosigner accepted it")
			}
		})
	}
}

func TestParseLog(t *testing.T) {
	_, vkey, err := note.GenerateKey(seededRand("parse"), "log.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, line, origin string
		ok                 bool
	}{
		{"a bare key takes its name as origin", vkey, "log.example", true},
		{"an explicit origin overrides the key name", "other.example/log " + vkey, "other.example/log", true},
		{"surrounding spaces are ignored", "  " + vkey + "  ", "log.example", true},
		{"an origin with spaces is everything before the key", "go.sum database tree " + vkey, "go.sum database tree", true},
		{"spaces inside an origin are kept as they are", "a  b\tc " + vkey, "a  b\tc", true},
		{"a key that is not the last field is refused", vkey + " trailing words", "", false},
		{"an empty line is refused", "", "", false},
		{"a broken key is refused", "origin log.example+00000000+AAAA", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseLog(tc.line)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (l.Origin != tc.origin || l.Verifier.Name() != "log.example") {
				t.Fatalf("got origin %q verifier %q", l.Origin, l.Verifier.Name())
			}
		})
	}
	t.Run("the Go checksum database's own line names its origin and key", func(t *testing.T) {
		l, err := ParseLog("go.sum database tree sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")
		if err != nil || l.Origin != "go.sum database tree" || l.Verifier.Name() != "sum.golang.org" || l.Verifier.KeyHash() != 0x033de0ae {
			t.Fatalf("got %+v, %v", l, err)
		}
	})
	t.Run("a config file with comments and blank lines lists every log", func(t *testing.T) {
		cfg := "# logs\n\n" + vkey + " # the main log\nmirror.example " + vkey + "\n   \n"
		logs, err := ParseLogConfig(strings.NewReader(cfg))
		if err != nil || len(logs) != 2 || logs[0].Origin != "log.example" || logs[1].Origin != "mirror.example" {
			t.Fatalf("got %+v, %v", logs, err)
		}
	})
	t.Run("a bad line in a config file names its line number", func(t *testing.T) {
		_, err := ParseLogConfig(strings.NewReader(vkey + "\nbad line here too\n"))
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("err = %v, want a line 2 error", err)
		}
	})
}
