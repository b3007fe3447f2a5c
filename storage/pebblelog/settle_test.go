package pebblelog

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestSettleLeavesNoCompactionDue(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: New(nil), L0CompactionThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Each flush adds an L0 table over the same keys; past the threshold L0 asks for a compaction.
	for round := range 8 {
		for k := range 100 {
			if err := db.Set(fmt.Appendf(nil, "k%03d", k), fmt.Appendf(nil, "v%d", round), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	Settle(db, time.Minute)
	if m := db.Metrics(); !settled(m) {
		t.Fatalf("after Settle: %d compactions running, L0 score %.2f, want none and below 1", m.Compact.NumInProgress, m.Levels[0].Score)
	}
}
