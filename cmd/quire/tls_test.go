package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// tlsTestClient is set by writeTestCert to trust the test's certificate.
var tlsTestClient *http.Client

// writeTestCert writes a self-signed certificate for 127.0.0.1 (0644) and its key (0600).
func writeTestCert(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	tlsTestClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return certPath, keyPath, pool
}

func TestServeOverTLS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, pool := writeTestCert(t, dir)
	s := startServe(t, dir, "--tls-cert", certPath, "--tls-key", keyPath)
	k := newECDSA(t)

	t.Run("REST writes work over HTTPS", func(t *testing.T) {
		if status, body := s.post(hashedRekord(t, k, []byte("over https"))); status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		}
	})
	t.Run("plain HTTP is not answered as HTTP", func(t *testing.T) {
		resp, err := http.Get(strings.Replace(s.baseURL, "https://", "http://", 1) + "/checkpoint")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("a plaintext request got the checkpoint")
			}
		}
	})
	t.Run("gRPC CreateEntry works over TLS", func(t *testing.T) {
		cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d := sha256.Sum256([]byte("over grpc tls"))
		sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		tle, err := rekorpb.NewRekorClient(cc).CreateEntry(ctx, &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
			HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: d[:], Signature: &rekorpb.Signature{Content: sig, Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
				KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			}}},
		}})
		if err != nil {
			t.Fatalf("CreateEntry over TLS: %v", err)
		}
		if tle.GetInclusionProof().GetCheckpoint() == nil {
			t.Fatal("answer without a checkpoint")
		}
	})
	s.stop()
}

func TestServeTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _ := writeTestCert(t, dir)
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{name: "--tls-cert without --tls-key is a usage error", args: []string{"--tls-cert", certPath}, code: 2, wantErr: "go together"},
		{name: "a TLS key readable by others is refused", args: []string{"--tls-cert", certPath, "--tls-key", keyPath}, code: 1, wantErr: "must not be readable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, tc.args...)
			code, _, stderr := runQuire(t, dir, args...)
			if code != tc.code || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("exit %d (want %d), stderr:\n%s", code, tc.code, stderr)
			}
			if strings.Contains(stderr, "PRIVATE KEY") {
				t.Errorf("key material in stderr")
			}
		})
	}
}
