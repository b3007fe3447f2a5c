package mirror

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ProgressPrinter returns a Config.Progress func writing to w: a redrawn bar with rate and ETA when
// w is a terminal, or one plain log line per call otherwise (for logs and CI).
func ProgressPrinter(w io.Writer, terminal bool) func(Progress) {
	return func(p Progress) {
		rate := 0.0
		if s := p.Elapsed.Seconds(); s > 0 {
			rate = float64(p.Entries) / s
		}
		eta := "?"
		if rate > 0 && p.Total >= p.Entries {
			eta = (time.Duration(float64(p.Total-p.Entries)/rate) * time.Second).Round(time.Second).String()
		}
		frac := 1.0
		if p.Total > 0 {
			frac = float64(p.Entries) / float64(p.Total)
		}
		if !terminal {
			fmt.Fprintf(w, "mirror: %d/%d entries (%.1f%%), %.0f entries/s, %d fetched, %d reused, %d bytes, ETA %s\n",
				p.Entries, p.Total, 100*frac, rate, p.Fetched, p.Reused, p.Bytes, eta)
			return
		}
		const width = 30
		filled := int(frac * width)
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		end := ""
		if p.Done {
			end = "\n"
		}
		fmt.Fprintf(w, "\r[%s] %5.1f%% %d/%d entries %.0f/s ETA %s   %s", bar, 100*frac, p.Entries, p.Total, rate, eta, end)
	}
}
