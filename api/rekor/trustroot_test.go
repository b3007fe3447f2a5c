package rekor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	trustv1 "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore-go/pkg/root"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
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

func TestAppendLog(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	first := Log{URL: "https://log2025.example.org", VerifierKey: newVerifierKey(t, "log2025.example.org"), Start: start}
	tr, err := TrustedRoot(first)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := SigningConfig(first)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's log, already retired, and a Rekor v1 service, which a new v2 shard does not replace.
	retired := Log{URL: "https://old.example.net", VerifierKey: newVerifierKey(t, "old.example.net"), Start: start.Add(-48 * time.Hour), End: start.Add(-24 * time.Hour)}
	other, err := TrustedRoot(retired)
	if err != nil {
		t.Fatal(err)
	}
	tr.Tlogs = append(other.Tlogs, tr.Tlogs...)
	v1 := &trustv1.Service{Url: "https://rekor.example.net", MajorApiVersion: 1, ValidFor: &commonv1.TimeRange{Start: timestamppb.New(start)}}
	sc.RekorTlogUrls = append(sc.RekorTlogUrls, v1)

	next := Log{URL: "https://log2026.example.org", VerifierKey: newVerifierKey(t, "log2026.example.org"), Start: start.Add(365 * 24 * time.Hour)}
	if err := AppendLog(tr, sc, next); err != nil {
		t.Fatal(err)
	}
	t.Run("the shard taking writes ends where the new one starts; others are untouched", func(t *testing.T) {
		ends := map[string]time.Time{}
		for _, l := range tr.GetTlogs() {
			if e := l.GetPublicKey().GetValidFor().GetEnd(); e != nil {
				ends[l.GetBaseUrl()] = e.AsTime()
			}
		}
		if !ends[first.URL].Equal(next.Start) || !ends[retired.URL].Equal(retired.End) || len(ends) != 2 {
			t.Fatalf("validity ends %v", ends)
		}
		if got := sc.GetRekorTlogUrls(); len(got) != 3 || got[0].GetUrl() != next.URL || !got[1].GetValidFor().GetEnd().AsTime().Equal(next.Start) || got[2].GetValidFor().GetEnd() != nil {
			t.Fatalf("signing config services %v", got)
		}
	})
	t.Run("appending a log the trusted root has is refused", func(t *testing.T) {
		if err := AppendLog(tr, sc, next); err == nil || !strings.Contains(err.Error(), "already has") {
			t.Fatalf("second append: %v", err)
		}
	})
	t.Run("a shard older than the one taking writes is refused", func(t *testing.T) {
		early := Log{URL: "https://early.example.org", VerifierKey: newVerifierKey(t, "early.example.org"), Start: start.Add(24 * time.Hour)}
		if err := AppendLog(tr, sc, early); err == nil {
			t.Fatal("appended a shard that starts before the current one")
		}
	})
}

func TestECDSALogInTrustedRoot(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := VerifierKey("log.example.org", &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := TrustedRoot(Log{URL: "https://log.example.org", VerifierKey: vkey, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	j, err := protojson.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := root.NewTrustedRootFromJSON(j)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := rekornote.KeyHash("log.example.org", &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := sg.RekorLogs()[hex.EncodeToString(want)]
	if !ok {
		t.Fatalf("sigstore-go finds no log under rekor-tiles' log ID %x", want)
	}
	if pub, ok := l.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&k.PublicKey) {
		t.Fatalf("sigstore-go has key %v", l.PublicKey)
	}
	if id, err := KeyID(vkey); err != nil || !bytes.Equal(id, want) {
		t.Fatalf("KeyID of the ECDSA verifier key %x, %v; want %x", id, err, want)
	}
}
