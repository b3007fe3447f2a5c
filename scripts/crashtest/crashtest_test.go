package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/storage/mysql/mysqltest"
)

// binaries builds quire and quire-witness once for all tests of the package: the crash test must
// SIGKILL real processes, so they cannot run in the test binary.
var binaries = struct {
	once                sync.Once
	dir                 string
	quire, witness, err string
}{}

func buildBinaries(t *testing.T) (quire, witness string) {
	t.Helper()
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "crashtest-bin-")
		if err != nil {
			binaries.err = err.Error()
			return
		}
		binaries.dir = dir
		for _, b := range []struct{ pkg, out string }{
			{"github.com/quirelog/quire/cmd/quire", "quire"},
			{"github.com/quirelog/quire/cmd/quire-witness", "quire-witness"},
		} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg).CombinedOutput()
			if err != nil {
				binaries.err = "go build " + b.pkg + ": " + err.Error() + ": " + string(out)
				return
			}
		}
		binaries.quire, binaries.witness = filepath.Join(dir, "quire"), filepath.Join(dir, "quire-witness")
	})
	if binaries.err != "" {
		t.Fatalf("building binaries: %s", binaries.err)
	}
	return binaries.quire, binaries.witness
}

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.Stop()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// TestCrashtest is the CI run of the crash test: five SIGKILLs of quire serve under load and three
// of quire-witness, with every check of the full run.
func TestCrashtest(t *testing.T) {
	quire, witness := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-quire", quire, "-quire-witness", witness, "-quick", "-cycles", "5", "-witness-cycles", "3",
		"-workdir", t.TempDir(), "-v"}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code != 0 {
		t.Fatalf("crashtest exited %d; stdout:\n%s", code, stdout.String())
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^cycles=5 acknowledged=[1-9][0-9]* lost=0 inconsistent=0$`),
		regexp.MustCompile(`(?m)^witness cycles=3 cosigned=[1-9][0-9]* inconsistent=0$`),
	} {
		if !want.MatchString(stdout.String()) {
			t.Errorf("stdout does not match %s:\n%s", want, stdout.String())
		}
	}
}

// tesseraFsck installs Tessera's fsck command v1.0.4 from the module proxy into a test directory.
func tesseraFsck(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/transparency-dev/tessera/cmd/fsck@v1.0.4")
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing Tessera's fsck: %v\n%s", err, out)
	}
	return filepath.Join(dir, "fsck")
}

// TestScaleout is the done-when test of the MySQL storage: three front ends on one MariaDB
// database under write load, copies of acknowledged entries sent to other front ends, one front
// end SIGKILLed mid-load and brought back; nothing acknowledged lost, every checkpoint seen on any
// front end consistent with the final tree, every answered checkpoint in every front end's
// history, and Tessera's fsck command accepting the log.
func TestScaleout(t *testing.T) {
	dsn := mysqltest.Database(t)
	quire, _ := buildBinaries(t)
	fsckBin := tesseraFsck(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	t.Setenv(scaleoutDSNEnv, dsn)
	code := run(ctx, []string{"-quire", quire, "-fsck", fsckBin, "-scaleout", "3", "-writers", "12", "-max-up", "6s",
		"-workdir", t.TempDir(), "-v"}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code != 0 {
		t.Fatalf("crashtest exited %d; stdout:\n%s", code, stdout.String())
	}
	want := regexp.MustCompile(`(?m)^scaleout frontends=3 killed=1 acknowledged=[1-9][0-9]* lost=0 inconsistent=0 duplicates=[1-9][0-9]* dup_wrong=0 raced=[1-9][0-9]* raced_wrong=0 history_wrong=0 fsck_size=[1-9][0-9]*$`)
	if !want.MatchString(stdout.String()) {
		t.Errorf("stdout does not match %s:\n%s", want, stdout.String())
	}
}

// TestServerCheckCatchesLossAndForks shows the log checks can fail: against a real quire serve,
// an "acknowledged" entry whose bytes the log does not have is lost, and checkpoints signed with
// the log's key that contradict its tree are inconsistent.
func TestServerCheckCatchesLossAndForks(t *testing.T) {
	quire, _ := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := &serverTest{
		cfg:     serverConfig{QuireBin: quire, Writers: 4, Logf: t.Logf},
		dataDir: filepath.Join(t.TempDir(), "data"),
		logPath: filepath.Join(t.TempDir(), "quire.log"),
		ledger:  newLedger(),
		catchUp: time.Second,
	}
	st.cfg.WorkDir = t.TempDir()
	if err := st.setup(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := st.start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.kill()
	c, err := client.New(st.baseURL, client.WithHTTPClient(st.hc))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := client.GenerateKey(client.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		digest := make([]byte, 32)
		rand.Read(digest)
		req, err := client.NewHashedRekordRequest(signer, digest)
		if err != nil {
			t.Fatal(err)
		}
		body, err := client.MarshalCreateEntryRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.PostEntry(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		st.recordAnswer(raw, digest)
	}
	acks, cps := st.ledger.snapshot()
	if len(acks) != 3 {
		t.Fatalf("recorded %d acknowledged entries, want 3", len(acks))
	}
	if _, err := st.check(ctx, acks, cps); err != nil {
		t.Fatal(err)
	}
	if _, lost, inc, _ := st.ledger.counts(); lost != 0 || inc != 0 {
		t.Fatalf("an honest log was found with %d lost and %d inconsistent: %v %v", lost, inc, st.ledger.lost, st.ledger.inconsistent)
	}

	skey, err := os.ReadFile(st.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	forged := func(size uint64) *seenCheckpoint {
		root := sha256.Sum256([]byte("another history " + strconv.FormatUint(size, 10)))
		text := log.Checkpoint{Origin: crashOrigin, Size: size, Hash: root[:]}.Marshal()
		raw, err := note.Sign(&note.Note{Text: string(text)}, logSigner)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := st.parseCheckpoint(raw, "forged")
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	tests := []struct {
		name                 string
		acks                 []ackedEntry
		cps                  []*seenCheckpoint
		wantLost, wantIncons int
	}{
		{name: "an entry with other bytes at its index is lost", acks: []ackedEntry{{index: acks[0].index, body: []byte("not what the log holds")}}, wantLost: 1},
		{name: "an entry beyond the tree is lost", acks: []ackedEntry{{index: 1000, body: acks[0].body}}, wantLost: 1},
		{name: "a checkpoint with the current size and another root is inconsistent", cps: []*seenCheckpoint{forged(3)}, wantIncons: 1},
		{name: "a smaller checkpoint that is not a prefix is inconsistent", cps: []*seenCheckpoint{forged(2)}, wantIncons: 1},
		{name: "a checkpoint larger than the tree is inconsistent", cps: []*seenCheckpoint{forged(50)}, wantIncons: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st.ledger = newLedger()
			if _, err := st.check(ctx, tc.acks, tc.cps); err != nil {
				t.Fatal(err)
			}
			if _, lost, inc, _ := st.ledger.counts(); lost != tc.wantLost || inc != tc.wantIncons {
				t.Errorf("lost=%d inconsistent=%d, want %d and %d (%v %v)", lost, inc, tc.wantLost, tc.wantIncons, st.ledger.lost, st.ledger.inconsistent)
			}
		})
	}
}

// TestWitnessCheckCatchesForks shows the cosignature check can fail: a cosigned checkpoint of the
// fork next to one of the honest log is inconsistent, whichever is larger.
func TestWitnessCheckCatchesForks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wt := &witnessTest{cfg: witnessConfig{Logf: t.Logf}}
	skey, vkey, err := note.GenerateKey(rand.Reader, witnessLogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if wt.logSigner, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if wt.logVerif, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	logCtx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	if wt.honest, err = openTreeLog(logCtx, "honest", filepath.Join(t.TempDir(), "honest"), wt.logSigner); err != nil {
		t.Fatal(err)
	}
	if wt.fork, err = openTreeLog(logCtx, "fork", filepath.Join(t.TempDir(), "fork"), wt.logSigner); err != nil {
		t.Fatal(err)
	}
	grab := func(l *treeLog, entries int) cosigned {
		t.Helper()
		var last tessera.IndexFuture
		for i := range entries {
			last = l.appender.Add(ctx, tessera.NewEntry([]byte(l.name+strconv.Itoa(i)+time.Now().String())))
		}
		idx, err := last()
		if err != nil {
			t.Fatal(err)
		}
		for ctx.Err() == nil {
			cp, _, err := l.checkpoint(ctx, wt.logVerif)
			if err == nil && cp.Size > idx.Index {
				return cosigned{size: cp.Size, root: cp.Hash, source: l.name}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no checkpoint")
		return cosigned{}
	}
	h1 := grab(wt.honest, 10)
	f1 := grab(wt.fork, 20)
	h2 := grab(wt.honest, 30)
	tests := []struct {
		name string
		cs   []cosigned
		want int
	}{
		{name: "a growing honest log is consistent", cs: []cosigned{h2, h1, h1}, want: 0},
		{name: "a fork larger than the honest checkpoint is caught", cs: []cosigned{h1, f1}, want: 1},
		{name: "a fork between two honest checkpoints is caught", cs: []cosigned{h1, f1, h2}, want: 2},
		{name: "the same size with another root is caught", cs: []cosigned{h1, {size: h1.size, root: f1.root, source: "forged"}}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wt.cosigs = tc.cs
			if got := wt.checkCosigned(ctx); got != tc.want {
				t.Errorf("checkCosigned found %d inconsistent pairs, want %d", got, tc.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantErr     bool
		wantCycles  int
		wantWitness int
	}{
		{name: "the default is 100 cycles of each", args: []string{"-quire", "q"}, wantCycles: 100, wantWitness: 100},
		{name: "quick means 5 cycles", args: []string{"-quire", "q", "-quick"}, wantCycles: 5, wantWitness: 5},
		{name: "an explicit cycle count beats quick", args: []string{"-quire", "q", "-quick", "-cycles", "7"}, wantCycles: 7, wantWitness: 7},
		{name: "witness cycles can differ", args: []string{"-quire-witness", "w", "-cycles", "4", "-witness-cycles", "2"}, wantCycles: 4, wantWitness: 2},
		{name: "no binary is an error", args: []string{"-cycles", "3"}, wantErr: true},
		{name: "zero cycles is an error", args: []string{"-quire", "q", "-cycles", "0"}, wantErr: true},
		{name: "stray arguments are an error", args: []string{"-quire", "q", "extra"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (o.cycles != tc.wantCycles || o.witnessCycles != tc.wantWitness) {
				t.Errorf("cycles %d/%d, want %d/%d", o.cycles, o.witnessCycles, tc.wantCycles, tc.wantWitness)
			}
		})
	}
}
