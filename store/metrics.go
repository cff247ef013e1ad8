package store

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus metrics, registered on the
// Registerer from Options (never the global registry).
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	writes        prometheus.Counter
	remoteApplied prometheus.Counter
	remoteSkipped prometheus.Counter
	remoteBad     prometheus.Counter
	clockSkew     prometheus.Counter
	conflicts     prometheus.Counter
	conflictsLost prometheus.Counter
	expired       prometheus.Counter
	evictedKeys   prometheus.Counter
	evictedBytes  prometheus.Counter
	readings      prometheus.Counter
	pruned        prometheus.Counter
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	syncWait      prometheus.Histogram
}

func newMetrics(s *Store, reg prometheus.Registerer) *metrics {
	m := &metrics{reg: reg}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ferrite_store_" + name, Help: help})
		m.collectors = append(m.collectors, c)
		return c
	}
	gauge := func(name, help string, fn func() float64) {
		m.collectors = append(m.collectors, prometheus.NewGaugeFunc(
			prometheus.GaugeOpts{Name: "ferrite_store_" + name, Help: help}, fn))
	}
	m.writes = counter("local_ops_total", "Local mutations committed (one op each).")
	m.remoteApplied = counter("remote_ops_applied_total", "Remote ops applied.")
	m.remoteSkipped = counter("remote_ops_skipped_total", "Remote ops skipped because their dot was already seen.")
	m.remoteBad = counter("remote_ops_rejected_total", "Remote ops rejected because their delta could not be decoded.")
	m.clockSkew = counter("clock_skew_total", "Remote ops whose HLC was beyond the maximum clock skew (applied, clock not adopted).")
	m.conflicts = counter("conflicts_total", "Conflicts detected between concurrent writes.")
	m.conflictsLost = counter("conflicts_unstored_total", "Conflicts not stored because the conflict table was full.")
	m.expired = counter("expired_keys_total", "Keys deleted by the TTL sweeper.")
	m.evictedKeys = counter("evicted_keys_total", "Keys deleted by Evict.")
	m.evictedBytes = counter("evicted_bytes_total", "Bytes freed by Evict (estimated).")
	m.readings = counter("readings_total", "Raw sensor readings appended.")
	m.pruned = counter("ops_pruned_total", "Ops pruned from the op log.")
	m.cacheHits = counter("cache_hits_total", "Hot-entry cache hits.")
	m.cacheMisses = counter("cache_misses_total", "Hot-entry cache misses.")
	m.syncWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ferrite_store_fsync_wait_seconds",
		Help:    "Time a committed write waited for its WAL fsync (shared by group commit).",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14),
	})
	m.collectors = append(m.collectors, m.syncWait)
	gauge("keys", "Live keys (expired keys count until swept).", func() float64 { return float64(s.liveKeys.Load()) })
	gauge("last_seq", "Last op log sequence number.", func() float64 { return float64(s.lastSeq.Load()) })
	gauge("durable_seq", "Durable watermark: ops up to it are fsynced.", func() float64 { return float64(s.durable.Load()) })
	gauge("synced_seq", "Ops up to it are acknowledged upstream.", func() float64 { return float64(s.synced.Load()) })
	gauge("oplog_ops", "Ops retained in the op log.", func() float64 {
		return float64(s.lastSeq.Load() - min(s.pruned.Load(), s.lastSeq.Load()))
	})
	gauge("disk_bytes", "Disk space used by the database.", func() float64 { return float64(s.diskUsage.Load()) })
	gauge("cache_bytes", "Hot-entry cache size (estimated).", func() float64 { _, b := s.cache.stats(); return float64(b) })
	gauge("writes_refused", "1 while writes are refused (SetRefuseWrites).", func() float64 {
		if s.refusal.Load() != nil {
			return 1
		}
		return 0
	})
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				s.log.Warn("metric not registered", "err", err)
			}
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
