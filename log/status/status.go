// Package status computes the state of a running log for the people and programs that watch it:
// its origin and size, the latest checkpoint and how old it is, the witnesses and their last
// cosignatures, the write rate, the version and whether the log takes writes. The API layer
// renders it as the status page at / and as JSON at /quire/v1/status; other pages build on the
// same Model.
//
// Cosignatures are read from the checkpoint (C2SP tlog-cosignature: cosignature/v1 carries the
// time the witness signed), and what the witnesses last answered comes from package witnessing.
package status

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/checkpoint"
	"github.com/quirelog/quire/api/notekey"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/witnessing"
)

// Model is the status of one log at one moment. Its JSON form is the body of /quire/v1/status.
type Model struct {
	Origin string `json:"origin"`
	// Size is the tree size of the latest published checkpoint, RootHash its root (hex).
	Size     uint64 `json:"size"`
	RootHash string `json:"rootHash"`
	// Checkpoint is the latest checkpoint, a C2SP signed note with its cosignatures.
	Checkpoint string `json:"checkpoint"`
	// Published is when it was published and AgeSeconds how long ago; absent when the storage
	// does not say.
	Published  *time.Time `json:"published,omitempty"`
	AgeSeconds *float64   `json:"ageSeconds,omitempty"`
	// Witnesses are those of the log's witness policy, empty without one.
	Witnesses []Witness `json:"witnesses"`
	// WriteRate is new entries per second over about the last minute.
	WriteRate float64 `json:"writeRate"`
	// ReadOnly says the log takes no writes; Frozen that it never will again (quire freeze),
	// FinalSize its size then.
	ReadOnly  bool    `json:"readOnly"`
	Frozen    bool    `json:"frozen"`
	FinalSize *uint64 `json:"finalSize,omitempty"`
	Version   string  `json:"version"`
	// Ready says whether the log is ready for writes; Problems name what is wrong when not.
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems"`
	// Time is when the model was computed.
	Time time.Time `json:"time"`
}

// Witness is one witness of the policy as the status shows it.
type Witness struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// InCheckpoint says the latest checkpoint carries its cosignature; Cosigned is the time in
	// that cosignature.
	InCheckpoint bool       `json:"inCheckpoint"`
	Cosigned     *time.Time `json:"cosigned,omitempty"`
	// LastOutcome is how its last add-checkpoint request ended (witnessing.Outcome*), at
	// LastAttempt, with LastError when it did not cosign; LastCosigned is when it last cosigned.
	LastOutcome  string     `json:"lastOutcome,omitempty"`
	LastAttempt  *time.Time `json:"lastAttempt,omitempty"`
	LastError    string     `json:"lastError,omitempty"`
	LastCosigned *time.Time `json:"lastCosigned,omitempty"`
}

// Config is where a Source reads the status from. Log is required.
type Config struct {
	Log *quirelog.Log
	// Published, if set, says when the latest checkpoint was published (storage/pebble's
	// (*Storage).Published has this signature).
	Published func() (size uint64, at time.Time, ok bool)
	// Witnesses, if set, tracks the witness policy's witnesses.
	Witnesses *witnessing.Tracker
	// Version is the server's version, shown as is.
	Version  string
	ReadOnly bool
}

// rateWindow is how far back the write rate looks; rateSamples is how many sizes it keeps.
const (
	rateWindow  = time.Minute
	rateSamples = 13
)

// Source computes Models. Its methods are safe for concurrent use.
type Source struct {
	cfg Config

	mu      sync.Mutex
	samples []sample // oldest first, at most rateSamples
}

type sample struct {
	at   time.Time
	size uint64
}

// New returns a Source for cfg.
func New(cfg Config) (*Source, error) {
	if cfg.Log == nil {
		return nil, errors.New("status: Config.Log is nil")
	}
	return &Source{cfg: cfg}, nil
}

// Run samples the tree size every few seconds for the write rate, until ctx ends.
func (s *Source) Run(ctx context.Context) {
	t := time.NewTicker(rateWindow / (rateSamples - 1))
	defer t.Stop()
	for {
		if _, cp, err := s.checkpoint(ctx); err == nil {
			s.addSample(time.Now(), cp.Size)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Source) addSample(at time.Time, size uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, sample{at, size})
	if len(s.samples) > rateSamples {
		s.samples = s.samples[len(s.samples)-rateSamples:]
	}
}

// rate is the growth per second between the oldest sample and now.
func (s *Source) rate(now time.Time, size uint64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return 0
	}
	first := s.samples[0]
	d := now.Sub(first.at).Seconds()
	if d <= 0 || size < first.size {
		return 0
	}
	return float64(size-first.size) / d
}

// checkpoint reads the latest checkpoint (the log verified it) and parses its body. The raw
// checkpoint is the log's own copy: it is read, never written.
func (s *Source) checkpoint(ctx context.Context) ([]byte, *flog.Checkpoint, error) {
	raw, err := s.cfg.Log.Checkpoint(ctx, 0)
	if err != nil {
		return nil, nil, err
	}
	cp, err := checkpoint.Unverified(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, cp, nil
}

// Compute returns the log's status now. Ready and Problems are left for the caller, which knows
// the readiness checks.
func (s *Source) Compute(ctx context.Context) (*Model, error) {
	now := time.Now()
	m := &Model{Origin: s.cfg.Log.Origin(), ReadOnly: s.cfg.ReadOnly, Version: s.cfg.Version, Time: now.UTC(), Witnesses: []Witness{}, Problems: []string{}}
	if size, frozen := s.cfg.Log.Frozen(); frozen {
		m.ReadOnly, m.Frozen, m.FinalSize = true, true, &size
	}
	raw, cp, err := s.checkpoint(ctx)
	switch {
	case errors.Is(err, quirelog.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("reading the latest checkpoint: %w", err)
	default:
		m.Size, m.RootHash, m.Checkpoint = cp.Size, hex.EncodeToString(cp.Hash), string(raw)
		m.WriteRate = s.rate(now, cp.Size)
	}
	if s.cfg.Published != nil {
		if _, at, ok := s.cfg.Published(); ok {
			at = at.UTC()
			age := now.Sub(at).Seconds()
			m.Published, m.AgeSeconds = &at, &age
		}
	}
	if s.cfg.Witnesses != nil {
		for _, w := range s.cfg.Witnesses.Witnesses() {
			ws := Witness{Name: w.Name, URL: w.URL, LastOutcome: w.LastOutcome, LastError: w.LastError,
				LastAttempt: timePtr(w.LastAttempt), LastCosigned: timePtr(w.LastCosigned)}
			if t, ok := CosignedAt(raw, w.Verifier); ok {
				ws.InCheckpoint, ws.Cosigned = true, timePtr(t)
			}
			m.Witnesses = append(m.Witnesses, ws)
		}
	}
	return m, nil
}

// CosignedAt finds v's cosignature in checkpoint and returns the time it carries (ok false when
// checkpoint has none that v verifies).
func CosignedAt(checkpoint []byte, v note.Verifier) (time.Time, bool) {
	if checkpoint == nil {
		return time.Time{}, false
	}
	n, err := note.Open(checkpoint, note.VerifierList(v))
	if err != nil || len(n.Sigs) == 0 {
		return time.Time{}, false
	}
	sig, err := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if err != nil {
		return time.Time{}, false
	}
	return notekey.CosignatureTime(sig)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
