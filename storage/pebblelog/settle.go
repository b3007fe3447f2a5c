package pebblelog

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// settlePoll is how often Settle looks at the database's compaction state.
const settlePoll = 10 * time.Millisecond

// Settle waits, at most within, until db runs no flush or compaction and no level asks for
// one. Call it before closing a database: pebble.Open waits for
// every compaction that starts while it opens, and a database closed with compaction debt
// starts one at once, so the next start waited for a whole L0 compaction (seconds on a large
// log, most of a restart in scripts/bench-scale). Settling moves that work to the shutdown,
// bounded by within.
func Settle(db *pebble.DB, within time.Duration) {
	deadline := time.Now().Add(within)
	for !settled(db.Metrics()) && time.Now().Before(deadline) {
		time.Sleep(settlePoll)
	}
}

func settled(m *pebble.Metrics) bool {
	if m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0 {
		return false
	}
	for _, l := range m.Levels {
		if l.Score >= 1 {
			return false
		}
	}
	return true
}
