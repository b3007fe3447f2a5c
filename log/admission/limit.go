package admission

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Defaults of a Limit's zero fields.
const (
	// DefaultMaxKeys bounds the buckets a Limiter keeps. A bucket costs about 200 bytes (its
	// 32-byte key in the map and in the list element, the element, the rate.Limiter), so the
	// default ceiling is about 13 MiB per limiter.
	DefaultMaxKeys = 64 << 10
)

// Limit configures a Limiter: Rate writes a second on average per key, in bursts of up to Burst.
type Limit struct {
	// Name says what is limited ("address", "signer"); it labels the metrics and errors.
	Name string
	// Rate is the sustained number of writes a second one key may make.
	Rate float64
	// Burst is how many writes one key may make at once after being idle (at least 1).
	Burst int
	// MaxKeys bounds how many keys have a bucket; the least recently used bucket goes first
	// (DefaultMaxKeys if 0). A key whose bucket was dropped starts again with a full one, so the
	// bound only weakens the limit for keys idle longer than every other key.
	MaxKeys int
}

// Limiter keeps one token bucket (golang.org/x/time/rate) per key, at most MaxKeys of them.
// Keys are hashed, so its memory is bounded in bytes whatever keys clients choose. It is safe
// for concurrent use.
type Limiter struct {
	cfg Limit

	mu      sync.Mutex
	buckets map[[sha256.Size]byte]*list.Element
	lru     *list.List // of *bucket, most recently used first

	refused prometheus.Counter
	size    prometheus.GaugeFunc
}

type bucket struct {
	key [sha256.Size]byte
	lim *rate.Limiter
}

// NewLimiter checks cfg and returns its Limiter.
func NewLimiter(cfg Limit) (*Limiter, error) {
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	switch {
	case cfg.Name == "":
		return nil, errors.New("rate limit: Name is empty")
	case cfg.Rate <= 0:
		return nil, fmt.Errorf("%s rate limit: rate %g, want more than 0 writes a second", cfg.Name, cfg.Rate)
	case cfg.Burst < 1:
		return nil, fmt.Errorf("%s rate limit: burst %d, want at least 1", cfg.Name, cfg.Burst)
	case cfg.MaxKeys < 0:
		return nil, fmt.Errorf("%s rate limit: %d keys, want 0 (the default) or more", cfg.Name, cfg.MaxKeys)
	}
	l := &Limiter{cfg: cfg, buckets: make(map[[sha256.Size]byte]*list.Element), lru: list.New()}
	labels := prometheus.Labels{"by": cfg.Name}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "quire_rate_limited_total",
		Help:        "Writes refused with 429 and Retry-After by a rate limit, by what is limited (address, signer).",
		ConstLabels: labels,
	})
	l.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "quire_rate_limit_buckets",
		Help:        "Token buckets a rate limit keeps (at most its configured number of keys), by what is limited.",
		ConstLabels: labels,
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.lru.Len())
	})
	return l, nil
}

// Register adds the limiter's metrics to reg.
func (l *Limiter) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{l.refused, l.size} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering %s rate limit metrics: %w", l.cfg.Name, err)
		}
	}
	return nil
}

// Name is what the limiter limits.
func (l *Limiter) Name() string { return l.cfg.Name }

// Allow takes a token from key's bucket at now. When the bucket is empty it takes nothing and
// returns how long until a token is there.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	h := sha256.Sum256([]byte(key))
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.buckets[h]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		if l.lru.Len() >= l.cfg.MaxKeys {
			last := l.lru.Back()
			l.lru.Remove(last)
			delete(l.buckets, last.Value.(*bucket).key)
		}
		b = &bucket{key: h, lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.buckets[h] = l.lru.PushFront(b)
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		l.refused.Inc()
		return false, d
	}
	return true, 0
}
