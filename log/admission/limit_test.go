package admission

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLimiter(t *testing.T) {
	l, err := NewLimiter(Limit{Name: "address", Rate: 1, Burst: 2, MaxKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := l.Register(reg); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for i := range 2 {
		if ok, _ := l.Allow("a", t0); !ok {
			t.Fatalf("write %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow("a", t0)
	if ok || wait != time.Second {
		t.Fatalf("write past the burst: allowed %t, wait %v; want refused for 1s", ok, wait)
	}
	if ok, _ := l.Allow("a", t0.Add(time.Second)); !ok {
		t.Fatal("a write a second later was refused: the refused one spent a token")
	}
	l.Allow("b", t0)
	l.Allow("c", t0) // evicts "a", the least recently used
	if got := testutil.ToFloat64(l.size); got != 2 {
		t.Errorf("%v buckets, want the bound 2", got)
	}
	if got := testutil.ToFloat64(l.refused); got != 1 {
		t.Errorf("%v refusals counted, want 1", got)
	}
	if ok, _ := l.Allow("a", t0.Add(time.Second)); !ok {
		t.Error("an evicted key did not start again with a full bucket")
	}
}

func TestNewLimiterRefusesNonsense(t *testing.T) {
	for _, c := range []Limit{{Rate: 1, Burst: 1}, {Name: "x", Burst: 1}, {Name: "x", Rate: 1}, {Name: "x", Rate: 1, Burst: 1, MaxKeys: -1}} {
		if _, err := NewLimiter(c); err == nil {
			t.Errorf("NewLimiter(%+v) accepted", c)
		}
	}
}
