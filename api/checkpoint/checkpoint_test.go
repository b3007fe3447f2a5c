package checkpoint_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/checkpoint"
)

// testKey is a throwaway note key, made for these tests only.
func testKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(strings.NewReader(strings.Repeat("k", 64)), "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func signed(t testing.TB, s note.Signer, text string) []byte {
	t.Helper()
	raw, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestUnverified(t *testing.T) {
	s, _ := testKey(t)
	root := bytes.Repeat([]byte{7}, 32)
	body := string(flog.Checkpoint{Origin: "example.com/log", Size: 1234, Hash: root}.Marshal())
	for _, tc := range []struct {
		name string
		raw  []byte
		want uint64
		err  string
	}{
		{"a signed checkpoint gives its size", signed(t, s, body), 1234, ""},
		{"extension lines after the hash are allowed", signed(t, s, body+"extension\n"), 1234, ""},
		{"a blank line inside the text is allowed", signed(t, s, body+"\nafter a blank line\n"), 1234, ""},
		{"a size of zero is a size", signed(t, s, string(flog.Checkpoint{Origin: "o", Hash: root}.Marshal())), 0, ""},
		{"text with no blank line is refused", []byte(body), 0, "no blank line"},
		{"a size that is not a number is refused", signed(t, s, "example.com/log\nmany\n"+base64.StdEncoding.EncodeToString(root)+"\n"), 0, "size invalid"},
		{"a missing hash line is refused", signed(t, s, "example.com/log\n12\n"), 0, "too few newlines"},
		{"an empty origin is refused", []byte("\n12\n" + base64.StdEncoding.EncodeToString(root) + "\n\n— sig\n"), 0, "empty origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := checkpoint.Unverified(tc.raw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Unverified = %+v, %v; want an error saying %q", cp, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cp.Size != tc.want || !bytes.Equal(cp.Hash, root) {
				t.Fatalf("Unverified = size %d hash %x, want %d %x", cp.Size, cp.Hash, tc.want, root)
			}
		})
	}
}

// FuzzUnverified checks Unverified against the verified reading: whenever a note opens with
// the key that signed it, Unverified finds the same checkpoint in it, and it never changes its
// input.
func FuzzUnverified(f *testing.F) {
	s, v := testKey(f)
	for _, size := range []uint64{0, 1, 255, 1 << 40} {
		f.Add(signed(f, s, string(flog.Checkpoint{Origin: v.Name(), Size: size, Hash: make([]byte, 32)}.Marshal())))
	}
	f.Add(signed(f, s, v.Name()+"\n12\nAAAA\nextra\n"))
	f.Add(signed(f, s, v.Name()+"\n12\n\nthe hash line was blank\n"))
	f.Add([]byte("origin\n12\n\n\n— sig"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		orig := bytes.Clone(raw)
		got, err := checkpoint.Unverified(raw)
		if !bytes.Equal(raw, orig) {
			t.Fatal("Unverified changed its input")
		}
		n, nerr := note.Open(raw, note.VerifierList(v))
		if nerr != nil {
			return
		}
		var want flog.Checkpoint
		if _, werr := want.Unmarshal([]byte(n.Text)); werr != nil {
			if err == nil {
				t.Fatalf("Unverified accepted %q, whose verified text does not parse: %v", raw, werr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Unverified refused a verified checkpoint: %v", err)
		}
		if got.Origin != want.Origin || got.Size != want.Size || !bytes.Equal(got.Hash, want.Hash) {
			t.Fatalf("Unverified = %+v, the verified text says %+v", got, want)
		}
	})
}
