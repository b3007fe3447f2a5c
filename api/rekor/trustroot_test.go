package rekor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

func newVerifierKey(t *testing.T, origin string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// TestTrustMaterialIsAcceptedBySigstoreGo writes the trust material for two logs (a retired one
// and its successor) as JSON and loads it with sigstore-go, which must find each log under the log
// ID the log puts in its entries, with the key and validity given.
func TestTrustMaterialIsAcceptedBySigstoreGo(t *testing.T) {
	oldStart := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	newStart := oldStart.Add(90 * 24 * time.Hour)
	logs := []Log{
		{URL: "https://log2.example.org", VerifierKey: newVerifierKey(t, "log2.example.org"), Start: newStart},
		{URL: "https://log1.example.org/", VerifierKey: newVerifierKey(t, "log1.example.org"), Start: oldStart, End: newStart, Operator: "example.org"},
	}
	tr, err := TrustedRoot(logs...)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := SigningConfig(logs...)
	if err != nil {
		t.Fatal(err)
	}
	trJSON, err := protojson.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	scJSON, err := protojson.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("sigstore-go loads the trusted root and finds each log by its log ID", func(t *testing.T) {
		sg, err := root.NewTrustedRootFromJSON(trJSON)
		if err != nil {
			t.Fatalf("sigstore-go rejects the trusted root: %v", err)
		}
		if len(sg.RekorLogs()) != len(logs) {
			t.Fatalf("sigstore-go sees %d logs, want %d", len(sg.RekorLogs()), len(logs))
		}
		for _, l := range logs {
			id, err := KeyID(l.VerifierKey)
			if err != nil {
				t.Fatal(err)
			}
			tl, ok := sg.RekorLogs()[hex.EncodeToString(id)]
			if !ok {
				t.Fatalf("no log under ID %x", id)
			}
			_, pub, err := ParseEd25519VerifierKey(l.VerifierKey)
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := tl.PublicKey.(ed25519.PublicKey); !ok || !k.Equal(pub) {
				t.Errorf("%s: sigstore-go has key %v, want %x", l.URL, tl.PublicKey, pub)
			}
			if tl.BaseURL != l.URL || !tl.ValidityPeriodStart.Equal(l.Start.Truncate(time.Second)) || !tl.ValidityPeriodEnd.Equal(l.End.Truncate(time.Second)) {
				t.Errorf("%s: sigstore-go has %s valid %s–%s", l.URL, tl.BaseURL, tl.ValidityPeriodStart, tl.ValidityPeriodEnd)
			}
		}
	})
	t.Run("the trusted root lists the logs oldest first with their checkpoint key IDs", func(t *testing.T) {
		if got := tr.GetTlogs(); len(got) != 2 || got[0].GetBaseUrl() != logs[1].URL || got[1].GetBaseUrl() != logs[0].URL {
			t.Fatalf("tlogs in order %v", got)
		}
		for _, tl := range tr.GetTlogs() {
			if !bytes.Equal(tl.GetCheckpointKeyId().GetKeyId(), tl.GetLogId().GetKeyId()) {
				t.Errorf("%s: checkpointKeyId %x differs from logId %x", tl.GetBaseUrl(), tl.GetCheckpointKeyId().GetKeyId(), tl.GetLogId().GetKeyId())
			}
		}
		if got := tr.GetTlogs()[0].GetOperator(); got != "example.org" {
			t.Errorf("operator %q, want the one given", got)
		}
		if got := tr.GetTlogs()[1].GetOperator(); got != "log2.example.org" {
			t.Errorf("operator %q, want the URL's host", got)
		}
	})
	t.Run("sigstore-go loads the signing config and picks the current log", func(t *testing.T) {
		sg, err := root.NewSigningConfigFromJSON(scJSON)
		if err != nil {
			t.Fatalf("sigstore-go rejects the signing config: %v", err)
		}
		urls := sg.RekorLogURLs()
		if len(urls) != 2 || urls[0].URL != logs[0].URL || urls[0].MajorAPIVersion != 2 {
			t.Fatalf("rekor URLs %+v, want %s (API v2) first", urls, logs[0].URL)
		}
		picked, err := root.SelectServices(urls, sg.RekorLogURLsConfig(), []uint32{2}, newStart.Add(time.Hour))
		if err != nil || len(picked) != 1 || picked[0].URL != logs[0].URL {
			t.Fatalf("sigstore-go picks %v, %v; want %s", picked, err, logs[0].URL)
		}
	})
}

func TestTrustMaterialRefusesBadLogs(t *testing.T) {
	vkey := newVerifierKey(t, "log.example.org")
	start := time.Now()
	for _, tc := range []struct {
		name string
		log  Log
		want string
	}{
		{"a URL whose host is not the origin is refused", Log{URL: "https://other.example.org", VerifierKey: vkey, Start: start}, `differs from the log's origin "log.example.org"`},
		{"a URL that is not http or https is refused", Log{URL: "ftp://log.example.org", VerifierKey: vkey, Start: start}, "want an http or https URL"},
		{"a URL without a host is refused", Log{URL: "https://", VerifierKey: vkey, Start: start}, "want an http or https URL"},
		{"a key that is not a verifier key is refused", Log{URL: "https://log.example.org", VerifierKey: "log.example.org+00000000+AQ==", Start: start}, "log key"},
		{"a key without a start is refused", Log{URL: "https://log.example.org", VerifierKey: vkey}, "no start"},
		{"a validity that ends before it starts is refused", Log{URL: "https://log.example.org", VerifierKey: vkey, Start: start, End: start.Add(-time.Hour)}, "ends"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := TrustedRoot(tc.log); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("TrustedRoot error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("no logs at all is refused", func(t *testing.T) {
		if _, err := TrustedRoot(); err == nil {
			t.Error("TrustedRoot() succeeded")
		}
		if _, err := SigningConfig(); err == nil {
			t.Error("SigningConfig() succeeded")
		}
	})
}
