package resources

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// monitorMetrics are the monitor's Prometheus series (prefix
// ferrite_resources_). Children are resolved once so a round only sets
// values.
type monitorMetrics struct {
	usage       [numResources]prometheus.Gauge // ratio 0..1 (may exceed 1)
	level       [numResources]prometheus.Gauge
	overall     prometheus.Gauge
	usedBytes   [2]prometheus.Gauge // memory, disk
	limitBytes  [2]prometheus.Gauge
	cpuUsed     prometheus.Gauge
	cpuBudget   prometheus.Gauge
	rss         prometheus.Gauge
	goHeap      prometheus.Gauge
	transitions *prometheus.CounterVec
	actions     *prometheus.CounterVec
	sampleErrs  *prometheus.CounterVec
	sampleDur   prometheus.Histogram
	syncIntv    prometheus.Gauge
	refusing    prometheus.Gauge
	battery     prometheus.Gauge
	onBattery   prometheus.Gauge
	linkQuality prometheus.Gauge
	linkRTT     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*monitorMetrics, error) {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferrite_resources_" + name, Help: help})
	}
	usage := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ferrite_resources_usage_ratio",
		Help: "Usage of each resource against its limit (1 = at the limit)."}, []string{"resource"})
	level := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ferrite_resources_level",
		Help: "Level of each resource and overall: 0 normal, 1 warning, 2 high, 3 critical."}, []string{"resource"})
	used := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ferrite_resources_used_bytes",
		Help: "Bytes used by the measure that sets the resource's level."}, []string{"resource"})
	limit := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ferrite_resources_limit_bytes",
		Help: "Limit in bytes of the measure that sets the resource's level."}, []string{"resource"})
	m := &monitorMetrics{
		overall:   level.WithLabelValues("overall"),
		cpuUsed:   g("cpu_used_cores", "CPU cores used by the process over the last round."),
		cpuBudget: g("cpu_budget_cores", "CPU cores the process may use (GOMAXPROCS)."),
		rss:       g("rss_bytes", "Resident set size of the process."),
		goHeap:    g("go_heap_bytes", "Bytes in Go heap objects."),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferrite_resources_level_transitions_total",
			Help: "Level changes by resource (memory, disk, cpu, overall) and level entered."}, []string{"resource", "to"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferrite_resources_actions_total",
			Help: "Actions taken by the monitor, by action and result (ok, error, unwired)."}, []string{"action", "result"}),
		sampleErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferrite_resources_sample_errors_total",
			Help: "Sampling rounds in which a source failed."}, []string{"source"}),
		sampleDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ferrite_resources_sample_duration_seconds",
			Help:    "Time one sampling round takes.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 8)}),
		syncIntv:    g("sync_interval_seconds", "Sync interval in force (0: not managed)."),
		refusing:    g("writes_refused", "1 while new writes are refused (Critical level)."),
		battery:     g("battery_percent", "Battery charge in percent (absent without a battery)."),
		onBattery:   g("on_battery", "1 while the device runs on its battery."),
		linkQuality: g("link_quality", "Link to the hub: 0 unknown, 1 good, 2 degraded, 3 poor, 4 down."),
		linkRTT:     g("link_rtt_seconds", "Smoothed round-trip time to the hub."),
	}
	for r := range numResources {
		m.usage[r] = usage.WithLabelValues(r.String())
		m.level[r] = level.WithLabelValues(r.String())
	}
	for i, r := range []Resource{ResourceMemory, ResourceDisk} {
		m.usedBytes[i] = used.WithLabelValues(r.String())
		m.limitBytes[i] = limit.WithLabelValues(r.String())
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{usage, level, used, limit, m.cpuUsed, m.cpuBudget, m.rss, m.goHeap,
		m.transitions, m.actions, m.sampleErrs, m.sampleDur, m.syncIntv, m.refusing, m.onBattery,
		m.linkQuality, m.linkRTT} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("resources: register metrics: %w", err)
		}
	}
	return m, nil
}

// registerBattery adds the battery gauge once a battery is seen, so a
// mains-only device exports no meaningless battery series.
func (m *monitorMetrics) registerBattery(reg prometheus.Registerer) {
	if reg != nil {
		_ = reg.Register(m.battery) // a second registration is harmless
	}
}

// observe records one decision.
func (m *monitorMetrics) observe(s Samples, d *Decision) {
	m.sampleDur.Observe(s.Cost.Seconds())
	for r := range numResources {
		rs := d.Resources[r]
		m.level[r].Set(float64(rs.Level))
		if rs.Err != nil {
			continue
		}
		m.usage[r].Set(rs.Usage.Percent / 100)
		if r == ResourceCPU {
			m.cpuUsed.Set(rs.Usage.Used)
			m.cpuBudget.Set(rs.Usage.Limit)
			continue
		}
		m.usedBytes[r].Set(rs.Usage.Used)
		m.limitBytes[r].Set(rs.Usage.Limit)
	}
	m.overall.Set(float64(d.Overall))
	if s.Memory.Err == nil {
		m.rss.Set(float64(s.Memory.RSS))
	}
	m.goHeap.Set(float64(s.Memory.GoHeap))
	for _, t := range d.Transitions {
		m.transitions.WithLabelValues(t.Resource, t.To.String()).Inc()
	}
	m.syncIntv.Set(d.SyncInterval.Seconds())
	m.refusing.Set(b2f(d.RefuseReason != ""))
	m.battery.Set(s.Battery.Percent)
	m.onBattery.Set(b2f(s.Battery.Discharging()))
	m.linkQuality.Set(float64(d.Link))
	m.linkRTT.Set(s.Link.RTT.Seconds())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
