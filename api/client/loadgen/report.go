package loadgen

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is what one Run measured. Its JSON form is the machine-readable output of quirectl bench.
type Report struct {
	URL             string  `json:"url"`
	Mode            string  `json:"mode"` // "closed" or "open"
	Workers         int     `json:"workers"`
	OfferedRate     float64 `json:"offered_rate,omitempty"`
	KeyType         string  `json:"key_type"`
	DupFraction     float64 `json:"dup_fraction"`
	DurationSeconds float64 `json:"duration_seconds"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`

	// EntriesPerSecond is Created over the configured duration (or the elapsed time, if shorter).
	EntriesPerSecond float64 `json:"entries_per_second"`
	// Sent counts requests that got an answer or failed, duplicates included.
	Sent           int64 `json:"sent"`
	DuplicatesSent int64 `json:"duplicates_sent"`
	// Created counts 201 answers received before the end of the duration.
	Created int64 `json:"created"`
	// CreatedAfterEnd counts 201 answers to requests still in flight at the end.
	CreatedAfterEnd int64 `json:"created_after_end"`
	// Unsent counts open-loop arrivals that were scheduled but never sent.
	Unsent int64 `json:"unsent"`
	// Errors counts non-201 outcomes by HTTP status ("409", "503"), "timeout" or "transport".
	Errors map[string]int64 `json:"errors"`
	// Latency summarises the 201 answers.
	Latency LatencySummary `json:"latency_ms"`

	// PoolSigned requests were signed before the clock started, at SignPerSecond.
	PoolSigned    int     `json:"pool_signed"`
	SignPerSecond float64 `json:"sign_per_second"`
	// SignedDuringRun counts requests signed while the clock ran because the pool ran dry.
	SignedDuringRun int64 `json:"signed_during_run"`
	// ClientCPUSeconds is the CPU this process used while the clock ran (signing excluded unless
	// the pool ran dry), and ClientCPUPerRequestMicros that per request sent: the generator's cost
	// on a machine it shares with the log.
	ClientCPUSeconds          float64 `json:"client_cpu_seconds"`
	ClientCPUPerRequestMicros float64 `json:"client_cpu_per_request_us"`
	// MaxDispatchBehindMs is how late the open-loop dispatcher handed out an arrival at worst.
	MaxDispatchBehindMs float64 `json:"max_dispatch_behind_ms,omitempty"`
}

// LatencySummary holds percentiles in milliseconds.
type LatencySummary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize computes percentiles over sorted samples (nearest rank).
func summarize(sorted []time.Duration) LatencySummary {
	n := len(sorted)
	if n == 0 {
		return LatencySummary{}
	}
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return LatencySummary{
		Count: int64(n),
		Min:   ms(sorted[0]),
		Mean:  ms(sum / time.Duration(n)),
		P50:   ms(percentile(sorted, 0.50)),
		P90:   ms(percentile(sorted, 0.90)),
		P99:   ms(percentile(sorted, 0.99)),
		P999:  ms(percentile(sorted, 0.999)),
		Max:   ms(sorted[n-1]),
	}
}

// percentile is the nearest-rank percentile: the smallest sample with at least q of the samples
// at or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// UnexpectedErrors counts errors other than the 409s that deliberate duplicates should get.
func (r *Report) UnexpectedErrors() int64 {
	var n int64
	for k, v := range r.Errors {
		if k == "409" && r.DuplicatesSent > 0 {
			continue
		}
		n += v
	}
	return n
}

// WriteText prints the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target      %s\n", r.URL)
	if r.Mode == "open" {
		fmt.Fprintf(&b, "load        open loop, %.0f/s offered, at most %d in flight, %s, for %.1fs\n", r.OfferedRate, r.Workers, r.KeyType, r.DurationSeconds)
	} else {
		fmt.Fprintf(&b, "load        closed loop, %d workers, %s, for %.1fs\n", r.Workers, r.KeyType, r.DurationSeconds)
	}
	fmt.Fprintf(&b, "entries/s   %.1f (%d created in time, %d after the end)\n", r.EntriesPerSecond, r.Created, r.CreatedAfterEnd)
	fmt.Fprintf(&b, "sent        %d (%d deliberate duplicates)", r.Sent, r.DuplicatesSent)
	if r.Unsent > 0 {
		fmt.Fprintf(&b, ", %d scheduled but never sent", r.Unsent)
	}
	b.WriteString("\n")
	l := r.Latency
	fmt.Fprintf(&b, "latency ms  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f (n=%d)\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
	if len(r.Errors) == 0 {
		b.WriteString("errors      none\n")
	} else {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("errors     ")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, r.Errors[k])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "generator   %d requests signed beforehand (%.0f/s), %d signed during the run; %.1f µs CPU per request sent\n", r.PoolSigned, r.SignPerSecond, r.SignedDuringRun, r.ClientCPUPerRequestMicros)
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}
