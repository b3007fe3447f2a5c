// Package witnessing watches the log's side of C2SP tlog-witness (https://c2sp.org/tlog-witness):
// how each witness in the policy answers the checkpoint publisher's add-checkpoint requests, and
// whether each publication gathered the quorum the policy asks for.
//
// Tessera's witness client does the requests; this package only observes them, through an
// http.RoundTripper handed to the client (Tracker.Transport), and observes publications through a
// callback from the storage driver (Tracker.ObservePublication). From that it keeps Prometheus
// series (requests and latency per witness and outcome, quorum met or missed), the last answer of
// each witness for the status page, and a readiness check for a log that fails closed.
// TestTrackerFollowsAGroupLosingAndRegainingItsQuorum shows it against real quire-witness servers.
package witnessing

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

// Outcomes of one add-checkpoint request, the outcome label of the request metrics. 409 is its
// own outcome because Tessera's client follows it with a second request, so it is routine after
// a witness or the log restarts.
const (
	OutcomeCosigned    = "cosigned"    // 200 with a cosignature
	OutcomeConflict    = "conflict"    // 409: the witness recorded another size
	OutcomeRefused     = "refused"     // any other 4xx: the witness will not cosign this
	OutcomeFailed      = "failed"      // 5xx, or another status
	OutcomeUnreachable = "unreachable" // no answer: connection refused, timeout
)

// policyNotSatisfied is the text of Tessera's ErrPolicyNotSatisfied (internal/witness), which a
// fail-closed publisher returns when the quorum was not reached. The sentinel is in an internal
// package, so it is recognised by its text; TestTrackerFollowsAGroupLosingAndRegainingItsQuorum
// fails if Tessera changes it.
const policyNotSatisfied = "witness policy was not satisfied"

// Witness is what the tracker knows of one witness of the policy.
type Witness struct {
	// Name is the witness's key name, the witness label of its metrics.
	Name string
	// URL is where the publisher posts add-checkpoint requests.
	URL string
	// Verifier checks the witness's cosignatures.
	Verifier note.Verifier

	// LastAttempt is when the last request to it ended, LastOutcome how (zero before any).
	LastAttempt time.Time
	LastOutcome string
	// LastError says what went wrong with the last request, if it did not cosign.
	LastError string
	// LastCosigned is when it last answered with a cosignature.
	LastCosigned time.Time
}

// Quorum is the outcome of the latest publication attempt that asked the witnesses.
type Quorum struct {
	// At is when the attempt ended; zero before any.
	At time.Time
	// Size is the tree size the attempt was for.
	Size uint64
	// Met says the checkpoint gathered the cosignatures the policy asks for.
	Met bool
	// Err is why a fail-closed publication failed for want of the quorum.
	Err error
}

// Tracker observes the witnesses of one policy. Its methods are safe for concurrent use.
type Tracker struct {
	group    tessera.WitnessGroup
	failOpen bool

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	quorums  *prometheus.CounterVec

	mu        sync.Mutex
	witnesses map[string]*Witness // by add-checkpoint URL
	quorum    Quorum
}

// New returns a tracker for the witnesses of group. failOpen says whether the log publishes a
// checkpoint short of the quorum; only a fail-closed log is unready without it. A non-nil reg
// receives the tracker's metrics.
func New(group tessera.WitnessGroup, failOpen bool, reg prometheus.Registerer) (*Tracker, error) {
	t := &Tracker{
		group:     group,
		failOpen:  failOpen,
		witnesses: make(map[string]*Witness),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_witness_requests_total",
			Help: "add-checkpoint requests to each witness of the policy, by witness key name and outcome (cosigned, conflict, refused, failed, unreachable).",
		}, []string{"witness", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quire_witness_request_duration_seconds",
			Help:    "Time for a witness to answer add-checkpoint, by witness key name and outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"witness", "outcome"}),
		quorums: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_witness_quorum_total",
			Help: "Checkpoint publications by whether the witness policy's quorum cosigned (met) or not (missed).",
		}, []string{"result"}),
	}
	for u, v := range group.Endpoints() {
		t.witnesses[u] = &Witness{Name: v.Name(), URL: u, Verifier: v}
		// Every witness shows in the metrics from the start, at zero, so a rate() over a witness
		// that never answered is 0 rather than absent.
		for _, o := range []string{OutcomeCosigned, OutcomeConflict, OutcomeRefused, OutcomeFailed, OutcomeUnreachable} {
			t.requests.WithLabelValues(v.Name(), o)
		}
	}
	t.quorums.WithLabelValues("met")
	t.quorums.WithLabelValues("missed")
	if reg != nil {
		for _, c := range []prometheus.Collector{t.requests, t.duration, t.quorums} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering witness metrics: %w", err)
			}
		}
	}
	return t, nil
}

// Transport wraps base (nil: http.DefaultTransport) so that each request to a witness of the
// policy is counted, timed and remembered. Give it to the checkpoint publisher's http.Client.
func (t *Tracker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{t: t, base: base}
}

type roundTripper struct {
	t    *Tracker
	base http.RoundTripper
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := rt.base.RoundTrip(req)
	outcome, detail := classify(resp, err)
	rt.t.record(req.URL.String(), outcome, detail, start, time.Now())
	return resp, err
}

// classify names the outcome of one request and, when it did not cosign, what went wrong.
func classify(resp *http.Response, err error) (outcome, detail string) {
	switch {
	case err != nil:
		return OutcomeUnreachable, err.Error()
	case resp.StatusCode == http.StatusOK:
		return OutcomeCosigned, ""
	case resp.StatusCode == http.StatusConflict:
		return OutcomeConflict, resp.Status
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return OutcomeRefused, resp.Status
	default:
		return OutcomeFailed, resp.Status
	}
}

func (t *Tracker) record(url, outcome, detail string, start, end time.Time) {
	t.mu.Lock()
	w, ok := t.witnesses[url]
	if ok {
		w.LastAttempt, w.LastOutcome, w.LastError = end, outcome, detail
		if outcome == OutcomeCosigned {
			w.LastCosigned = end
		}
	}
	t.mu.Unlock()
	if !ok {
		// Only the policy's URLs are asked; anything else would be an unbounded label.
		return
	}
	t.requests.WithLabelValues(w.Name, outcome).Inc()
	t.duration.WithLabelValues(w.Name, outcome).Observe(end.Sub(start).Seconds())
}

// ObservePublication takes the outcome of one publication attempt (the storage driver's publish
// callback): the checkpoint published, or the error. A published checkpoint met the quorum if it
// satisfies the policy (fail-open publishes it either way); a failed attempt missed it if it failed
// for want of cosignatures. Other failures (signing, storage) say nothing about witnesses.
func (t *Tracker) ObservePublication(size uint64, checkpoint []byte, err error) {
	if len(t.group.Endpoints()) == 0 {
		return
	}
	q := Quorum{At: time.Now(), Size: size}
	switch {
	case err == nil:
		q.Met = t.group.Satisfied(checkpoint)
	case strings.Contains(err.Error(), policyNotSatisfied):
		q.Err = err
	default:
		return
	}
	result := "missed"
	if q.Met {
		result = "met"
	}
	t.quorums.WithLabelValues(result).Inc()
	t.mu.Lock()
	t.quorum = q
	t.mu.Unlock()
}

// Witnesses returns what the tracker knows of each witness, sorted by name.
func (t *Tracker) Witnesses() []Witness {
	t.mu.Lock()
	out := make([]Witness, 0, len(t.witnesses))
	for _, w := range t.witnesses {
		out = append(out, *w)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LastQuorum returns the outcome of the latest publication that asked the witnesses.
func (t *Tracker) LastQuorum() Quorum {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.quorum
}

// Ready is the readiness check of a fail-closed log: an error naming the witnesses that did not
// cosign when the latest publication missed the quorum, since writes then wait until it is met.
// A fail-open log publishes regardless, and a log without witnesses needs none: both are always
// ready here.
func (t *Tracker) Ready(context.Context) error {
	if t.failOpen {
		return nil
	}
	q := t.LastQuorum()
	if q.At.IsZero() || q.Met {
		return nil
	}
	var down []string
	for _, w := range t.Witnesses() {
		if w.LastOutcome != OutcomeCosigned && w.LastOutcome != "" {
			down = append(down, fmt.Sprintf("%s (%s: %s)", w.Name, w.LastOutcome, w.LastError))
		}
	}
	return fmt.Errorf("witness quorum not met for tree size %d at %s; not cosigning: %s",
		q.Size, q.At.UTC().Format(time.RFC3339), strings.Join(down, ", "))
}
