package pebble

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the driver's own Prometheus series: what Tessera's appender metrics cannot see from
// outside a driver (how entries group into commits, what a commit costs, how long an entry waits
// to be durable, what publication does, the disk). Label sets are fixed and small.
type metrics struct {
	batchEntries *prometheus.HistogramVec
	commit       prometheus.Histogram
	wait         prometheus.Histogram
	publications *prometheus.CounterVec
}

// Outcomes of a checkpoint publication, the result label of quire_checkpoint_publications_total.
const (
	publishOK     = "ok"
	publishFailed = "failed"
)

func newMetrics() *metrics {
	return &metrics{
		batchEntries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quire_sequencer_batch_entries",
			Help:    "Entries in one sequencer commit (one synced Pebble batch), by whether they were new or duplicates.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, []string{"entries"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_sequencer_commit_duration_seconds",
			Help:    "Time to sequence, integrate and durably commit one batch: dedup lookups, tiles, the synced write.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_sequencing_latency_seconds",
			Help:    "Time from a batch's first entry being queued to the batch being durably committed: the longest any of its entries waited for an index.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		publications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_checkpoint_publications_total",
			Help: "Attempts to publish a checkpoint (sign, gather cosignatures, store), by result (ok, failed).",
		}, []string{"result"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.batchEntries, m.commit, m.wait, m.publications}
}

// observeCommit records one committed group: its new and duplicate entries, the commit's cost,
// and how long its oldest batch waited.
func (m *metrics) observeCommit(group []*batch, fresh int, took time.Duration, now time.Time) {
	total, oldest := 0, now
	for _, b := range group {
		total += len(b.entries)
		if b.created.Before(oldest) {
			oldest = b.created
		}
	}
	m.batchEntries.WithLabelValues("new").Observe(float64(fresh))
	m.batchEntries.WithLabelValues("duplicate").Observe(float64(total - fresh))
	m.commit.Observe(took.Seconds())
	m.wait.Observe(now.Sub(oldest).Seconds())
}

var (
	integratedDesc = prometheus.NewDesc("quire_integrated_tree_size",
		"Entries integrated into the tree (durable, possibly not yet in a published checkpoint).", nil, nil)
	publishedDesc = prometheus.NewDesc("quire_published_tree_size",
		"Tree size of the latest checkpoint the driver published.", nil, nil)
	ageDesc = prometheus.NewDesc("quire_checkpoint_age_seconds",
		"Seconds since the latest checkpoint was published (absent before the first).", nil, nil)
	diskFreeDesc = prometheus.NewDesc("quire_storage_disk_free_bytes",
		"Bytes free to the log on the file system of its Pebble database.", nil, nil)
	outstandingDesc = prometheus.NewDesc("quire_sequencer_outstanding_entries",
		"Entries added but not yet sequenced; writes are pushed back beyond --pushback.", nil, nil)
	filterBytesDesc = prometheus.NewDesc("quire_dedup_filter_bytes",
		"Memory held by the in-memory dedup filter (capped by its configured byte limit).", nil, nil)
	filterKeysDesc = prometheus.NewDesc("quire_dedup_filter_keys",
		"Dedup identities added to the in-memory dedup filter; one written while the filter is built at open may count twice.", nil, nil)
	filterInUseDesc = prometheus.NewDesc("quire_dedup_filter_in_use",
		"1 while the dedup filter holds every stored dedup identity, so a lookup it rules out reaches no database; 0 while it is being built at open, and from when it reaches its byte cap until a restart (see quire_dedup_filter_uncovered_generations).", nil, nil)
	filterUncoveredDesc = prometheus.NewDesc("quire_dedup_filter_uncovered_generations",
		"Database seeks a dedup lookup that the dedup filter rules out still makes: one per generation of 2^21 entries (and one for the records of storage format 1) that the filter does not cover yet, while it is built at open, or no longer, past its byte cap. 0 when it covers everything.", nil, nil)
)

// collector reads the driver's state at scrape time, so gauges are never stale.
type collector struct{ s *Storage }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{integratedDesc, publishedDesc, ageDesc, diskFreeDesc, outstandingDesc, filterBytesDesc, filterKeysDesc, filterInUseDesc, filterUncoveredDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ch <- prometheus.MustNewConstMetric(integratedDesc, prometheus.GaugeValue, float64(s.tree.Load().size))
	ch <- prometheus.MustNewConstMetric(outstandingDesc, prometheus.GaugeValue, float64(s.outstanding.Load()))
	if p := s.pub.Load(); p.cp != nil {
		ch <- prometheus.MustNewConstMetric(publishedDesc, prometheus.GaugeValue, float64(p.size))
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, time.Since(time.Unix(0, p.atNano)).Seconds())
	}
	if free, err := s.freeBytes(); err == nil {
		ch <- prometheus.MustNewConstMetric(diskFreeDesc, prometheus.GaugeValue, float64(free))
	}
	if f := s.filter; f != nil {
		inUse := 0.0
		if f.usable() {
			inUse = 1
		}
		ch <- prometheus.MustNewConstMetric(filterBytesDesc, prometheus.GaugeValue, float64(f.bytes.Load()))
		ch <- prometheus.MustNewConstMetric(filterKeysDesc, prometheus.GaugeValue, float64(f.keys.Load()))
		ch <- prometheus.MustNewConstMetric(filterInUseDesc, prometheus.GaugeValue, inUse)
		uncovered := uncoveredSeeks(s.dedupSeekOrder(s.tree.Load().size), f.coveredBelow())
		ch <- prometheus.MustNewConstMetric(filterUncoveredDesc, prometheus.GaugeValue, float64(uncovered))
	}
}

// register adds the driver's series to reg.
func (s *Storage) register(reg prometheus.Registerer) error {
	for _, c := range append(s.metrics.collectors(), collector{s}) {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// LSM returns Pebble's own report on the database: per level its tables, bytes ingested, moved
// and written by compactions, write amplification, and the block cache and bloom filter hit
// rates, for finding what a growing log spends its time on (scripts/benchgrow -lsm).
func (s *Storage) LSM() string {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return "pebble storage is closed"
	}
	return s.db.Metrics().String()
}
