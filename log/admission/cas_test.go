package admission

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// FuzzParseCAs checks that no trusted CA file, PEM or JSON, makes ParseCAs panic, and that what it
// accepts holds at least one CA to verify against.
func FuzzParseCAs(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz root"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.Add([]byte(fmt.Sprintf(`{"certificateAuthorities":[{"uri":"https://ca.example","certChain":{"certificates":[{"rawBytes":%q}]},"validFor":{"start":"2024-01-01T00:00:00Z"}}]}`, base64.StdEncoding.EncodeToString(der))))
	f.Add([]byte(`{"certificateAuthorities":[]}`))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCAs(data)
		if err != nil {
			return
		}
		if len(c.cas) == 0 {
			t.Fatal("ParseCAs accepted a file with no CA")
		}
	})
}
