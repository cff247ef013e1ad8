package resources

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSampleRound measures one sampling round on the real sources:
// statm, runtime/metrics, the machine's cgroup, getrusage, statfs of a data
// dir, a fake sysfs battery, and a link provider. "configured" has a
// memory_limit (the usual gateway); "host-memory" has none, so the host's
// /proc/meminfo is read every round.
func BenchmarkSampleRound(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit Bytes
	}{{"configured", 128 << 20}, {"host-memory", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			sup := fakeSupply(b, map[string]map[string]string{
				"AC":   {"type": "Mains", "online": "0"},
				"BAT0": {"type": "Battery", "present": "1", "capacity": "64", "status": "Discharging"},
			})
			cfg := DefaultConfig()
			cfg.MemoryLimit, cfg.StorageLimit = bc.limit, 1<<30
			sy := &testSyncer{link: LinkStats{Connected: true, RTT: 20 * time.Millisecond}}
			s := newSampler(cfg, sources{
				dataDir: b.TempDir(), storage: func() (int64, error) { return 1 << 20, nil }, link: sy,
				cgroupRoot: "/sys/fs/cgroup", procSelfCgroup: "/proc/self/cgroup", powerSupplyPath: sup,
			})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s.sample(ctx)
			}
		})
	}
}

// BenchmarkEvaluate measures the pure core on one round.
func BenchmarkEvaluate(b *testing.B) {
	p := NewPolicy(DefaultConfig(), 30*time.Second)
	s := round(0, 50, 72)
	b.ReportAllocs()
	for b.Loop() {
		s.Time = s.Time.Add(time.Second)
		p.Evaluate(s)
	}
}

// BenchmarkMonitorRound measures a whole round as Run does it: sample,
// evaluate, metrics, snapshot.
func BenchmarkMonitorRound(b *testing.B) {
	st := &testStore{}
	st.set(1<<20, 0)
	m, err := New(Options{
		Config: Config{StorageLimit: 5 << 20, MemoryLimit: 128 << 20}, StorageUsage: st.StorageUsage, DataDir: b.TempDir(),
		BaseSyncInterval: 30 * time.Second, PowerSupplyPath: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.round(ctx)
	}
}
