package status

import (
	"crypto/rand"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func TestWriteRate(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	tests := []struct {
		name    string
		samples []sample
		now     time.Time
		size    uint64
		want    float64
	}{
		{name: "no sample yet gives no rate", now: t0, size: 10, want: 0},
		{name: "growth over a minute is entries per second", samples: []sample{{t0, 100}}, now: t0.Add(time.Minute), size: 700, want: 10},
		{name: "the oldest kept sample is the base", samples: []sample{{t0, 0}, {t0.Add(30 * time.Second), 500}}, now: t0.Add(time.Minute), size: 600, want: 10},
		{name: "a tree smaller than the base (another log restored) gives no rate", samples: []sample{{t0, 100}}, now: t0.Add(time.Minute), size: 50, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Source{}
			for _, sm := range tc.samples {
				s.addSample(sm.at, sm.size)
			}
			if got := s.rate(tc.now, tc.size); got != tc.want {
				t.Fatalf("rate = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("only the last samples are kept", func(t *testing.T) {
		s := &Source{}
		for i := range 3 * rateSamples {
			s.addSample(t0.Add(time.Duration(i)*time.Second), uint64(i))
		}
		if len(s.samples) != rateSamples || s.samples[0].size != 2*rateSamples {
			t.Fatalf("%d samples from size %d, want %d from %d", len(s.samples), s.samples[0].size, rateSamples, 2*rateSamples)
		}
	})
}

func TestCosignedAt(t *testing.T) {
	logSkey, _, err := note.GenerateKey(rand.Reader, "log.test")
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(logSkey)
	if err != nil {
		t.Fatal(err)
	}
	wSkey, wVkey, err := note.GenerateKey(rand.Reader, "witness.test")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := fnote.NewSignerForCosignatureV1(wSkey)
	if err != nil {
		t.Fatal(err)
	}
	cosigVkey, err := fnote.VKeyToCosignatureV1(wVkey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(cosigVkey)
	if err != nil {
		t.Fatal(err)
	}
	text := "log.test\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	signedByLog, err := note.Sign(&note.Note{Text: text}, logSigner)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	cosigned, err := note.Sign(&note.Note{Text: text}, logSigner, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a cosigned checkpoint gives the time in the cosignature", func(t *testing.T) {
		at, ok := CosignedAt(cosigned, v)
		if !ok || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
			t.Fatalf("CosignedAt = %v, %t; want about now", at, ok)
		}
	})
	t.Run("a checkpoint without the witness's cosignature gives nothing", func(t *testing.T) {
		if at, ok := CosignedAt(signedByLog, v); ok {
			t.Fatalf("CosignedAt = %v for a checkpoint the witness did not sign", at)
		}
	})
	t.Run("no checkpoint gives nothing", func(t *testing.T) {
		if _, ok := CosignedAt(nil, v); ok {
			t.Fatal("CosignedAt found a cosignature in nothing")
		}
	})
}
