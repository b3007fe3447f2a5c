package witness

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// TestTesseraWitnessClient runs Tessera's own log and witness client (a
// POSIX-backed appender configured WithWitnesses from a Sigsum-format
// policy) against real witness servers, and checks that what Tessera
// publishes carries cosignatures its own policy code accepts.
func TestTesseraWitnessClient(t *testing.T) {
	for _, tc := range []struct {
		name      string
		witnesses int
		down      int
		quorum    string
	}{
		{"one witness cosigns every checkpoint Tessera publishes", 1, 0, "quorum w0\n"},
		{"a 2-of-3 group is satisfied with all three witnesses up", 3, 0, "group g 2 w0 w1 w2\nquorum g\n"},
		{"publication continues with one of three witnesses down", 3, 1, "group g 2 w0 w1 w2\nquorum g\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			origin := "tessera.example/log"
			skey, vkey, err := note.GenerateKey(seededRand("tessera log"), origin)
			if err != nil {
				t.Fatal(err)
			}
			logSigner, err := note.NewSigner(skey)
			if err != nil {
				t.Fatal(err)
			}
			logCfg, err := ParseLog(vkey)
			if err != nil {
				t.Fatal(err)
			}

			var policy strings.Builder
			var fixtures []*fixture
			var members []tessera.Witness
			for i := 0; i < tc.witnesses; i++ {
				f := startNamedWitness(t, t.TempDir(), fmt.Sprintf("witness.example/w%d", i), 0, 0, logCfg)
				fixtures = append(fixtures, f)
				fmt.Fprintf(&policy, "witness w%d %s %s\n", i, f.cos.VerifierKey(), f.srv.URL)
				u, err := url.Parse(f.srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				m, err := tessera.NewWitness(f.cos.VerifierKey(), u)
				if err != nil {
					t.Fatalf("tessera.NewWitness refuses our vkey: %v", err)
				}
				members = append(members, m)
			}
			policy.WriteString(tc.quorum)
			for i := 0; i < tc.down; i++ {
				fixtures[i].stop()
			}
			group, err := tessera.NewWitnessGroupFromPolicy([]byte(policy.String()))
			if err != nil {
				t.Fatalf("policy %q: %v", policy.String(), err)
			}

			driver, err := posix.New(ctx, posix.Config{Path: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
				WithCheckpointSigner(logSigner).
				WithCheckpointInterval(100*time.Millisecond).
				WithBatching(64, 20*time.Millisecond).
				WithWitnesses(group, &tessera.WitnessOptions{Timeout: 10 * time.Second, FailOpen: false}))
			if err != nil {
				t.Fatalf("tessera.NewAppender: %v", err)
			}
			defer shutdown(context.Background())
			awaiter := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 50*time.Millisecond)

			var lastSize uint64
			for round := 0; round < 3; round++ {
				var futures []tessera.IndexFuture
				for i := 0; i < 10; i++ {
					futures = append(futures, appender.Add(ctx, tessera.NewEntry([]byte(fmt.Sprintf("round %d entry %d", round, i)))))
				}
				var cp []byte
				for _, fu := range futures {
					if _, cp, err = awaiter.Await(ctx, fu); err != nil {
						t.Fatalf("round %d: entry never published: %v", round, err)
					}
				}
				c, _, _, err := log.ParseCheckpoint(cp, origin, logCfg.Verifier)
				if err != nil {
					t.Fatalf("published checkpoint: %v", err)
				}
				if c.Size <= lastSize {
					t.Fatalf("round %d: published size %d did not grow past %d", round, c.Size, lastSize)
				}
				lastSize = c.Size
				if !group.Satisfied(cp) {
					t.Fatalf("round %d: WitnessGroup.Satisfied is false for %q", round, cp)
				}
				satisfied := 0
				for i, m := range members {
					if m.Satisfied(cp) {
						satisfied++
						if i < tc.down {
							t.Fatalf("a stopped witness's cosignature appeared on %q", cp)
						}
					}
				}
				if min := min(2, tc.witnesses); satisfied < min {
					t.Fatalf("round %d: %d witnesses' Witness.Satisfied hold, want at least %d", round, satisfied, min)
				}
			}
			for _, f := range fixtures[tc.down:] {
				if st := f.w.Logs()[0]; !st.Cosigned || st.Size == 0 {
					t.Errorf("witness state %+v after Tessera published size %d", st, lastSize)
				}
			}
		})
	}
}

// TestTesseraCatchUpThrough409 stops one witness of an all-of-three policy
// (failing open) for one round and brings it back on the same address with
// the same state. Tessera then offers it the old size of its last published
// checkpoint, gets 409 with the witness's older size, and must follow up with
// a real consistency proof from its tiles, which the witness verifies.
func TestTesseraCatchUpThrough409(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	origin := "tessera.example/log"
	skey, vkey, err := note.GenerateKey(seededRand("tessera log"), origin)
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logCfg, err := ParseLog(vkey)
	if err != nil {
		t.Fatal(err)
	}

	var policy strings.Builder
	var fixtures []*fixture
	var dirs []string
	for i := 0; i < 3; i++ {
		dirs = append(dirs, t.TempDir())
		f := startNamedWitness(t, dirs[i], fmt.Sprintf("witness.example/w%d", i), 0, 0, logCfg)
		fixtures = append(fixtures, f)
		fmt.Fprintf(&policy, "witness w%d %s %s\n", i, f.cos.VerifierKey(), f.srv.URL)
	}
	policy.WriteString("group g all w0 w1 w2\nquorum g\n")
	group, err := tessera.NewWitnessGroupFromPolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fixtures[0].srv.URL)
	w0, err := tessera.NewWitness(fixtures[0].cos.VerifierKey(), u)
	if err != nil {
		t.Fatal(err)
	}

	driver, err := posix.New(ctx, posix.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(logSigner).
		WithCheckpointInterval(100*time.Millisecond).
		WithBatching(64, 20*time.Millisecond).
		WithWitnesses(group, &tessera.WitnessOptions{Timeout: 2 * time.Second, FailOpen: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	awaiter := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 50*time.Millisecond)
	publish := func(round int) []byte {
		t.Helper()
		var cp []byte
		for i := 0; i < 7; i++ {
			fu := appender.Add(ctx, tessera.NewEntry([]byte(fmt.Sprintf("round %d entry %d", round, i))))
			if _, cp, err = awaiter.Await(ctx, fu); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		return cp
	}

	cp := publish(0)
	if !group.Satisfied(cp) {
		t.Fatalf("round 0 with all witnesses up is not satisfied: %q", cp)
	}
	firstSize := fixtures[0].w.Logs()[0].Size

	addr := u.Host
	fixtures[0].stop()
	cp = publish(1)
	if w0.Satisfied(cp) {
		t.Fatal("a stopped witness's cosignature appeared")
	}

	// Same key, same state directory, same address.
	f, err := reopenOn(t, addr, dirs[0], "witness.example/w0", logCfg)
	if err != nil {
		t.Fatalf("restarting witness 0 on %s: %v", addr, err)
	}
	if got := f.w.Logs()[0].Size; got != firstSize {
		t.Fatalf("restarted witness remembers size %d, want %d", got, firstSize)
	}
	// Tessera may publish a checkpoint or two before its gateway reaches
	// the restarted witness; wait for one that all three cosigned.
	deadline := time.Now().Add(20 * time.Second)
	for round := 2; ; round++ {
		cp = publish(round)
		if group.Satisfied(cp) && w0.Satisfied(cp) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness 0 never caught up; last checkpoint %q", cp)
		}
	}
	if got := f.w.Logs()[0].Size; got <= firstSize {
		t.Fatalf("witness 0 still at size %d", got)
	}
	if f.answered(409) == 0 || f.answered(200) == 0 {
		t.Fatalf("witness 0 answered %v; the catch-up must go through 409 then 200", f.statuses)
	}
}
