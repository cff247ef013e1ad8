package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pipeline's Prometheus collectors (ferrite_ingest_*).
type metrics struct {
	messages       *prometheus.CounterVec // result: ingested, malformed, ignored, refused
	readings       prometheus.Counter
	malformed      *prometheus.CounterVec // rule, reason
	tsFallback     *prometheus.CounterVec // reason: no_clock, future
	dropped        *prometheus.CounterVec // reason: sensor_limit
	bucketWrites   prometheus.Counter
	bucketErrors   prometheus.Counter
	checkpointErrs prometheus.Counter
	storeSeconds   prometheus.Histogram

	// Cached children for the hot path.
	ingested, ignored, refused, malformedMsgs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *Pipeline) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_ingest_messages_total",
			Help: "MQTT messages seen by the ingest pipeline, by result (ingested, malformed, ignored: no rule matched, refused: store write failed).",
		}, []string{"result"}),
		readings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_ingest_readings_total",
			Help: "Sensor readings stored.",
		}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_ingest_malformed_total",
			Help: "Messages whose payload a rule could not parse, by rule and reason.",
		}, []string{"rule", "reason"}),
		tsFallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_ingest_timestamp_fallback_total",
			Help: "Readings whose timestamp was replaced by the receive time (no_clock: before 2000; future: beyond the allowed clock skew).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_ingest_readings_dropped_total",
			Help: "Readings dropped, by reason (sensor_limit: new sensor beyond max_sensors; queue_full: QoS 0 queue overflow; store_refused: the store refused a QoS 0 batch; shutdown: queued QoS 0 readings not written within the shutdown's drain bound).",
		}, []string{"reason"}),
		bucketWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_ingest_bucket_writes_total",
			Help: "Closed buckets merged into the store.",
		}),
		bucketErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_ingest_bucket_write_errors_total",
			Help: "Failed attempts to merge closed buckets into the store (they are retried).",
		}),
		checkpointErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_ingest_checkpoint_errors_total",
			Help: "Failed sensor checkpoint writes (retried at the next checkpoint).",
		}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferrite_ingest_store_write_seconds",
			Help:    "Latency of one batched raw-reading write (durable under the store policy).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14),
		}),
	}
	m.ingested = m.messages.WithLabelValues("ingested")
	m.ignored = m.messages.WithLabelValues("ignored")
	m.refused = m.messages.WithLabelValues("refused")
	m.malformedMsgs = m.messages.WithLabelValues("malformed")
	for _, r := range []string{"sensor_limit", "queue_full", "store_refused", "shutdown"} {
		m.dropped.WithLabelValues(r)
	}
	m.tsFallback.WithLabelValues("no_clock")
	m.tsFallback.WithLabelValues("future")
	if reg == nil {
		return m
	}
	aggCounter := func(name, help string, f func(AggregatorStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			if p.agg == nil {
				return 0
			}
			return float64(f(p.agg.Stats()))
		})
	}
	aggGauge := func(name, help string, f func(AggregatorStats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if p.agg == nil {
				return 0
			}
			return float64(f(p.agg.Stats()))
		})
	}
	reg.MustRegister(m.messages, m.readings, m.malformed, m.tsFallback, m.dropped,
		m.bucketWrites, m.bucketErrors, m.checkpointErrs, m.storeSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ferrite_ingest_sensors", Help: "Sensors in the registry.",
		}, func() float64 { return float64(p.ingestion.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ferrite_ingest_queue_readings", Help: "QoS 0 readings waiting for the store.",
		}, func() float64 { return float64(p.queue.len()) }),
		aggGauge("ferrite_ingest_buckets_open", "Open aggregation buckets.", func(s AggregatorStats) int { return s.Open }),
		aggGauge("ferrite_ingest_buckets_pending", "Closed buckets not yet written to the store.", func(s AggregatorStats) int { return s.Pending }),
		aggCounter("ferrite_ingest_buckets_closed_total", "Buckets closed at end plus allowed lateness.", func(s AggregatorStats) uint64 { return s.Closed }),
		aggCounter("ferrite_ingest_buckets_forced_total", "Buckets closed early by the open-bucket cap.", func(s AggregatorStats) uint64 { return s.ForcedClosed }),
		aggCounter("ferrite_ingest_buckets_dropped_total", "Closed buckets dropped by the pending cap (store unavailable too long).", func(s AggregatorStats) uint64 { return s.Dropped }),
		aggCounter("ferrite_ingest_late_readings_total", "Readings that arrived after their bucket closed, merged as a late partial.", func(s AggregatorStats) uint64 { return s.LateMerged }),
		aggCounter("ferrite_ingest_late_in_window_total", "Readings that arrived after their bucket's end but within the allowed lateness.", func(s AggregatorStats) uint64 { return s.LateInWindow }),
		aggCounter("ferrite_ingest_too_old_total", "Raw readings older than the late horizon when a crash's replay rebuilt the open buckets, not re-aggregated.", func(s AggregatorStats) uint64 { return s.TooOld }),
	)
	return m
}
