package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/client/loadgen"
)

func TestKeygenWritesAPrivateEd25519PKCS8Key(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signer.pem")
	if err := run([]string{"keygen", "-out", path}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PKCS#8 PEM block: %q", data)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := key.(ed25519.PrivateKey); !ok {
		t.Fatalf("key is %T, want Ed25519", key)
	}
	if err := run([]string{"keygen", "-out", path}, &bytes.Buffer{}); err == nil {
		t.Error("keygen overwrote an existing key")
	}
}

func TestPortsAreDistinct(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"ports", "-n", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range strings.Fields(out.String()) {
		if seen[p] {
			t.Fatalf("port %s twice in %q", p, out.String())
		}
		seen[p] = true
	}
	if len(seen) != 5 {
		t.Fatalf("%d ports, want 5", len(seen))
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"the sink refuses a non-loopback address", []string{"sink", "-listen", "0.0.0.0:0"}, "not a loopback"},
		{"wait gives up on a dead port", []string{"wait", "-url", "http://127.0.0.1:1/healthz", "-timeout", "300ms"}, "not ready"},
		{"table wants NAME=FILE", []string{"table", "quire.json"}, "want NAME=FILE"},
		{"table wants A/B ratios", []string{"table", "-ratio", "quire", "q=testdata/quire-256.json"}, "want A/B"},
		{"an unknown subcommand is named", []string{"frob"}, `"frob"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestTablePrintsRowsAndRatios(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"table", "-ratio", "quire/rekor-tiles",
		"quire=testdata/quire-256.json", "quire=testdata/quire-open.json", "rekor-tiles=testdata/rekor-256.json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"quire        closed     256         -     6000.0      40.0      60.0     100.0  none",
		"quire        open      2048      2000     2000.0      80.0     150.0     250.0  none",
		"rekor-tiles  closed     256         -     1500.0     160.0     300.0     400.0  503=12",
		"closed loop, 256 workers       entries/s 4.00x   p50 0.25x   p99 0.25x",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "open loop, 2000/s") {
		t.Errorf("a ratio was printed for a load only one server ran:\n%s", got)
	}

	out.Reset()
	if err := run([]string{"table", "-ratio", "quire/rekor-tiles", "quire=testdata/quire-256.json"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "ratio") {
		t.Errorf("a ratio heading without a pair to compare:\n%s", out.String())
	}
}

func TestTheVerifyingSinkAnswersOnlyRequestsThatVerify(t *testing.T) {
	gen, err := loadgen.NewGenerator(client.KeyECDSAP256, 2)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := gen.Sign()
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(signed, &req); err != nil {
		t.Fatal(err)
	}
	hr := req["hashedRekordRequestV002"].(map[string]any)
	hr["digest"] = base64.StdEncoding.EncodeToString(make([]byte, 32))
	forged, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		verify bool
		body   []byte
		want   int
	}{
		{"a verifying sink accepts a signed request", true, signed, http.StatusCreated},
		{"a verifying sink refuses a request whose digest was changed", true, forged, http.StatusBadRequest},
		{"a verifying sink refuses what is not a request", true, []byte("{"), http.StatusBadRequest},
		{"a plain sink accepts anything", false, []byte("{"), http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(sinkHandler(tc.verify))
			defer srv.Close()
			for range 2 { // the second time, a verifying sink has the key parsed already
				resp, err := http.Post(srv.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
				}
			}
		})
	}
}
