package rekor_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/api/rekor/fulciotest"
)

func TestCertificateIdentity(t *testing.T) {
	ca, err := fulciotest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		leaf   fulciotest.Leaf
		sans   []string
		issuer string
	}{
		{"the issuer is read from extension .1.8", fulciotest.Leaf{Emails: []string{"a@example.com"}, Issuer: "https://accounts.example.com"}, []string{"a@example.com"}, "https://accounts.example.com"},
		{"the issuer is read from the older extension .1.1", fulciotest.Leaf{URIs: []string{"https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"}, Issuer: "https://token.actions.githubusercontent.com", OldIssuerExtension: true},
			[]string{"https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"}, "https://token.actions.githubusercontent.com"},
		{"names come emails first, then URIs, then DNS names", fulciotest.Leaf{DNSNames: []string{"b.example"}, URIs: []string{"https://u.example/x"}, Emails: []string{"e@example.com"}},
			[]string{"e@example.com", "https://u.example/x", "b.example"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := ca.Issue(&k.PublicKey, tc.leaf)
			if err != nil {
				t.Fatal(err)
			}
			id, err := rekor.ParseCertificateIdentity(der)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(id.SANs(), tc.sans) || id.Issuer != tc.issuer {
				t.Fatalf("SANs %q issuer %q; want %q and %q", id.SANs(), id.Issuer, tc.sans, tc.issuer)
			}
			want, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
			if !slices.Equal(id.KeyDER, want) {
				t.Fatal("the certificate's key is not the key certified")
			}
		})
	}
}

func TestParseKeyFingerprint(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	fp := rekor.KeyFingerprint(der)
	h := hex.EncodeToString(fp[:])
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"lowercase hex is the fingerprint", h, true},
		{"uppercase hex is the same", strings.ToUpper(h), true},
		{"a sha256: prefix is allowed", "sha256:" + h, true},
		{"the PEM key hashes to its fingerprint", pemKey, true},
		{"a PEM key with surrounding space is the same", "\n  " + pemKey + "\n", true},
		{"63 digits are refused", h[1:], false},
		{"text after the PEM block is refused", pemKey + "x", false},
		{"a PEM block of garbage is refused", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rekor.ParseKeyFingerprint(tc.in)
			if (err == nil) != tc.ok || (tc.ok && got != fp) {
				t.Fatalf("ParseKeyFingerprint = %x, %v; want ok=%t and %x", got, err, tc.ok, fp)
			}
		})
	}
}

// FuzzParseCertificateIdentity reads arbitrary bytes as a certificate: never a panic, and a
// certificate that parses names its key.
func FuzzParseCertificateIdentity(f *testing.F) {
	ca, err := fulciotest.NewCA()
	if err != nil {
		f.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range []fulciotest.Leaf{{Emails: []string{"a@example.com"}, Issuer: "https://i.example"}, {URIs: []string{"https://u.example"}, Issuer: "x", OldIssuerExtension: true}} {
		der, err := ca.Issue(&k.PublicKey, l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		id, err := rekor.ParseCertificateIdentity(der)
		if err == nil && len(id.KeyDER) == 0 {
			t.Fatal("a parsed certificate has no key")
		}
	})
}

// FuzzParseKeyFingerprint reads arbitrary search text as a key: never a panic.
func FuzzParseKeyFingerprint(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = rekor.ParseKeyFingerprint(s)
	})
}
