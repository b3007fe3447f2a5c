package monitor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseWatchKey checks the --watch-key parser: what it accepts is the DER inside the PEM block
// and parses as a PKIX public key.
func FuzzParseWatchKey(f *testing.F) {
	der, err := x509.MarshalPKIXPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der[:len(der)-1]}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der}))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseWatchKey(data)
		if err != nil {
			return
		}
		block, _ := pem.Decode(data)
		if block == nil || !bytes.Equal(block.Bytes, got) {
			t.Fatalf("returned DER %x is not the PEM block's", got)
		}
		if _, err := x509.ParsePKIXPublicKey(got); err != nil {
			t.Fatalf("accepted DER does not parse: %v", err)
		}
	})
}

// FuzzParseDigest checks the --watch-digest parser: an accepted digest has the length its
// algorithm names and its hex spelling is in the input.
func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add("sha384:" + strings.Repeat("AB", 48))
	f.Add(strings.Repeat("0", 128))
	f.Add("sha512:")
	f.Add("md5:00")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		want := map[string]int{"sha256": 32, "sha384": 48, "sha512": 64}
		alg, h, found := strings.Cut(s, ":")
		if found && alg != "" && want[alg] != len(d) || len(d) == 0 {
			t.Fatalf("accepted %q as a %d-byte digest", s, len(d))
		}
		if !found {
			h = alg
		}
		if !strings.EqualFold(h, hex.EncodeToString(d)) {
			t.Fatalf("digest %x is not the input's hex %q", d, h)
		}
	})
}

// FuzzInspect runs the entry matcher on arbitrary leaves, as a hostile log could serve them: it must
// not panic, and a match must give the reasons that hold, with the digest it matched on.
func FuzzInspect(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("..", "..", "..", "testdata", "*", "*.leaf.json"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed leaves in ../../../testdata: %v", err)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"kind":"hashedrekord","apiVersion":"0.0.2","spec":{"hashedRekordV002":{"data":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":{"content":"AA==","verifier":{"publicKey":{"rawBytes":"AAAA"}}}}}}`))
	f.Add([]byte(`{"kind":"dsse","apiVersion":"0.0.2","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"AAAA"},"signatures":[{"verifier":{"x509Certificate":{"rawBytes":"MAA="}}}]}}}`))
	watchDigest := []byte{0, 0, 0}
	m := &Monitor{keys: map[string]bool{"\x00\x00\x00": true}, digests: map[string]bool{string(watchDigest): true}}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		match, ok := m.inspect(leaf)
		if !ok {
			return
		}
		if len(match.Reasons) == 0 || match.KeySHA == "" {
			t.Fatalf("match without reasons or key: %+v", match)
		}
		for _, r := range match.Reasons {
			if r == "digest" && !strings.HasSuffix(match.Digest, ":"+hex.EncodeToString(watchDigest)) {
				t.Fatalf("digest match on %q, watching %x", match.Digest, watchDigest)
			}
		}
	})
}
