package explorer

import (
	"fmt"
	"strings"
	"testing"

	quirelog "github.com/quirelog/quire/log"
)

func TestSearchBoxReadings(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	pemKey := "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
	for _, tc := range []struct {
		name            string
		q, issuer, kind string
		want            string
	}{
		{"a prefixed digest is a digest", "sha256:" + hex64, "", "", "[digest] [digest sha256:" + hex64 + "]"},
		{"64 hex digits are both a digest and a key", hex64, "", "", "[digest key] [digest sha256:" + hex64 + " key " + hex64 + "]"},
		{"the kind picks one reading of 64 hex digits", hex64, "", "key", "[key] [key " + hex64 + "]"},
		{"a PEM block is a key", pemKey, "", "", "[key] [key " + pemKey + "]"},
		{"an email is an identity, with the issuer given", "a@example.com", "https://i.example", "", `[identity] [identity "a@example.com" with issuer "https://i.example"]`},
		{"an issuer alone is an issuer search", "", "https://i.example", "", `[identity] [issuer "https://i.example"]`},
		{"a kind that does not fit reads nothing", "a@example.com", "", "digest", "[] []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kinds, qs := readings(tc.q, tc.issuer, tc.kind)
			if qs == nil {
				qs = []quirelog.SearchQuery{}
			}
			if got := fmt.Sprint(kinds, qs); got != tc.want {
				t.Fatalf("readings = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNumbersAreDecimalOnly(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"0x10", 0, false}, {"1e3", 0, false},
		{"18446744073709551616", 0, false}, {" 1", 0, false},
	} {
		t.Run(fmt.Sprintf("%q reads as %d, %t", tc.in, tc.want, tc.ok), func(t *testing.T) {
			if got, ok := parseUint(tc.in); got != tc.want || ok != tc.ok {
				t.Fatalf("parseUint(%q) = %d, %t", tc.in, got, ok)
			}
		})
	}
}
