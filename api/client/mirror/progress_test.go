package mirror

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressPrinter(t *testing.T) {
	p := Progress{Entries: 250, Total: 1000, Fetched: 4, Elapsed: 5 * time.Second}
	for _, tc := range []struct {
		name     string
		terminal bool
		want     []string
		notWant  string
	}{
		{name: "a terminal gets a redrawn bar with rate and ETA", terminal: true, want: []string{"\r[=======", " 25.0%", "50/s", "ETA 15s"}, notWant: "\n"},
		{name: "a log gets one plain line", terminal: false, want: []string{"mirror: 250/1000 entries (25.0%)", "50 entries/s", "ETA 15s\n"}, notWant: "\r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			ProgressPrinter(&b, tc.terminal)(p)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output %q lacks %q", b.String(), w)
				}
			}
			if strings.Contains(b.String(), tc.notWant) {
				t.Errorf("output %q contains %q", b.String(), tc.notWant)
			}
		})
	}
}
