package witnessing_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"github.com/quirelog/quire/log/witnessing"
	"github.com/quirelog/quire/storage/pebble"
	"github.com/quirelog/quire/witness"
)

const origin = "witnessing.quire.test"

// liveWitness is a real witness (package witness, its Pebble state, its HTTP handler) that can be
// switched off: then nothing listens on its address, as when the process is gone.
type liveWitness struct {
	name string
	w    *witness.Witness
	srv  *httptest.Server
	vkey string
}

func startWitnesses(t *testing.T, logVKey string, n int) []*liveWitness {
	t.Helper()
	logEntry, err := witness.ParseLog(logVKey)
	if err != nil {
		t.Fatal(err)
	}
	var out []*liveWitness
	for i := range n {
		name := fmt.Sprintf("w%d.witnessing.test", i+1)
		skey, vkey, err := witness.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		cosigner, err := witness.NewCosigner(skey, nil)
		if err != nil {
			t.Fatal(err)
		}
		w, err := witness.New(witness.Config{Path: filepath.Join(t.TempDir(), name), Signer: cosigner, Logs: []witness.Log{logEntry}, RateLimit: rate.Inf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		lw := &liveWitness{name: name, w: w, vkey: vkey, srv: httptest.NewServer(w.Handler())}
		t.Cleanup(lw.srv.Close)
		out = append(out, lw)
	}
	return out
}

func TestTrackerFollowsAGroupLosingAndRegainingItsQuorum(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	ws := startWitnesses(t, vkey, 3)
	var members []tessera.Witness
	for _, w := range ws {
		u, err := url.Parse(w.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		tw, err := tessera.NewWitness(w.vkey, u)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, tw)
	}
	group := tessera.NewWitnessGroup(2, members[0], members[1], members[2])
	reg := prometheus.NewRegistry()
	tracker, err := witnessing.New(group, false, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drv, err := pebble.New(ctx, pebble.Config{
		Path:       filepath.Join(t.TempDir(), "log"),
		HTTPClient: &http.Client{Transport: tracker.Transport(nil)},
		OnPublish:  tracker.ObservePublication,
	})
	if err != nil {
		t.Fatal(err)
	}
	storage := drv.(*pebble.Storage)
	appender, shutdown, _, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(16, 5*time.Millisecond).
		WithCheckpointInterval(20*time.Millisecond).
		WithWitnesses(group, &tessera.WitnessOptions{Timeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = shutdown(sctx)
		if err := storage.Close(); err != nil {
			t.Error(err)
		}
	}()
	add := func(t *testing.T, i int) uint64 {
		t.Helper()
		idx, err := appender.Add(ctx, tessera.NewEntry(fmt.Appendf(nil, "entry %d", i)))()
		if err != nil {
			t.Fatal(err)
		}
		return idx.Index
	}
	// awaitQuorum waits until a publication attempt for a tree covering size has an outcome.
	awaitQuorum := func(t *testing.T, size uint64) witnessing.Quorum {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if q := tracker.LastQuorum(); !q.At.IsZero() && q.Size >= size {
				return q
			}
			if time.Now().After(deadline) {
				t.Fatalf("no publication attempt for size %d within 10s; last: %+v", size, tracker.LastQuorum())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	count := func(series ...string) float64 {
		switch series[0] {
		case "quorum":
			return counterValue(t, reg, "quire_witness_quorum_total", map[string]string{"result": series[1]})
		default:
			return counterValue(t, reg, "quire_witness_requests_total", map[string]string{"witness": series[0], "outcome": series[1]})
		}
	}

	t.Run("with every witness up publications meet the quorum and the log is ready", func(t *testing.T) {
		i := add(t, 0)
		if q := awaitQuorum(t, i+1); !q.Met || q.Err != nil {
			t.Fatalf("quorum %+v, want met", q)
		}
		if err := tracker.Ready(ctx); err != nil {
			t.Fatalf("Ready = %v", err)
		}
		if count("quorum", "met") < 1 || count("quorum", "missed") != 0 {
			t.Fatalf("quorum met %v, missed %v", count("quorum", "met"), count("quorum", "missed"))
		}
		cosigned := 0
		for _, w := range tracker.Witnesses() {
			if count(w.Name, witnessing.OutcomeCosigned) > 0 && w.LastOutcome == witnessing.OutcomeCosigned && !w.LastCosigned.IsZero() {
				cosigned++
			}
		}
		if cosigned < 2 {
			t.Fatalf("%d witnesses recorded as cosigning, want at least 2: %+v", cosigned, tracker.Witnesses())
		}
	})
	t.Run("with two witnesses gone the quorum is missed and Ready names them", func(t *testing.T) {
		ws[0].srv.Close()
		ws[1].srv.Close()
		i := add(t, 1)
		q := awaitQuorum(t, i+1)
		if q.Met || q.Err == nil {
			t.Fatalf("quorum %+v, want missed with Tessera's policy error", q)
		}
		err := tracker.Ready(ctx)
		if err == nil {
			t.Fatal("Ready = nil with two of three witnesses gone")
		}
		for _, w := range ws[:2] {
			if !strings.Contains(err.Error(), w.name+" (unreachable") {
				t.Errorf("Ready does not name %s as unreachable: %v", w.name, err)
			}
			if count(w.name, witnessing.OutcomeUnreachable) < 1 {
				t.Errorf("no unreachable request counted for %s", w.name)
			}
		}
		if strings.Contains(err.Error(), ws[2].name) {
			t.Errorf("Ready blames the live witness: %v", err)
		}
		if count("quorum", "missed") < 1 {
			t.Error("quire_witness_quorum_total{result=\"missed\"} did not rise")
		}
	})
	t.Run("a fail-open log is ready however its witnesses answer", func(t *testing.T) {
		open, err := witnessing.New(group, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		open.ObservePublication(5, nil, fmt.Errorf("signing checkpoint for size 5: witness policy was not satisfied"))
		if err := open.Ready(ctx); err != nil {
			t.Fatalf("Ready = %v for a fail-open log", err)
		}
	})
	t.Run("a tracker without witnesses records nothing", func(t *testing.T) {
		none, err := witnessing.New(tessera.WitnessGroup{}, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		none.ObservePublication(1, []byte("cp"), nil)
		if q := none.LastQuorum(); !q.At.IsZero() {
			t.Fatalf("a log without witnesses recorded a quorum: %+v", q)
		}
	})
}

// counterValue reads the series of a counter family with the given labels from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v in the registry", name, labels)
	return 0
}
