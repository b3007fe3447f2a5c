package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxRepeatKeys bounds the messages the limiter remembers; past it, it forgets them all, which at
// worst lets one more copy of each through.
const maxRepeatKeys = 1024

// RepeatedKey is the attribute a limited message carries when copies of it were held back: how
// many since it was last logged.
const RepeatedKey = "repeated"

// NewRepeatLimiter wraps h so that a warning or error identical to one logged less than interval
// ago (same level, message and attributes) is held back; the first copy after the interval is
// logged with RepeatedKey set to the number held back. Lower levels pass untouched: they are off
// by default, and an operator who turns debug on wants all of it. A failure that repeats every
// second (a witness down, a full disk) then costs a line a minute instead of sixty.
func NewRepeatLimiter(h slog.Handler, interval time.Duration) slog.Handler {
	return &repeatHandler{next: h, state: &repeatState{interval: interval, now: time.Now, seen: map[string]*repeat{}}}
}

type repeatState struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	seen map[string]*repeat
}

type repeat struct {
	logged time.Time // when a copy was last logged
	held   int       // copies held back since
}

// admit says whether a record with this key is logged now, and how many copies were held back
// before it.
func (s *repeatState) admit(key string) (bool, int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.seen[key]
	if ok && now.Sub(r.logged) < s.interval {
		r.held++
		return false, 0
	}
	if !ok {
		if len(s.seen) >= maxRepeatKeys {
			clear(s.seen)
		}
		r = &repeat{}
		s.seen[key] = r
	}
	held := r.held
	r.logged, r.held = now, 0
	return true, held
}

type repeatHandler struct {
	next  slog.Handler
	state *repeatState
	// scope renders the attributes and groups added by WithAttrs and WithGroup, which are part
	// of what makes two records identical.
	scope string
}

func (h *repeatHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *repeatHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	var key strings.Builder
	fmt.Fprintf(&key, "%s\x00%d\x00%s", h.scope, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&key, "\x00%s=%v", a.Key, a.Value)
		return true
	})
	ok, held := h.state.admit(key.String())
	if !ok {
		return nil
	}
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int(RepeatedKey, held))
	}
	return h.next.Handle(ctx, r)
}

func (h *repeatHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.scope)
	for _, a := range as {
		fmt.Fprintf(&b, "\x01%s=%v", a.Key, a.Value)
	}
	return &repeatHandler{next: h.next.WithAttrs(as), state: h.state, scope: b.String()}
}

func (h *repeatHandler) WithGroup(name string) slog.Handler {
	return &repeatHandler{next: h.next.WithGroup(name), state: h.state, scope: h.scope + "\x02" + name}
}
