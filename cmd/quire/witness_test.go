package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

var (
	witnessBuildOnce sync.Once
	witnessBinPath   string
	witnessBuildErr  error
)

// witnessBinary builds the real quire-witness once per test run, next to the quire binary (so
// TestMain removes both).
func witnessBinary(t *testing.T) string {
	t.Helper()
	quireBinary(t)
	witnessBuildOnce.Do(func() {
		witnessBinPath = filepath.Join(binDir, "quire-witness")
		out, err := exec.Command("go", "build", "-o", witnessBinPath, "../quire-witness").CombinedOutput()
		if err != nil {
			witnessBuildErr = fmt.Errorf("go build quire-witness: %w\n%s", err, out)
		}
	})
	if witnessBuildErr != nil {
		t.Fatal(witnessBuildErr)
	}
	return witnessBinPath
}

// witnessProc is one quire-witness process; it can be killed and started again on the same
// address with the same state, as an operator restarting it would.
type witnessProc struct {
	t       *testing.T
	Name    string // the name in the policy file
	VKey    string // the witness's cosignature/v1 verifier key
	URL     string // the root URL logs POST add-checkpoint under
	dir     string
	logVKey string
	addr    string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	done    chan error
}

var witnessAddrRE = regexp.MustCompile(`msg="quire-witness listening" addr=(127\.0\.0\.1:\d+)`)

func newWitness(t *testing.T, dir, name, logVKey string) *witnessProc {
	t.Helper()
	out, err := exec.Command(witnessBinary(t), "keygen", "--name", name+".witness.test", "--out", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("quire-witness keygen: %v\n%s", err, out)
	}
	w := &witnessProc{t: t, Name: name, dir: dir, logVKey: logVKey, VKey: strings.TrimSpace(mustRead(t, filepath.Join(dir, "witness.pub")))}
	t.Cleanup(func() {
		if w.cmd != nil && w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	})
	w.start()
	w.URL = "http://" + w.addr
	return w
}

// start runs the witness on its address (a random port the first time) and waits until it is healthy.
func (w *witnessProc) start() {
	w.t.Helper()
	listen := w.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	w.cmd = exec.Command(witnessBinary(w.t), "serve",
		"--data-dir", filepath.Join(w.dir, "state"), "--key", filepath.Join(w.dir, "witness.key"),
		"--listen", listen, "--log", w.logVKey, "--rate-limit", "1000", "--rate-burst", "1000")
	pr, pw := io.Pipe()
	w.stderr, w.done = &syncBuffer{}, make(chan error, 1)
	w.cmd.Stderr = io.MultiWriter(w.stderr, pw)
	if err := w.cmd.Start(); err != nil {
		w.t.Fatalf("starting quire-witness: %v", err)
	}
	cmd, done := w.cmd, w.done
	go func() {
		err := cmd.Wait()
		pw.Close()
		done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := witnessAddrRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
		if !sent {
			close(addr)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			w.t.Fatalf("quire-witness exited before listening:\n%s", w.stderr)
		}
		w.addr = a
	case <-time.After(20 * time.Second):
		w.t.Fatalf("quire-witness did not report its address within 20s:\n%s", w.stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + w.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("quire-witness not healthy within 10s:\n%s", w.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the witness abruptly, as a crash or a network cut would.
func (w *witnessProc) kill() {
	w.t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		w.t.Fatalf("killing witness %s: %v", w.Name, err)
	}
	<-w.done
}

// verifier is the witness's cosignature/v1 verifier.
func (w *witnessProc) verifier() note.Verifier {
	w.t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(w.VKey)
	if err != nil {
		w.t.Fatalf("witness %s vkey %q: %v", w.Name, w.VKey, err)
	}
	return v
}

// cosigned says whether cp carries a valid cosignature of w.
func (w *witnessProc) cosigned(cp []byte) bool {
	_, err := note.Open(cp, note.VerifierList(w.verifier()))
	return err == nil
}

// witnessedLog is a real `quire serve` whose checkpoints three real witnesses cosign, 2 of 3.
type witnessedLog struct {
	*serveProc
	witnesses []*witnessProc
	group     tessera.WitnessGroup
	logV      note.Verifier
	origin    string
	logKey    string
}

func startWitnessedLog(t *testing.T, args ...string) *witnessedLog {
	t.Helper()
	work := t.TempDir()
	const origin = "log.witness.test"
	if code, _, stderr := runQuire(t, work, "keygen", "--origin", origin, "--out", "keys"); code != 0 {
		t.Fatalf("quire keygen: exit %d\n%s", code, stderr)
	}
	logVKey := strings.TrimSpace(mustRead(t, filepath.Join(work, "keys", pubFileName)))
	logV, err := note.NewVerifier(logVKey)
	if err != nil {
		t.Fatal(err)
	}
	l := &witnessedLog{logV: logV, origin: origin, logKey: mustRead(t, filepath.Join(work, "keys", keyFileName))}
	for _, name := range []string{"w1", "w2", "w3"} {
		l.witnesses = append(l.witnesses, newWitness(t, filepath.Join(work, name), name, logVKey))
	}

	tmpl, err := template.ParseFiles(filepath.Join("testdata", "witness", "policy.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var policy bytes.Buffer
	if err := tmpl.Execute(&policy, l.witnesses); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "policy.txt"), policy.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if l.group, err = tessera.NewWitnessGroupFromPolicy(policy.Bytes()); err != nil {
		t.Fatalf("policy:\n%s\n%v", policy.Bytes(), err)
	}
	l.serveProc = startServe(t, work, append([]string{
		"--key", filepath.Join("keys", keyFileName), "--origin", origin,
		"--witness-policy", "policy.txt", "--witness-timeout", "2s", "--shutdown-timeout", "5s",
	}, args...)...)
	return l
}

// write submits one signed entry and returns the HTTP status and, on 201, the entry.
func (l *witnessedLog) write(t *testing.T, body []byte) (int, *rekorv1.TransparencyLogEntry) {
	t.Helper()
	status, answer := l.post(body)
	if status != http.StatusCreated {
		return status, nil
	}
	tle := &rekorv1.TransparencyLogEntry{}
	if err := protojson.Unmarshal(answer, tle); err != nil {
		t.Fatalf("answer %s: %v", answer, err)
	}
	return status, tle
}

// checkpoint returns the log's /checkpoint and its tree size.
func (l *witnessedLog) checkpoint(t *testing.T) ([]byte, uint64) {
	t.Helper()
	status, raw := l.get("/checkpoint")
	if status != http.StatusOK {
		t.Fatalf("GET /checkpoint: status %d: %s", status, raw)
	}
	return raw, openCheckpoint(t, l.logV, raw).Size
}

// checkCovered checks that tle's checkpoint envelope is the log's, covers the entry and satisfies
// the witness group; it returns the envelope.
func (l *witnessedLog) checkCovered(t *testing.T, tle *rekorv1.TransparencyLogEntry) []byte {
	t.Helper()
	env := []byte(tle.GetInclusionProof().GetCheckpoint().GetEnvelope())
	cp := openCheckpoint(t, l.logV, env)
	if uint64(tle.GetLogIndex()) >= cp.Size {
		t.Fatalf("entry %d is not covered by the answer's checkpoint of size %d", tle.GetLogIndex(), cp.Size)
	}
	if !l.group.Satisfied(env) {
		t.Fatalf("the answer's checkpoint does not satisfy the 2-of-3 witness group:\n%s", env)
	}
	return env
}

// refusedRE matches the log's report of a publication the witness policy refused, with the size of
// the tree it tried to publish.
var refusedRE = regexp.MustCompile(`signing checkpoint for size (\d+): witness policy was not satisfied`)

// awaitRefusedPublication waits until the log reports that publishing a tree of at least size
// failed for want of a witness quorum.
func (l *witnessedLog) awaitRefusedPublication(t *testing.T, size uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range refusedRE.FindAllStringSubmatch(l.stderr.String(), -1) {
			if n, err := strconv.ParseUint(m[1], 10, 64); err == nil && n >= size {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log reported no refused publication of a tree of size %d or more within 20s:\n%s", size, l.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answer is an HTTP answer received on another goroutine.
type answer struct {
	status int
	body   []byte
	err    error
}

// postWithDeadline submits body with a server-side deadline (grpc-gateway's Grpc-Timeout header),
// the way a REST client bounds how long the log may keep it waiting.
func (l *witnessedLog) postWithDeadline(t *testing.T, body []byte, seconds int) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, l.baseURL+"/api/v2/log/entries", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Grpc-Timeout", strconv.Itoa(seconds)+"S")
	client := &http.Client{Timeout: time.Duration(seconds+10) * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST with a %ds deadline: %v", seconds, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, answer
}

func TestWitnessedLogFailsClosed(t *testing.T) {
	// The write waiting for a quorum below must outlast both witness outages of this test.
	l := startWitnessedLog(t, "--write-timeout", "55s")
	k := newECDSA(t)

	ok := t.Run("the policy is logged by witness name and URL, never with the log's key", func(t *testing.T) {
		logged := l.stderr.String()
		if !strings.Contains(logged, `msg="witness policy"`) || !strings.Contains(logged, "2 of {w1.witness.test, w2.witness.test, w3.witness.test}") {
			t.Errorf("no policy summary in the log:\n%s", logged)
		}
		for _, w := range l.witnesses {
			if !strings.Contains(logged, w.URL+"/add-checkpoint") {
				t.Errorf("witness URL %s not logged:\n%s", w.URL, logged)
			}
		}
		if strings.Contains(logged, strings.TrimSpace(l.logKey)) {
			t.Error("the log's private key appears in its log")
		}
	})
	ok = ok && t.Run("writes are answered with a checkpoint the 2-of-3 group cosigned", func(t *testing.T) {
		for i := range 3 {
			status, tle := l.write(t, hashedRekord(t, k, fmt.Appendf(nil, "quorum %d", i)))
			if status != http.StatusCreated {
				t.Fatalf("write %d: status %d", i, status)
			}
			env := l.checkCovered(t, tle)
			// The log keeps exactly what it published, cosignatures included, for monitors.
			status, body := l.get(fmt.Sprintf("/quire/v1/checkpoints?size=%d", tle.GetInclusionProof().GetTreeSize()))
			past := &rekorv1.Checkpoint{}
			if err := protojson.Unmarshal(body, past); status != http.StatusOK || err != nil || past.GetEnvelope() != string(env) {
				t.Fatalf("past checkpoint of size %d: status %d %s (%v), want the answer's envelope:\n%s",
					tle.GetInclusionProof().GetTreeSize(), status, body, err, env)
			}
		}
		raw, size := l.checkpoint(t)
		if size < 3 || !l.group.Satisfied(raw) {
			t.Fatalf("/checkpoint (size %d) does not satisfy the group:\n%s", size, raw)
		}
	})
	ok = ok && t.Run("the explorer's checkpoints page says which witness cosigned the latest checkpoint", func(t *testing.T) {
		_, size := l.checkpoint(t)
		status, page := l.get("/explorer/checkpoints")
		_, row, found := strings.Cut(string(page), fmt.Sprintf("<tr><td>%d</td>", size))
		row, _, _ = strings.Cut(row, "</tr>")
		_, note, _ := strings.Cut(row, "<pre>")
		note, _, _ = strings.Cut(note, "</pre>")
		// The page's claims are checked against the signed note it shows in the same row: the
		// log may republish the checkpoint with other cosignatures at any moment.
		shown := []byte(html.UnescapeString(note))
		if status != http.StatusOK || !found || openCheckpoint(t, l.logV, shown).Size != size {
			t.Fatalf("status %d; no row with the checkpoint of size %d:\n%s", status, size, page)
		}
		cosigners := 0
		for _, w := range l.witnesses {
			keyName, _, _ := strings.Cut(w.VKey, "+")
			want := keyName + ": no"
			if w.cosigned(shown) {
				want, cosigners = keyName+": cosigned ", cosigners+1
			}
			if !strings.Contains(row, want) {
				t.Errorf("the row of size %d does not say %q:\n%s", size, want, row)
			}
		}
		if cosigners < 2 {
			t.Errorf("the checkpoint shown has %d cosignatures, want the quorum's 2", cosigners)
		}
	})
	ok = ok && t.Run("each cosigning witness serves the log's latest checkpoint at GET /<sha256(origin)>/checkpoint", func(t *testing.T) {
		raw, _ := l.checkpoint(t)
		text := raw[:bytes.Index(raw, []byte("\n\n"))+1]
		h := sha256.Sum256([]byte(l.origin))
		path := "/" + hex.EncodeToString(h[:]) + "/checkpoint"
		cosigners := 0
		for _, w := range l.witnesses {
			if !w.cosigned(raw) {
				continue
			}
			cosigners++
			status, body := get(t, w.URL+path)
			if status != http.StatusOK {
				t.Fatalf("witness %s: GET %s: status %d: %s", w.Name, path, status, body)
			}
			if !bytes.HasPrefix(body, text) || !w.cosigned(body) || openCheckpoint(t, l.logV, body) == nil {
				t.Fatalf("witness %s serves\n%s\nnot the log's latest checkpoint with its cosignature:\n%s", w.Name, body, raw)
			}
		}
		if cosigners < 2 {
			t.Fatalf("the latest checkpoint has %d cosignatures, want 2", cosigners)
		}
		other := sha256.Sum256([]byte("unknown.example"))
		if status, _ := get(t, l.witnesses[0].URL+"/"+hex.EncodeToString(other[:])+"/checkpoint"); status != http.StatusNotFound {
			t.Fatalf("a witness answers %d for a log it never cosigned, want 404", status)
		}
	})
	ok = ok && t.Run("with one witness down publication goes on and still satisfies the group", func(t *testing.T) {
		l.witnesses[0].kill()
		_, before := l.checkpoint(t)
		for i := range 2 {
			status, tle := l.write(t, hashedRekord(t, k, fmt.Appendf(nil, "one down %d", i)))
			if status != http.StatusCreated {
				t.Fatalf("write %d: status %d", i, status)
			}
			env := l.checkCovered(t, tle)
			if !l.witnesses[1].cosigned(env) || !l.witnesses[2].cosigned(env) {
				t.Fatalf("the checkpoint lacks a cosignature of the two live witnesses:\n%s", env)
			}
		}
		if raw, after := l.checkpoint(t); after < before+2 || !l.group.Satisfied(raw) {
			t.Fatalf("/checkpoint went from size %d to %d, want +2 and cosigned:\n%s", before, after, raw)
		}
	})
	if !ok {
		return
	}

	var (
		stalled  uint64
		waiting  = make(chan answer, 1)
		timedOut = hashedRekord(t, k, []byte("timed out"))
	)
	ok = t.Run("with two witnesses down and fail-closed no checkpoint is published and writes time out", func(t *testing.T) {
		l.witnesses[1].kill()
		_, stalled = l.checkpoint(t)
		body := hashedRekord(t, k, []byte("waits for the quorum"))
		go func() {
			var a answer
			resp, err := http.Post(l.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
			if err == nil {
				a.status = resp.StatusCode
				a.body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			a.err = err
			waiting <- a
		}()
		start := time.Now()
		status, answer := l.postWithDeadline(t, timedOut, 2)
		if status != http.StatusGatewayTimeout || !bytes.Contains(answer, []byte("covered by a checkpoint")) {
			t.Fatalf("a write with a 2s deadline got %d %s, want 504 saying it was not covered in time", status, answer)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("the write's 2s deadline was answered after %v", d)
		}
		// Integration does not wait for witnesses: both entries are in the tree's tiles already.
		if status, body := l.get(fmt.Sprintf("/tile/entries/%s.p/%d", tileIndexPath(stalled/256), stalled%256+2)); status != http.StatusOK {
			t.Fatalf("the entries waiting for a quorum are not integrated: status %d: %s", status, body)
		}
		// The publisher has had its chance once it reports refusing the tree that holds both
		// waiting entries; only then does an unchanged /checkpoint show that the missing quorum,
		// and not timing, held them back.
		l.awaitRefusedPublication(t, stalled+2)
		if raw, size := l.checkpoint(t); size != stalled {
			t.Fatalf("/checkpoint grew from %d to %d without a quorum:\n%s", stalled, size, raw)
		}
		select {
		case a := <-waiting:
			t.Fatalf("a write was answered without a quorum: %d %s %v", a.status, a.body, a.err)
		default:
		}
	})
	ok = ok && t.Run("when a witness comes back publication resumes and covers the waiting entries", func(t *testing.T) {
		l.witnesses[0].start()
		select {
		case a := <-waiting:
			if a.err != nil || a.status != http.StatusCreated {
				t.Fatalf("the waiting write got %d %s %v, want 201", a.status, a.body, a.err)
			}
			tle := &rekorv1.TransparencyLogEntry{}
			if err := protojson.Unmarshal(a.body, tle); err != nil {
				t.Fatal(err)
			}
			l.checkCovered(t, tle)
		case <-time.After(20 * time.Second):
			t.Fatalf("the waiting write was not answered within 20s of a witness restart:\n%s", l.stderr)
		}
		// With w2 still down the quorum needs the restarted w1, whose recorded size is older than
		// the log's: Tessera's client must have followed its 409 (text/x.tlog.size) and retried.
		raw, size := l.checkpoint(t)
		if size < stalled+2 || !l.group.Satisfied(raw) || !l.witnesses[0].cosigned(raw) {
			t.Fatalf("/checkpoint has size %d (stalled at %d), want both waiting entries covered and cosigned:\n%s", size, stalled, raw)
		}
		resp, err := http.Post(l.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(timedOut))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		idx, err := strconv.ParseUint(resp.Header.Get("X-Log-Index"), 10, 64)
		if resp.StatusCode != http.StatusConflict || err != nil || idx < stalled || idx >= size {
			t.Fatalf("resubmitting the timed-out entry: status %d, X-Log-Index %q; want 409 and an index in [%d, %d)",
				resp.StatusCode, resp.Header.Get("X-Log-Index"), stalled, size)
		}
	})
	if ok {
		l.stop()
	}
}

func TestAWriteWithoutAQuorumIsAnsweredInTimeWithItsIndex(t *testing.T) {
	l := startWitnessedLog(t, "--write-timeout", "3s")
	k := newECDSA(t)
	if status, _ := l.write(t, hashedRekord(t, k, []byte("with a quorum"))); status != http.StatusCreated {
		t.Fatalf("a write with the quorum up: status %d", status)
	}
	l.witnesses[0].kill()
	l.witnesses[1].kill()
	body := hashedRekord(t, k, []byte("without a quorum"))
	var index string
	t.Run("with fail-closed witnessing and no quorum a write gets 503 with its index and Retry-After", func(t *testing.T) {
		// The client would wait a minute: the bound must be the server's.
		client := &http.Client{Timeout: time.Minute}
		start := time.Now()
		resp, err := client.Post(l.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("the write was not answered: %v", err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d after %v, want 503: %s", resp.StatusCode, time.Since(start), answer)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("answered after %v with --write-timeout 3s", d)
		}
		index = resp.Header.Get("X-Log-Index")
		if _, err := strconv.ParseUint(index, 10, 64); err != nil {
			t.Fatalf("X-Log-Index %q is not an index: %s", index, answer)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Fatalf("Retry-After %q, want a number of seconds", resp.Header.Get("Retry-After"))
		}
	})
	if index == "" {
		return
	}
	t.Run("once a witness is back the same request gets 409 with that index", func(t *testing.T) {
		l.witnesses[0].start()
		deadline := time.Now().Add(40 * time.Second)
		for {
			resp, err := http.Post(l.baseURL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusConflict:
				if got := resp.Header.Get("X-Log-Index"); got != index {
					t.Fatalf("409 with X-Log-Index %q, want the %s the 503 gave", got, index)
				}
				l.stop()
				return
			case resp.StatusCode != http.StatusServiceUnavailable:
				t.Fatalf("retry: status %d, want 409 (or 503 until publication resumes): %s", resp.StatusCode, answer)
			case time.Now().After(deadline):
				t.Fatalf("still 503 40s after a witness came back: %s", answer)
			}
		}
	})
}

func TestWitnessedLogFailsOpen(t *testing.T) {
	l := startWitnessedLog(t, "--witness-fail-open")
	k := newECDSA(t)
	t.Run("with the quorum up checkpoints are cosigned", func(t *testing.T) {
		status, tle := l.write(t, hashedRekord(t, k, []byte("open, quorum")))
		if status != http.StatusCreated {
			t.Fatalf("status %d", status)
		}
		l.checkCovered(t, tle)
	})
	t.Run("with two witnesses down publication goes on without the quorum", func(t *testing.T) {
		l.witnesses[0].kill()
		l.witnesses[1].kill()
		_, before := l.checkpoint(t)
		start := time.Now()
		status, tle := l.write(t, hashedRekord(t, k, []byte("open, no quorum")))
		if status != http.StatusCreated {
			t.Fatalf("status %d", status)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the write took %v", d)
		}
		env := []byte(tle.GetInclusionProof().GetCheckpoint().GetEnvelope())
		cp := openCheckpoint(t, l.logV, env)
		if uint64(tle.GetLogIndex()) >= cp.Size || cp.Size <= before {
			t.Fatalf("entry %d, checkpoint size %d (before: %d)", tle.GetLogIndex(), cp.Size, before)
		}
		if l.group.Satisfied(env) {
			t.Fatalf("a checkpoint satisfies the group with two of three witnesses dead:\n%s", env)
		}
		if raw, size := l.checkpoint(t); size < cp.Size || l.group.Satisfied(raw) {
			t.Fatalf("/checkpoint (size %d) should be the uncosigned one of size %d:\n%s", size, cp.Size, raw)
		}
	})
	l.stop()
}

func TestWitnessPolicySummary(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		failOpen bool
		want     []string
	}{
		{name: "a 2-of-3 policy is logged as its threshold, key names and URLs", policy: "policy-2-of-3.txt", want: []string{
			`quorum="2 of {witness-1.example, witness-2.example, witness-3.example}"`,
			"witness-1.example=http://127.0.0.1:3031/add-checkpoint",
			"witness-3.example=http://127.0.0.1:3033/add-checkpoint",
			"fail=\"closed:",
		}},
		{name: "a nested policy is logged as nested thresholds", policy: "policy-nested.txt", failOpen: true, want: []string{
			`quorum="2 of {witness-1.example, 1 of {witness-2.example, witness-3.example}}"`,
			"fail=\"open:",
		}},
		{name: "a policy without witnesses is logged with a warning", policy: "policy-none.txt", want: []string{
			`quorum="0 of {}"`,
			"published uncosigned",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("testdata", "witness", tc.policy)
			group, err := readWitnessPolicy(path)
			if err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			f := &serveFlags{witnessPolicy: path, witnessTimeout: tessera.DefaultWitnessTimeout, witnessFailOpen: tc.failOpen}
			if err := checkWitnessFlags(f, group, slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(logged.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logged.String())
				}
			}
		})
	}
	t.Run("a witness timeout that is not positive is a usage error", func(t *testing.T) {
		f := &serveFlags{witnessTimeout: 0}
		err := checkWitnessFlags(f, tessera.WitnessGroup{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want a usage error", err)
		}
	})
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// tileIndexPath is the tlog-tiles path form of a tile index ("x001/234", "000").
func tileIndexPath(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}
