package log

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"

	"github.com/quirelog/quire/api/rekor"
)

// metrics are the personality's Prometheus series: what only it knows (entry kinds, duplicates,
// why a write was pushed back) and the search follower's progress. Kinds come from Validate,
// which knows two, and pushback reasons from Tessera's three sentinels, so label sets are bounded.
type metrics struct {
	entries    *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	pushback   *prometheus.CounterVec
	// newByKind and dupByKind are entries' and duplicates' series by kind, resolved once: by
	// label value, every write hashed its kind and took a read lock to find its counter.
	newByKind, dupByKind map[string]prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_entries_total",
			Help: "New entries given an index, by kind (hashedrekord, dsse).",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_entries_duplicate_total",
			Help: "Writes answered with the index of an identical earlier entry (409), by kind.",
		}, []string{"kind"}),
		pushback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_pushback_total",
			Help: "Writes refused for overload with 503 and Retry-After, by reason (integration, antispam, other).",
		}, []string{"reason"}),
	}
	// Every series exists from the start, at zero, so that a rate() over a kind never written yet
	// is 0 rather than absent.
	m.newByKind, m.dupByKind = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, k := range []string{rekor.KindHashedRekord, rekor.KindDSSE} {
		m.newByKind[k] = m.entries.WithLabelValues(k)
		m.dupByKind[k] = m.duplicates.WithLabelValues(k)
	}
	for _, r := range []string{"integration", "antispam", "other"} {
		m.pushback.WithLabelValues(r)
	}
	return m
}

// countAdd wraps an append's future so that resolving it counts the entry as new, duplicate or
// pushed back. Tessera memoizes futures, so the count happens once.
func (m *metrics) countAdd(kind string, f tessera.IndexFuture) tessera.IndexFuture {
	return func() (tessera.Index, error) {
		idx, err := f()
		switch {
		case errors.Is(err, tessera.ErrPushbackIntegration):
			m.pushback.WithLabelValues("integration").Inc()
		case errors.Is(err, tessera.ErrPushbackAntispam):
			m.pushback.WithLabelValues("antispam").Inc()
		case errors.Is(err, tessera.ErrPushback):
			m.pushback.WithLabelValues("other").Inc()
		case err != nil:
		case idx.IsDup:
			byKind(m.dupByKind, m.duplicates, kind).Inc()
		default:
			byKind(m.newByKind, m.entries, kind).Inc()
		}
		return idx, err
	}
}

// byKind is vec's counter for kind, from resolved when it is there.
func byKind(resolved map[string]prometheus.Counter, vec *prometheus.CounterVec, kind string) prometheus.Counter {
	if c, ok := resolved[kind]; ok {
		return c
	}
	return vec.WithLabelValues(kind)
}

var (
	treeSizeDesc = prometheus.NewDesc("quire_tree_size",
		"Tree size of the latest published checkpoint, as the log serves it.", nil, nil)
	indexedDesc = prometheus.NewDesc("quire_search_indexed_entries",
		"Leading entries the search index covers.", nil, nil)
	lagDesc = prometheus.NewDesc("quire_search_lag_entries",
		"Entries in the latest checkpoint that search does not find yet.", nil, nil)
)

// scrapeTimeout bounds the reads one scrape makes.
const scrapeTimeout = 5 * time.Second

// collector reads the latest checkpoint and the index's progress at scrape time.
type collector struct{ l *Log }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- treeSizeDesc
	ch <- indexedDesc
	ch <- lagDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	cp, err := c.l.latest(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(treeSizeDesc, prometheus.GaugeValue, float64(cp.size))
	if c.l.index == nil {
		return
	}
	done, err := c.l.index.Progress(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(indexedDesc, prometheus.GaugeValue, float64(done))
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(cp.size-min(done, cp.size)))
}

// register adds the log's series to reg.
func (l *Log) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{l.metrics.entries, l.metrics.duplicates, l.metrics.pushback, collector{l}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
