package resources

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const mib = 1 << 20

// newTestMonitor builds a monitor on real samplers: the store's bytes come
// from st, the filesystem is t.TempDir()'s, memory is measured against a
// 4 GiB memory_limit with no cgroup (a fixture without one), and the battery
// from an empty fake sysfs unless opts set one.
func newTestMonitor(t *testing.T, st *testStore, sy *testSyncer, opts Options) (*Monitor, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := &opts.Config
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = 4 << 30
	}
	if cfg.StorageLimit == 0 {
		cfg.StorageLimit = 5 * mib
	}
	cfg.DiskReserve = 1 // the test machine's free space must not matter
	opts.Registerer = reg
	opts.DataDir = t.TempDir()
	opts.StorageUsage = st.StorageUsage
	opts.Evictor, opts.MemoryReleaser, opts.Compactor, opts.Offloader = st, st, st, st
	opts.RollUp, opts.WriteGate, opts.CompressionRaiser = st, st, st
	if sy != nil {
		opts.SyncController, opts.LinkStats = sy, sy
	}
	if opts.PowerSupplyPath == "" {
		opts.PowerSupplyPath = t.TempDir()
	}
	opts.CgroupRoot = filepath.Join("testdata", "cgroup", "none", "fs")
	opts.ProcSelfCgroup = filepath.Join("testdata", "cgroup", "none", "proc_self_cgroup")
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// step runs one round and the batch it queued, as Run would.
func step(m *Monitor) Snapshot {
	ctx := context.Background()
	m.round(ctx)
	m.runPending(ctx)
	return m.Snapshot()
}

func TestMonitorWalksTheLevels(t *testing.T) {
	st, sy := &testStore{}, &testSyncer{}
	var mu sync.Mutex
	var notified []Level
	m, reg := newTestMonitor(t, st, sy, Options{
		BaseSyncInterval: 30 * time.Second,
		OnChange: func(s Snapshot) {
			mu.Lock()
			notified = append(notified, s.Level)
			mu.Unlock()
		},
	})

	sy.setLink(LinkStats{Connected: true, RTT: 20 * time.Millisecond})
	st.set(1*mib, 0)
	if s := step(m); s.Level != Normal || s.Disk.Level != Normal {
		t.Fatalf("20 %%: level %v disk %v", s.Level, s.Disk.Level)
	}

	st.set(36*mib/10, 0) // 72 %
	s := step(m)
	got := st.snapshot()
	if s.Level != Warning || got.compactions != 1 || got.offloads != 1 || len(got.evicts) != 0 {
		t.Fatalf("72 %%: level %v, compactions %d offloads %d evicts %v; want warning, 1, 1, none",
			s.Level, got.compactions, got.offloads, got.evicts)
	}
	if syncs, _ := sy.state(); syncs != 1 {
		t.Fatalf("warning: %d syncs, want 1", syncs)
	}

	st.set(44*mib/10, 2*mib) // 88 %, 2 MiB evictable
	s = step(m)
	got = st.snapshot()
	wantEvict := int64(44*mib/10) - int64(0.65*5*mib)
	if s.Level != High || !got.highComp || got.rollups != 1 || !slices.Equal(got.evicts, []int64{wantEvict}) {
		t.Fatalf("88 %%: level %v highComp %v rollups %d evicts %v; want high, true, 1, [%d]",
			s.Level, got.highComp, got.rollups, got.evicts, wantEvict)
	}
	if got.bytes != 44*mib/10-wantEvict || got.compactions != 2 {
		t.Fatalf("after eviction: %d bytes, %d compactions", got.bytes, got.compactions)
	}

	st.set(49*mib/10, 0) // 98 %, nothing evictable
	s = step(m)
	got = st.snapshot()
	if s.Level != Critical || !strings.Contains(got.refuse, "disk critical: 4.9 MiB of 5.0 MiB used (98.0 % by storage_limit") {
		t.Fatalf("98 %%: level %v, gate %q", s.Level, got.refuse)
	}
	if s.RefuseReason != got.refuse || !slices.Contains(s.Actions, "refuse_writes") {
		t.Fatalf("snapshot: reason %q actions %v", s.RefuseReason, s.Actions)
	}

	st.set(1*mib, 0)
	for range 3 {
		s = step(m)
	}
	got = st.snapshot()
	if s.Level != Normal || got.refuse != "" || got.highComp || len(s.Actions) != 0 {
		t.Fatalf("recovered: level %v gate %q highComp %v actions %v", s.Level, got.refuse, got.highComp, s.Actions)
	}
	if len(got.gateCalls) != 2 {
		t.Fatalf("write gate calls %q, want refuse then accept", got.gateCalls)
	}

	mu.Lock()
	levels := slices.Compact(slices.Clone(notified))
	mu.Unlock()
	if want := []Level{Normal, Warning, High, Critical, Normal}; !slices.Equal(levels, want) {
		t.Fatalf("change hook saw %v, want %v", levels, want)
	}
	checkMetric(t, reg, "ferrite_resources_level", map[string]string{"resource": "disk"}, 0)
	checkMetric(t, reg, "ferrite_resources_level_transitions_total", map[string]string{"resource": "overall", "to": "critical"}, 1)
	checkMetric(t, reg, "ferrite_resources_actions_total", map[string]string{"action": "evict", "result": "ok"}, 2)
	checkMetric(t, reg, "ferrite_resources_writes_refused", nil, 0)
	checkMetric(t, reg, "ferrite_resources_limit_bytes", map[string]string{"resource": "disk"}, 5*mib)
}

// checkMetric finds a series by name and labels in reg and compares its value.
func checkMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Counter != nil:
				v = m.Counter.GetValue()
			}
			if v != want {
				t.Fatalf("%s%v = %v, want %v", name, labels, v, want)
			}
			return
		}
	}
	t.Fatalf("%s%v not found", name, labels)
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(labels)
}

func TestMonitorRun(t *testing.T) {
	st := &testStore{}
	st.set(49*mib/10, 0)
	m, _ := newTestMonitor(t, st, nil, Options{Config: Config{SampleInterval: 10 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitFor(t, func() bool {
		got := st.snapshot()
		return got.refuse != "" && got.compactions > 0
	})
	if err := m.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v, want ErrRunning", err)
	}
	st.set(1*mib, 0)
	m.SampleNow()
	waitFor(t, func() bool { return st.snapshot().refuse == "" })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMonitorSyncIntervalFollowsLinkAndBattery drives the monitor with a
// syncer whose link changes and a fake sysfs battery whose files change.
func TestMonitorSyncIntervalFollowsLinkAndBattery(t *testing.T) {
	st, sy := &testStore{}, &testSyncer{}
	st.set(mib, 0)
	supply := t.TempDir()
	bat := filepath.Join(supply, "BAT0")
	if err := os.MkdirAll(bat, 0o755); err != nil {
		t.Fatal(err)
	}
	setBattery := func(capacity, status string) {
		t.Helper()
		for name, v := range map[string]string{"type": "Battery", "capacity": capacity, "status": status} {
			if err := os.WriteFile(filepath.Join(bat, name), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := Config{Hysteresis: Hysteresis{Samples: 1}}
	m, _ := newTestMonitor(t, st, sy, Options{Config: cfg, BaseSyncInterval: 10 * time.Second, PowerSupplyPath: supply})
	good := LinkStats{Connected: true, RTT: 30 * time.Millisecond}
	steps := []struct {
		link     LinkStats
		capacity string
		status   string
		want     time.Duration
	}{
		{good, "90", "Charging", 10 * time.Second},
		{LinkStats{Connected: true, RTT: time.Second}, "90", "Charging", 20 * time.Second},
		{LinkStats{Connected: true, RTT: 3 * time.Second}, "90", "Charging", 40 * time.Second},
		{good, "90", "Discharging", 20 * time.Second},
		{good, "20", "Discharging", 40 * time.Second},
		{LinkStats{}, "5", "Discharging", 5*time.Minute + 20*time.Second},
		{good, "5", "Charging", 10 * time.Second},
	}
	for i, s := range steps {
		sy.setLink(s.link)
		setBattery(s.capacity, s.status)
		snap := step(m)
		_, intervals := sy.state()
		if len(intervals) == 0 || intervals[len(intervals)-1] != s.want || time.Duration(snap.SyncInterval) != s.want {
			t.Fatalf("step %d (%+v, %s %s): intervals %v, snapshot %v; want %v", i, s.link, s.capacity, s.status,
				intervals, time.Duration(snap.SyncInterval), s.want)
		}
	}
}

func TestEdgeResourcesCommand(t *testing.T) {
	st := &testStore{}
	st.set(36*mib/10, 0)
	m, _ := newTestMonitor(t, st, nil, Options{BaseSyncInterval: 30 * time.Second})
	cmds := Commands(m)
	if len(cmds) != 1 || cmds[0].Name != "EDGE.RESOURCES" || !cmds[0].ReadOnly || cmds[0].MaxArgs != 0 {
		t.Fatalf("commands %+v", cmds)
	}
	if _, err := cmds[0].Run(context.Background(), nil); !errors.Is(err, ErrNoSample) {
		t.Fatalf("before the first round: %v, want ErrNoSample", err)
	}
	step(m)
	out, err := cmds[0].Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Level  string `json:"level"`
		Memory struct {
			Used, Limit, Percent float64
			Level                string
			RSS                  int64 `json:"rss"`
		} `json:"memory"`
		Disk struct {
			Used, Limit, Percent float64
			Level, Human         string
		} `json:"disk"`
		CPU            json.RawMessage `json:"cpu"`
		Actions        []string        `json:"actions"`
		SyncInterval   string          `json:"sync_interval"`
		SampleCost     string          `json:"sample_cost"`
		Recent         []ActionRecord  `json:"recent_actions"`
		SampleInterval string          `json:"sample_interval"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if doc.Level != "warning" || doc.Disk.Level != "warning" || doc.Disk.Percent != 72 || doc.Disk.Limit != 5*mib ||
		doc.Disk.Human != "3.6 MiB of 5.0 MiB (72.0 %)" {
		t.Fatalf("disk in %s", b)
	}
	if doc.Memory.RSS <= 0 || doc.Memory.Used != float64(doc.Memory.RSS) || doc.Memory.Limit != 4<<30 {
		t.Fatalf("memory in %s", b)
	}
	if !slices.Equal(doc.Actions, []string{"sync_now", "offload", "compact"}) || doc.SyncInterval != "30s" || doc.SampleInterval != "5s" {
		t.Fatalf("actions/intervals in %s", b)
	}
	if _, err := time.ParseDuration(doc.SampleCost); err != nil || len(doc.Recent) != 3 {
		t.Fatalf("sample cost / recent actions in %s", b)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("the snapshot does not decode into Snapshot: %v", err)
	}
	if snap := out.(Snapshot); back.Level != snap.Level || back.Disk != snap.Disk || back.Link != snap.Link ||
		back.SyncInterval != snap.SyncInterval || !slices.Equal(back.Actions, snap.Actions) {
		t.Fatalf("decoded snapshot differs:\n%+v\n%+v", back, snap)
	}
}

func TestMonitorWithoutTargets(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(Options{
		Config:       Config{StorageLimit: 5 * mib, MemoryLimit: 4 << 30},
		Registerer:   reg,
		StorageUsage: func() (int64, error) { return 5 * mib, nil },
		CgroupRoot:   filepath.Join("testdata", "cgroup", "none", "fs"), ProcSelfCgroup: filepath.Join("testdata", "cgroup", "none", "proc_self_cgroup"),
		PowerSupplyPath: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := step(m)
	if s.Level != Critical || s.RefuseReason == "" {
		t.Fatalf("level %v reason %q", s.Level, s.RefuseReason)
	}
	for _, r := range s.Recent {
		if r.Result != "unwired" {
			t.Fatalf("unwired action %v recorded %q", r.Action, r.Result)
		}
	}
	checkMetric(t, reg, "ferrite_resources_actions_total", map[string]string{"action": "refuse_writes", "result": "unwired"}, 1)
	// A second monitor on the same registry is an error, not a panic.
	if _, err := New(Options{Registerer: reg}); err == nil {
		t.Fatal("duplicate registration accepted")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Options{Config: Config{CPUBudget: "turbo"}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with a bad config: %v", err)
	}
}

func TestSamplerReadsTheMachine(t *testing.T) {
	s := newSampler(DefaultConfig(), sources{
		dataDir: t.TempDir(), storage: func() (int64, error) { return 1, nil },
		cgroupRoot: "/sys/fs/cgroup", procSelfCgroup: "/proc/self/cgroup", powerSupplyPath: DefaultPowerSupplyPath,
	})
	first := s.sample(context.Background())
	// Burn CPU for 5ms and until getrusage shows it (its granularity is the
	// kernel's).
	start, _ := processCPUSeconds()
	from, deadline := time.Now(), time.Now().Add(10*time.Second)
	for now, _ := processCPUSeconds(); (now <= start || time.Since(from) < 5*time.Millisecond) && time.Now().Before(deadline); now, _ = processCPUSeconds() {
	}
	sm := s.sample(context.Background())
	if first.CPU.Err == nil {
		t.Fatalf("first round has a cpu figure without a window")
	}
	if sm.Memory.Err != nil || sm.Memory.RSS <= 0 || sm.Memory.GoHeap <= 0 || sm.Memory.GoRuntime < sm.Memory.GoHeap {
		t.Fatalf("memory %+v", sm.Memory)
	}
	if _, err := sm.Memory.Usage(); err != nil {
		t.Fatalf("memory usage: %v", err)
	}
	if sm.Disk.Err != nil || !sm.Disk.StoreKnown || sm.Disk.FSTotal <= 0 || sm.Disk.FSFree <= 0 {
		t.Fatalf("disk %+v", sm.Disk)
	}
	if u, err := sm.CPU.Usage(); err != nil || u.Used <= 0 {
		t.Fatalf("cpu after spinning: %+v, %v", u, err)
	}
	if sm.Battery.Err != nil || sm.Cost <= 0 {
		t.Fatalf("battery %+v cost %v", sm.Battery, sm.Cost)
	}
}

// logRecorder is a slog handler that keeps the messages it gets.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.Key + "=" + a.Value.String()
		return true
	})
	h.msgs = append(h.msgs, line)
	return nil
}

func (h *logRecorder) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

func TestMonitorLogsFailingSourcesOnceAndHoldsTheLevel(t *testing.T) {
	st := &testStore{}
	st.set(49*mib/10, 0)
	var mu sync.Mutex
	failing := false
	rec := &logRecorder{}
	reg := prometheus.NewRegistry()
	m, err := New(Options{
		Config: Config{StorageLimit: 5 * mib, MemoryLimit: 4 << 30}, Logger: slog.New(rec), Registerer: reg,
		StorageUsage: func() (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return 0, errors.New("store closed")
			}
			return st.StorageUsage()
		},
		WriteGate:  st,
		CgroupRoot: filepath.Join("testdata", "cgroup", "none", "fs"), ProcSelfCgroup: filepath.Join("testdata", "cgroup", "none", "proc_self_cgroup"),
		PowerSupplyPath: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := step(m); s.Level != Critical {
		t.Fatalf("level %v", s.Level)
	}
	mu.Lock()
	failing = true
	mu.Unlock()
	for range 5 {
		s := step(m)
		if s.Level != Critical || s.Disk.Error == "" || st.snapshot().refuse == "" {
			t.Fatalf("failing store figure: level %v disk error %q gate %q; want critical held", s.Level, s.Disk.Error, st.snapshot().refuse)
		}
	}
	if n := rec.count("resource sampling failed source=disk"); n != 1 {
		t.Fatalf("failure logged %d times over 5 rounds, want once", n)
	}
	checkMetric(t, reg, "ferrite_resources_sample_errors_total", map[string]string{"source": "disk"}, 5)
	mu.Lock()
	failing = false
	mu.Unlock()
	step(m)
	if rec.count("resource sampling recovered source=disk") != 1 || rec.count("resource level changed resource=disk from=normal to=critical") != 1 {
		t.Fatalf("logs:\n%s", strings.Join(rec.msgs, "\n"))
	}
}
