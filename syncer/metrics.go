package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the syncer's Prometheus metrics, registered on the
// Registerer of the options (never the global registry). An edge and a
// hub share the names; a node is one or the other.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	queueOps     prometheus.Gauge
	queueBytes   prometheus.Gauge
	queueAge     prometheus.Gauge
	dropped      prometheus.Counter
	bytes        *prometheus.CounterVec // direction: up|down (edge) — sent|received
	messages     *prometheus.CounterVec // direction, type
	opsSent      prometheus.Counter
	opsApplied   prometheus.Counter
	opsSkipped   prometheus.Counter
	conflicts    prometheus.Counter
	rtt          prometheus.Histogram
	reconnects   prometheus.Counter
	fullSyncs    *prometheus.CounterVec // direction: up|down
	connected    prometheus.Gauge
	clockSkew    prometheus.Counter
	badMessages  prometheus.Counter
	inboxDropped prometheus.Counter
	edges        prometheus.Gauge // hub: edges with a session
	pruned       prometheus.Counter
	logBytes     prometheus.Gauge // hub: op log bytes retained (estimate)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{reg: reg}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		m.collectors = append(m.collectors, g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.collectors = append(m.collectors, c)
		return c
	}
	m.queueOps = gauge("ferrite_sync_queue_ops", "Own ops waiting for the hub's acknowledgement (the offline queue).")
	m.queueBytes = gauge("ferrite_sync_queue_bytes", "Encoded bytes of the ops in the offline queue.")
	m.queueAge = gauge("ferrite_sync_queue_oldest_age_seconds", "Age of the oldest op in the offline queue (0 when empty).")
	m.dropped = counter("ferrite_sync_queue_dropped_total", "Ops dropped because the offline queue was full (state is resent by a FullSync).")
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferrite_sync_bytes_total", Help: "Sync message bytes on the wire, by direction (sent, received).",
	}, []string{"direction"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferrite_sync_messages_total", Help: "Sync messages, by direction (sent, received) and type.",
	}, []string{"direction", "type"})
	m.collectors = append(m.collectors, m.bytes, m.messages)
	m.opsSent = counter("ferrite_sync_ops_sent_total", "Ops sent to the peer (resends included).")
	m.opsApplied = counter("ferrite_sync_ops_applied_total", "Remote ops applied to the local store.")
	m.opsSkipped = counter("ferrite_sync_ops_skipped_total", "Remote ops skipped because they were already applied.")
	m.conflicts = counter("ferrite_sync_conflicts_total", "Conflicts detected while applying or merging remote changes.")
	m.rtt = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ferrite_sync_rtt_seconds", Help: "Round-trip time from sending a batch to its acknowledgement.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	m.collectors = append(m.collectors, m.rtt)
	m.reconnects = counter("ferrite_sync_reconnects_total", "Connections to the broker after the first.")
	m.fullSyncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferrite_sync_fullsyncs_total", Help: "Full-state transfers completed, by direction (up: edge to hub, down: hub to edge).",
	}, []string{"direction"})
	m.collectors = append(m.collectors, m.fullSyncs)
	m.connected = gauge("ferrite_sync_connected", "1 while the link to the broker is up.")
	m.clockSkew = counter("ferrite_sync_clock_skew_total", "Remote ops whose HLC was beyond the allowed clock skew (applied; clock not adopted).")
	m.badMessages = counter("ferrite_sync_bad_messages_total", "Messages that could not be decoded or broke the protocol.")
	m.inboxDropped = counter("ferrite_sync_inbox_dropped_total", "Messages dropped because the receive queue was full (the peer resends).")
	m.edges = gauge("ferrite_sync_hub_sessions", "Edges with a live session on this hub.")
	m.pruned = counter("ferrite_sync_log_pruned_ops_total", "Op-log entries pruned by the syncer (acknowledged or past retention).")
	m.logBytes = gauge("ferrite_sync_log_bytes", "Estimated bytes of the op log the hub retains for relaying.")
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				// A duplicate registration (two syncers on one registry) is a
				// wiring bug; keep running with unregistered metrics.
				continue
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

func (m *metrics) sent(t MessageType, n int) {
	m.bytes.WithLabelValues("sent").Add(float64(n))
	m.messages.WithLabelValues("sent", t.String()).Inc()
}

func (m *metrics) received(t MessageType, n int) {
	m.bytes.WithLabelValues("received").Add(float64(n))
	m.messages.WithLabelValues("received", t.String()).Inc()
}
