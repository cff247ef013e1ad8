package resources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrRunning is returned by Run when the monitor already runs.
	ErrRunning = errors.New("resources: monitor already running")
	// ErrNoSample is returned by EDGE.RESOURCES before the first round.
	ErrNoSample = errors.New("resources: no sample yet")
)

// Options configure a Monitor. Every action target may be nil: that action
// is then skipped (counted as "unwired").
type Options struct {
	// Config is the edge.resources section; New applies its defaults and
	// validates it.
	Config Config
	Logger *slog.Logger
	// Registerer receives the ferrite_resources_* metrics (nil: none).
	Registerer prometheus.Registerer

	// DataDir is the data directory whose filesystem is measured ("" none).
	DataDir string
	// StorageUsage reports the bytes the store holds (nil: the disk level
	// follows the filesystem's use alone). It must not block.
	StorageUsage func() (int64, error)
	// BaseSyncInterval is the syncer's configured interval; 0 leaves sync
	// pacing alone (hub mode, no syncer).
	BaseSyncInterval time.Duration
	// Runtime is what ApplyRuntime did, shown in the snapshot (optional).
	Runtime *RuntimeSettings

	Evictor           Evictor
	MemoryReleaser    MemoryReleaser
	Compactor         Compactor
	Offloader         Offloader
	RollUp            RollUp
	WriteGate         WriteGate
	CompressionRaiser CompressionRaiser
	SyncController    SyncController
	LinkStats         LinkStatsProvider

	// OnChange is called on the sampling goroutine after a round with a
	// notable change (see Decision.Changed); the lead publishes the
	// retained $ferrite/status/<node>/resources from it. It must not block.
	OnChange func(Snapshot)

	// Sources, injectable for tests: defaults DefaultPowerSupplyPath,
	// /sys/fs/cgroup and /proc/self/cgroup.
	PowerSupplyPath string
	CgroupRoot      string
	ProcSelfCgroup  string
}

// Monitor samples resources, keeps their levels and acts on them. Run drives
// it; Snapshot and Commands read it from any goroutine.
type Monitor struct {
	opts    Options
	cfg     Config
	log     *slog.Logger
	metrics *monitorMetrics
	sampler *sampler
	policy  *Policy

	running atomic.Bool
	wake    chan struct{} // SampleNow
	work    chan struct{} // a batch is pending

	pendMu  sync.Mutex
	pending []Action

	mu      sync.Mutex
	snap    Snapshot
	records map[ActionKind]ActionRecord

	failing map[string]string // source -> error text, for logging changes
	battery bool              // battery gauge registered
}

// New builds a monitor; it samples nothing until Run.
func New(opts Options) (*Monitor, error) {
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PowerSupplyPath == "" {
		opts.PowerSupplyPath = DefaultPowerSupplyPath
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = "/sys/fs/cgroup"
	}
	if opts.ProcSelfCgroup == "" {
		opts.ProcSelfCgroup = "/proc/self/cgroup"
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		opts: opts, cfg: cfg, log: opts.Logger, metrics: met,
		policy:  NewPolicy(cfg, opts.BaseSyncInterval),
		wake:    make(chan struct{}, 1),
		work:    make(chan struct{}, 1),
		records: make(map[ActionKind]ActionRecord),
		failing: make(map[string]string),
	}
	m.sampler = newSampler(cfg, sources{
		dataDir: opts.DataDir, storage: opts.StorageUsage, link: opts.LinkStats,
		cgroupRoot: opts.CgroupRoot, procSelfCgroup: opts.ProcSelfCgroup,
		powerSupplyPath: opts.PowerSupplyPath,
	})
	cg := m.sampler.cgroup
	m.log.Debug("resource monitor sources", "cgroup_version", cg.version, "cgroup_dirs", cg.dirs,
		"cgroup_error", m.sampler.cgErr, "data_dir", opts.DataDir)
	return m, nil
}

// Run samples every SampleInterval (and on SampleNow) until ctx ends, then
// waits for its action goroutine and returns nil. One Run at a time.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	m.sampler.restartCPU()
	m.log.Info("resource monitor started", "sample_interval", m.cfg.SampleInterval,
		"memory_limit", m.cfg.MemoryLimit, "storage_limit", m.cfg.StorageLimit, "cpu_budget", m.cfg.CPUBudget,
		"cgroup_version", m.sampler.cgroup.version, "base_sync_interval", m.opts.BaseSyncInterval)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { m.actionLoop(ctx) })
	t := time.NewTicker(m.cfg.SampleInterval)
	defer t.Stop()
	for {
		m.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.wake:
		}
	}
}

// SampleNow asks the running monitor for a round at once (for example from
// the store when a write brings it near its limit). It never blocks.
func (m *Monitor) SampleNow() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Snapshot returns the state after the last round (zero Time before it).
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	s.Actions = slices.Clone(s.Actions)
	s.Recent = slices.Clone(s.Recent)
	return s
}

// round samples, decides, applies state actions, queues one-shot actions.
func (m *Monitor) round(ctx context.Context) {
	s := m.sampler.sample(ctx)
	d := m.policy.Evaluate(s)
	m.noteSourceErrors(s)
	m.logTransitions(&d)
	var batch []Action
	for _, a := range d.Actions {
		if a.Kind.OneShot() {
			batch = append(batch, a)
			continue
		}
		m.applyState(a)
	}
	if len(batch) > 0 {
		m.enqueue(batch)
	}
	if s.Battery.Present && !m.battery {
		m.battery = true
		m.metrics.registerBattery(m.opts.Registerer)
	}
	m.metrics.observe(s, &d)
	snap := buildSnapshot(m.cfg, m.opts.BaseSyncInterval, s, &d)
	snap.Runtime = m.opts.Runtime
	m.mu.Lock()
	snap.Recent = m.recentLocked()
	m.snap = snap
	m.mu.Unlock()
	if d.Changed && m.opts.OnChange != nil {
		m.opts.OnChange(m.Snapshot())
	}
}

// applyState applies a state action at once.
func (m *Monitor) applyState(a Action) {
	wired := false
	switch a.Kind {
	case ActRefuseWrites, ActAcceptWrites:
		if m.opts.WriteGate != nil {
			m.opts.WriteGate.SetRefuseWrites(a.Reason)
			wired = true
		}
		if a.Kind == ActRefuseWrites {
			m.log.Warn("refusing new writes", "reason", a.Reason)
		} else {
			m.log.Info("accepting writes again")
		}
	case ActHighCompression:
		if m.opts.CompressionRaiser != nil {
			m.opts.CompressionRaiser.SetHighCompression(a.On)
			wired = true
		}
		m.log.Info("high compression", "on", a.On)
	case ActSetSyncInterval:
		if m.opts.SyncController != nil {
			m.opts.SyncController.SetInterval(a.Interval)
			wired = true
		}
		m.log.Info("sync interval", "interval", a.Interval, "base", m.opts.BaseSyncInterval)
	}
	m.metrics.actions.WithLabelValues(a.Kind.String(), resultLabel(wired, nil)).Inc()
}

func resultLabel(wired bool, err error) string {
	switch {
	case !wired:
		return "unwired"
	case err != nil:
		return "error"
	}
	return "ok"
}

// logTransitions logs level changes: rising to High or Critical at Warn.
func (m *Monitor) logTransitions(d *Decision) {
	for _, t := range d.Transitions {
		lvl := slog.LevelInfo
		if t.To > t.From && t.To >= High {
			lvl = slog.LevelWarn
		}
		attrs := []any{"resource", t.Resource, "from", t.From, "to", t.To}
		if t.Resource != "overall" {
			attrs = append(attrs, "percent", fmt.Sprintf("%.1f", t.Usage.Percent), "used", t.Usage.Used,
				"limit", t.Usage.Limit, "source", t.Usage.Source)
		}
		m.log.Log(context.Background(), lvl, "resource level changed", attrs...)
	}
}

// noteSourceErrors counts failing sources and logs when one starts failing,
// fails differently, or recovers (not every round: no log flood).
func (m *Monitor) noteSourceErrors(s Samples) {
	for _, src := range []struct {
		name string
		err  error
	}{{"memory", s.Memory.Err}, {"disk", s.Disk.Err}, {"cpu", s.CPU.Err}, {"battery", s.Battery.Err}} {
		err := src.err
		if errors.Is(err, ErrNotSampled) {
			err = nil
		}
		prev, was := m.failing[src.name]
		switch {
		case err != nil:
			m.metrics.sampleErrs.WithLabelValues(src.name).Inc()
			if !was || prev != err.Error() {
				m.failing[src.name] = err.Error()
				m.log.Warn("resource sampling failed", "source", src.name, "err", err)
			}
		case was:
			delete(m.failing, src.name)
			m.log.Info("resource sampling recovered", "source", src.name)
		}
	}
}
