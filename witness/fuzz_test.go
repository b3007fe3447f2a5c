package witness

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// specExample is the request body given in tlog-witness, "add-checkpoint".
const specExample = `old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
`

func TestParseRequestSpecExample(t *testing.T) {
	r, err := ParseRequest([]byte(specExample))
	if err != nil {
		t.Fatalf("the spec's own example does not parse: %v", err)
	}
	if r.OldSize != 20852014 || len(r.Proof) != 4 || !bytes.HasPrefix(r.Checkpoint, []byte("example.com/behind-the-sofa\n20852163\n")) {
		t.Fatalf("parsed %d, %d proof lines, checkpoint %q", r.OldSize, len(r.Proof), r.Checkpoint)
	}
}

// FuzzParseRequest checks that the add-checkpoint parser never panics, that
// everything it refuses is a 400, and that everything it accepts is in the
// spec's canonical form: re-encoding gives back the exact input.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte("old 0\n\nexample.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAAAAAA\n"))
	f.Add([]byte("old 01\n\nx\n"))
	f.Add([]byte("old 18446744073709551616\n\nx\n"))
	f.Add([]byte("old 5\n" + strings.Repeat("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n", 64) + "\nx\n"))
	f.Add([]byte("old 5\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkax=\n\nx\n"))
	f.Add([]byte("old 5\r\n\r\nx\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			if StatusOf(err) != http.StatusBadRequest {
				t.Fatalf("refusal %v has status %d, want 400", err, StatusOf(err))
			}
			return
		}
		if len(r.Proof) > MaxProofLines || len(r.Checkpoint) == 0 {
			t.Fatalf("accepted %d proof lines and a %d-byte checkpoint", len(r.Proof), len(r.Checkpoint))
		}
		for _, h := range r.Proof {
			if len(h) != hashSize {
				t.Fatalf("accepted a %d-byte proof hash", len(h))
			}
		}
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("re-encoding %q gives %q", body, got)
		}
	})
}

// FuzzParseLogConfig checks the log list parser never panics and that each
// log it accepts has an origin (spaces allowed inside, not around it) and a
// verifier.
func FuzzParseLogConfig(f *testing.F) {
	f.Add("# comment\nexample.com/log+d7c4ab0e+AaXwDMxmkFqZaZ6dG1mjZUOBGbaIA98k+7/9RQ1nqAXm\n")
	f.Add("origin example.com/log+d7c4ab0e+AaXwDMxmkFqZaZ6dG1mjZUOBGbaIA98k+7/9RQ1nqAXm # x\n\n")
	f.Add("a b c\n")
	f.Add("go.sum database tree sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8\n")
	f.Add("w+ef8c723d+BA11UHVOCACl0jfu9YJgNXZrmz5aFYaKlAqyiZWHiOOw\n")
	f.Fuzz(func(t *testing.T, cfg string) {
		logs, err := ParseLogConfig(strings.NewReader(cfg))
		if err != nil {
			return
		}
		for _, l := range logs {
			if l.Origin == "" || l.Verifier == nil || strings.ContainsAny(l.Origin, "\n#") || strings.TrimSpace(l.Origin) != l.Origin {
				t.Fatalf("accepted log %+v", l)
			}
		}
	})
}

// FuzzOpenCheckpoint checks the strict signed-checkpoint reader: it never
// panics, refuses with 400 or 403 only, and accepts only checkpoints in
// canonical form (the parsed checkpoint encodes back to the start of the
// signed text) that the trusted key signed, since the fuzzer cannot forge it.
func FuzzOpenCheckpoint(f *testing.F) {
	l := newTestLog(f, "example.com/log", "log", "l", 16)
	trusted := note.VerifierList(l.config(f).Verifier)
	signed := map[string]bool{}
	for _, size := range []uint64{0, 1, 16} {
		cp := l.checkpoint(f, size)
		signed[string(cp[:bytes.Index(cp, []byte("\n\n"))+1])] = true
		f.Add(cp)
	}
	_, spec, _ := strings.Cut(specExample, "\n\n")
	f.Add([]byte(spec))
	f.Add([]byte("example.com/log\n016\nAAAA\n\n— example.com/log AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, cp, err := openCheckpoint(raw, trusted)
		if err != nil {
			if st := StatusOf(err); st != http.StatusBadRequest && st != http.StatusForbidden {
				t.Fatalf("refusal %v has status %d, want 400 or 403", err, st)
			}
			return
		}
		if !signed[n.Text] {
			t.Fatalf("accepted a checkpoint the log never signed: %q", raw)
		}
		if !strings.HasPrefix(n.Text, string(cp.Marshal())) {
			t.Fatalf("parsed %+v, which does not encode back to %q", cp, n.Text)
		}
	})
}

// FuzzAddCheckpoint drives whole requests through a real witness (Pebble on
// disk): it must answer every body with one of the statuses tlog-witness
// defines, and never cosign a body the log did not sign, since the fuzzer
// cannot forge the log's Ed25519 signature.
func FuzzAddCheckpoint(f *testing.F) {
	l := newTestLog(f, "example.com/log", "log", "l", 16)
	w, err := New(Config{Path: f.TempDir(), Signer: newCosigner(f, "w"), Logs: []Log{l.config(f)}, RateLimit: 1e9, RateBurst: 1e9, Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { w.Close() })
	valid := map[string]bool{}
	for _, s := range [][2]uint64{{0, 0}, {0, 3}, {3, 9}, {9, 16}, {5, 16}} {
		b := l.request(f, s[0], s[1])
		valid[string(b)] = true
		f.Add(b)
	}
	f.Add([]byte(specExample))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := w.AddCheckpoint(context.Background(), body)
		switch st := StatusOf(err); st {
		case 200:
			if !valid[string(body)] {
				t.Fatalf("cosigned a body the test log never signed: %q", body)
			}
		case 400, 403, 404, 409, 413, 422:
		default:
			t.Fatalf("status %d (%v) is not one tlog-witness defines", st, err)
		}
	})
}
