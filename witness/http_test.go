package witness

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestAddCheckpointRefusals sends one request for every refusal that
// tlog-witness defines (and Quire's own 413) to the real HTTP handler, and
// checks that none of them changes what the witness has cosigned.
func TestAddCheckpointRefusals(t *testing.T) {
	a := newTestLog(t, "example.com/a", "log a", "a", 16)
	b := newTestLog(t, "example.com/b", "log b", "b", 16)
	forkA := newTestLog(t, "example.com/a", "log a", "fork", 16)
	impostorA := newTestLog(t, "example.com/a", "impostor", "a", 16)
	unknown := newTestLog(t, "example.com/unknown", "unknown", "u", 16)
	f := startWitness(t, t.TempDir(), 0, 0, a.config(t), b.config(t))

	if r := post(t, f.srv.URL, a.request(t, 0, 5)); r.status != http.StatusOK {
		t.Fatalf("setting up: first checkpoint got %d %q", r.status, r.body)
	}

	tamperedSig := func() []byte {
		cp := a.checkpoint(t, 8)
		i := bytes.LastIndex(cp, []byte(" "))
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(cp[i+1:])))
		if err != nil {
			t.Fatal(err)
		}
		sig[10] ^= 1
		cp = append(cp[:i+1], base64.StdEncoding.EncodeToString(sig)+"\n"...)
		return (&Request{OldSize: 5, Proof: mustProof(t, a, 5, 8), Checkpoint: cp}).Marshal()
	}
	badProof := func() []byte {
		p := mustProof(t, a, 5, 8)
		p[0][0] ^= 1
		return (&Request{OldSize: 5, Proof: p, Checkpoint: a.checkpoint(t, 8)}).Marshal()
	}
	withBody := func(prefix string, cp []byte) []byte { return append([]byte(prefix), cp...) }
	hash := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	signedText := func(l *testLog, text string) []byte {
		n, err := note.Sign(&note.Note{Text: text}, l.signer)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, tc := range []struct {
		name     string
		body     []byte
		status   int
		wantBody string // checked exactly when set
	}{
		// tlog-witness, "add-checkpoint": malformed bodies are 400.
		{"a body without an old size line is malformed", []byte("example.com/a\n5\n"), 400, ""},
		{"an old size with a leading zero is malformed", withBody("old 05\n\n", a.checkpoint(t, 8)), 400, ""},
		{"an old size with a sign is malformed", withBody("old +5\n\n", a.checkpoint(t, 8)), 400, ""},
		{"a proof line that is not base64 is malformed", withBody("old 5\n!!!!\n\n", a.checkpoint(t, 8)), 400, ""},
		{"a proof line of 31 bytes is malformed", withBody("old 5\n"+base64.StdEncoding.EncodeToString(make([]byte, 31))+"\n\n", a.checkpoint(t, 8)), 400, ""},
		{"64 proof lines are too many", withBody("old 5\n"+strings.Repeat(hash+"\n", 64)+"\n", a.checkpoint(t, 8)), 400, ""},
		{"a body without the empty line is malformed", withBody("old 5\n", a.checkpoint(t, 8)), 400, ""},
		{"a body with no checkpoint is malformed", []byte("old 5\n\n"), 400, ""},
		{"a checkpoint without a signature block is malformed", []byte("old 5\n\nexample.com/a\n8\n" + hash + "\n"), 400, ""},
		{"a signed checkpoint with a bad size line is malformed", withBody("old 5\n\n", signedText(a, "example.com/a\neight\n"+hash+"\n")), 400, ""},
		{"a signed checkpoint with a short root is malformed", withBody("old 5\n\n", signedText(a, "example.com/a\n8\nAAAA\n")), 400, ""},
		{"an old size above the checkpoint size is a bad request", a.request(t, 9, 8), 400, ""},
		// "If the checkpoint origin is unknown ... 404 Not Found."
		{"an unknown origin is not found", unknown.request(t, 0, 3), 404, ""},
		// "403 Forbidden if either no signature from a trusted key ... or a
		// signature line's key name and ID match a trusted key but the
		// signature itself fails to verify."
		{"a checkpoint signed only by an untrusted key is forbidden", impostorA.request(t, 5, 8), 403, ""},
		{"a trusted key's signature that does not verify is forbidden", tamperedSig(), 403, ""},
		// "If it doesn't match, the witness MUST respond with a 409
		// Conflict ... body ... the tree size of the latest cosigned
		// checkpoint in decimal, followed by a newline."
		{"a stale old size conflicts and names the recorded size", a.request(t, 3, 8), 409, "5\n"},
		{"old size 0 for a cosigned log conflicts", a.request(t, 0, 8), 409, "5\n"},
		{"a rollback below the recorded size conflicts", a.request(t, 4, 4), 409, "5\n"},
		{"a log never cosigned reports size 0", b.request(t, 4, 8), 409, "0\n"},
		// "If ... a Merkle Consistency Proof doesn't verify ... 422."
		{"a consistency proof that does not verify is unprocessable", badProof(), 422, ""},
		{"a proof from a forked history is unprocessable", forkA.request(t, 5, 8), 422, ""},
		{"a proof for the right sizes but too short is unprocessable", (&Request{OldSize: 5, Proof: mustProof(t, a, 5, 8)[1:], Checkpoint: a.checkpoint(t, 8)}).Marshal(), 422, ""},
		// "If the old size matches the checkpoint size, the witness MUST
		// check that the root hashes are also identical ... 422" (current
		// text; v1.0.0 said 409).
		{"a fork at the recorded size is unprocessable", forkA.request(t, 5, 5), 422, ""},
		{"a proof between equal sizes is unprocessable", (&Request{OldSize: 5, Proof: mustProof(t, a, 4, 5), Checkpoint: a.checkpoint(t, 5)}).Marshal(), 422, ""},
		// "If the proof is not empty when the old size is zero ... 422."
		{"old size 0 with a proof is unprocessable", (&Request{OldSize: 0, Proof: mustProof(t, b, 2, 8), Checkpoint: b.checkpoint(t, 8)}).Marshal(), 422, ""},
		// "A checkpoint of size zero MUST have the root hash of the empty
		// tree ... Otherwise ... 422" (current text only).
		{"an empty checkpoint with a non-empty root is unprocessable", withBody("old 0\n\n", signedText(b, "example.com/b\n0\n"+hash+"\n")), 422, ""},
		// Quire's bound on the body.
		{"a body over 16 KiB is too large", append(a.request(t, 5, 8), bytes.Repeat([]byte("x"), MaxBodySize)...), 413, ""},
		{"a 1 MiB body of proof lines is too large, not malformed", withBody("old 5\n"+strings.Repeat(hash+"\n", (1<<20)/45)+"\n", a.checkpoint(t, 8)), 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, f.srv.URL, tc.body)
			t.Logf("answer: %d %q", r.status, r.body)
			if r.status != tc.status {
				t.Fatalf("got status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if tc.status == http.StatusConflict {
				if ct := r.header.Values("Content-Type"); len(ct) != 1 || ct[0] != "text/x.tlog.size" {
					t.Errorf("409 Content-Type = %q, want exactly text/x.tlog.size", ct)
				}
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body = %q, want %q", r.body, tc.wantBody)
			}
		})
	}

	t.Run("refusals leave the cosigned state at size 5", func(t *testing.T) {
		st := f.w.Logs()
		if len(st) != 2 || !st[0].Cosigned || st[0].Size != 5 || st[1].Cosigned {
			t.Fatalf("state after refusals = %+v", st)
		}
		if r := post(t, f.srv.URL, a.request(t, 5, 8)); r.status != http.StatusOK {
			t.Fatalf("the next consistent checkpoint got %d %q", r.status, r.body)
		}
	})
	t.Run("a GET on add-checkpoint is not allowed", func(t *testing.T) {
		if r := get(t, f.srv.URL+"/add-checkpoint"); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("got %d, want 405", r.status)
		}
	})
}

// TestCheckpointsAreReadStrictly sends checkpoints that x/mod's note.Open and formats' parser
// accept but C2SP does not, each to a witness that has cosigned size 5 and would cosign size 8.
func TestCheckpointsAreReadStrictly(t *testing.T) {
	a := newTestLog(t, "example.com/a", "log a", "a", 8)
	signedText := func(text string) []byte {
		n, err := note.Sign(&note.Note{Text: text}, a.signer)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// lenient changes the last data character of canonical base64 so that it sets padding bits
	// Go's lenient decoder ignores: the same bytes, in an encoding C2SP does not allow.
	lenient := func(b64 string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		i := len(strings.TrimRight(b64, "=")) - 1
		return b64[:i] + string(alphabet[strings.IndexByte(alphabet, b64[i])+1]) + b64[i+1:]
	}
	// to8 moves a from the recorded size 5 to a checkpoint of size 8 with a real proof.
	to8 := func(cp []byte) []byte {
		return (&Request{OldSize: 5, Proof: mustProof(t, a, 5, 8), Checkpoint: cp}).Marshal()
	}
	root8 := func() string {
		a.grow(8)
		return base64.StdEncoding.EncodeToString(a.tree.HashAt(8))
	}
	lastSigLine := func(cp []byte) (before []byte, b64 string) {
		i := bytes.LastIndex(cp, []byte(" "))
		return cp[:i+1], strings.TrimSpace(string(cp[i+1:]))
	}
	lenientSig := func() []byte {
		before, b64 := lastSigLine(a.checkpoint(t, 8))
		return to8(append(before, lenient(b64)+"\n"...))
	}
	corruptSecondSig := func() []byte {
		cp := a.checkpoint(t, 8)
		_, b64 := lastSigLine(cp)
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		sig[10] ^= 1
		return to8(append(cp, "— example.com/a "+base64.StdEncoding.EncodeToString(sig)+"\n"...))
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"a well-formed checkpoint is cosigned", to8(a.checkpoint(t, 8)), 200},
		// tlog-checkpoint: the size is decimal "with no leading zeroes".
		{"a checkpoint size with a leading zero is malformed", to8(signedText("example.com/a\n08\n" + root8() + "\n")), 400},
		// signed-note and tlog-checkpoint encode in base64, which RFC 4648 section 3.5 makes
		// canonical: no padding bits set.
		{"a root hash in non-canonical base64 is malformed", to8(signedText("example.com/a\n8\n" + lenient(root8()) + "\n")), 400},
		{"a signature in non-canonical base64 is malformed", lenientSig(), 400},
		// tlog-witness, current text: 403 when "a signature line's key name and ID match a
		// trusted key but the signature itself fails to verify", whatever line came before.
		{"a corrupted line of a trusted key is forbidden after a valid one", corruptSecondSig(), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startWitness(t, t.TempDir(), 0, 0, a.config(t))
			if r := post(t, f.srv.URL, a.request(t, 0, 5)); r.status != http.StatusOK {
				t.Fatalf("setting up: first checkpoint got %d %q", r.status, r.body)
			}
			r := post(t, f.srv.URL, tc.body)
			if r.status != tc.status {
				t.Fatalf("got status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if st := f.w.Logs(); tc.status != http.StatusOK && st[0].Size != 5 {
				t.Fatalf("a refused checkpoint moved the cosigned size to %d", st[0].Size)
			}
		})
	}
}

func mustProof(t testing.TB, l *testLog, from, to uint64) [][]byte {
	t.Helper()
	l.grow(to)
	p, err := l.tree.ConsistencyProof(from, to)
	if err != nil {
		t.Fatal(err)
	}
	// The tree hands out its own node slices; copy so tests may corrupt them.
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = bytes.Clone(h)
	}
	return out
}

// TestAddCheckpointAccepts walks one log through the accepted transitions
// and checks each answer the way Tessera's client does.
func TestAddCheckpointAccepts(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 64)
	f := startWitness(t, t.TempDir(), 0, 0, l.config(t))
	wv := f.cos.Verifier()

	for _, step := range []struct {
		name      string
		old, size uint64
	}{
		{"an empty checkpoint is cosigned from old size 0", 0, 0},
		{"the first real checkpoint is cosigned from size 0", 0, 1},
		{"growth by one leaf is cosigned", 1, 2},
		{"the same checkpoint again is cosigned", 2, 2},
		{"growth across a power of two is cosigned", 2, 17},
		{"growth to a large size is cosigned", 17, 63},
	} {
		t.Run(step.name, func(t *testing.T) {
			cp := l.checkpoint(t, step.size)
			before := time.Now().Add(-time.Second)
			r := post(t, f.srv.URL, l.request(t, step.old, step.size))
			if r.status != http.StatusOK {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			got := openCosigned(t, cp, r.body, wv)
			if got.Size != step.size {
				t.Errorf("cosigned size %d, want %d", got.Size, step.size)
			}
			n, _ := note.Open(append(cp, r.body...), note.VerifierList(wv))
			ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
			if err != nil || ts.Before(before.Truncate(time.Second)) || ts.After(time.Now().Add(time.Second)) {
				t.Errorf("cosignature timestamp %v (err %v) is not now", ts, err)
			}
		})
	}
}

func TestMonitoringRead(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 8)
	f := startWitness(t, t.TempDir(), 0, 0, l.config(t))
	url := f.srv.URL + "/" + OriginHash(l.origin) + "/checkpoint"

	t.Run("a log never cosigned is not found", func(t *testing.T) {
		if r := get(t, url); r.status != http.StatusNotFound {
			t.Fatalf("got %d, want 404", r.status)
		}
	})
	t.Run("an unknown origin hash is not found", func(t *testing.T) {
		if r := get(t, f.srv.URL+"/"+OriginHash("nope")+"/checkpoint"); r.status != http.StatusNotFound {
			t.Fatalf("got %d, want 404", r.status)
		}
	})
	t.Run("the latest cosigned checkpoint carries the log and witness signatures", func(t *testing.T) {
		if r := post(t, f.srv.URL, l.request(t, 0, 8)); r.status != http.StatusOK {
			t.Fatalf("add-checkpoint got %d %q", r.status, r.body)
		}
		r := get(t, url)
		if r.status != http.StatusOK {
			t.Fatalf("got %d, want 200", r.status)
		}
		n, err := note.Open([]byte(r.body), note.VerifierList(l.config(t).Verifier, f.cos.Verifier()))
		if err != nil {
			t.Fatalf("served checkpoint does not verify: %v", err)
		}
		if len(n.Sigs) != 2 || len(n.UnverifiedSigs) != 0 {
			t.Fatalf("served checkpoint has %d verified and %d unverified signatures, want 2 and 0", len(n.Sigs), len(n.UnverifiedSigs))
		}
		if !strings.HasPrefix(n.Text, l.origin+"\n8\n") {
			t.Fatalf("served checkpoint is %q, want size 8", n.Text)
		}
	})
}

func TestRateLimit(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 8)
	other := newTestLog(t, "example.com/other", "other", "o", 8)
	f := startWitness(t, t.TempDir(), 0.5, 1, l.config(t), other.config(t))

	t.Run("the first request within the burst is served", func(t *testing.T) {
		if r := post(t, f.srv.URL, l.request(t, 0, 4)); r.status != http.StatusOK {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})
	t.Run("the next request for the same log gets 429 with Retry-After", func(t *testing.T) {
		r := post(t, f.srv.URL, l.request(t, 4, 8))
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("got %d %q, want 429", r.status, r.body)
		}
		s, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || s < 1 || s > 2 {
			t.Fatalf("Retry-After = %q, want 1 or 2 seconds", r.header.Get("Retry-After"))
		}
	})
	t.Run("another log has its own budget", func(t *testing.T) {
		if r := post(t, f.srv.URL, other.request(t, 0, 4)); r.status != http.StatusOK {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})
	t.Run("a refused request changed nothing", func(t *testing.T) {
		if st := f.w.Logs(); st[0].Size != 4 {
			t.Fatalf("size = %d, want 4", st[0].Size)
		}
	})
}

// TestRateLimitIgnoresUnsignedFloods checks that requests without a valid log
// signature cannot use up a log's rate budget.
func TestRateLimitIgnoresUnsignedFloods(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 8)
	impostor := newTestLog(t, "example.com/log", "impostor", "l", 8)
	f := startWitness(t, t.TempDir(), 0.5, 1, l.config(t))
	for i := 0; i < 20; i++ {
		if r := post(t, f.srv.URL, impostor.request(t, 0, 4)); r.status != http.StatusForbidden {
			t.Fatalf("impostor request %d got %d, want 403", i, r.status)
		}
	}
	if r := post(t, f.srv.URL, l.request(t, 0, 4)); r.status != http.StatusOK {
		t.Fatalf("the real log got %d %q after an unsigned flood", r.status, r.body)
	}
}

// untouchedBody is a request body that records whether the client ever read it to send it.
type untouchedBody struct {
	mu   sync.Mutex
	read bool
}

func (b *untouchedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.read = true
	b.mu.Unlock()
	return copy(p, bytes.Repeat([]byte("x"), len(p))), nil
}

func (b *untouchedBody) wasRead() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

func TestAnOversizeBodyIsRefusedBeforeItIsSent(t *testing.T) {
	l := newTestLog(t, "example.com/log", "log", "l", 8)
	f := startWitness(t, t.TempDir(), 0, 0, l.config(t))
	body := &untouchedBody{}
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/add-checkpoint", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Expect", "100-continue")
	// The client waits for "100 Continue" long enough that only the server's answer can make it
	// skip the body.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", resp.StatusCode, answer)
	}
	if body.wasRead() {
		t.Error("the server asked for the body of a request it refused for its declared length")
	}
}
