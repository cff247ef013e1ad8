package resources

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/mem"
)

// Go runtime metrics read every round (runtime/metrics, no stop-the-world).
var goMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
}

// sampler gathers one round of Samples from the real sources. It is owned by
// the monitor's sampling goroutine (not safe for concurrent use).
type sampler struct {
	memoryLimit  int64
	storageLimit int64
	reserve      int64
	dataDir      string
	storage      func() (int64, error)
	link         LinkStatsProvider

	rss     *rssReader
	goStats []metrics.Sample
	cgroup  cgroupMemory
	cgErr   error
	power   *powerSupply // nil: battery disabled

	prevCPU float64
	prevAt  time.Time
	cpuErr  error
}

// sources are the injectable inputs of a sampler.
type sources struct {
	dataDir         string
	storage         func() (int64, error)
	link            LinkStatsProvider
	cgroupRoot      string
	procSelfCgroup  string
	powerSupplyPath string // "" disables the battery
}

func newSampler(cfg Config, src sources) *sampler {
	s := &sampler{
		memoryLimit:  int64(cfg.MemoryLimit),
		storageLimit: int64(cfg.StorageLimit),
		reserve:      int64(cfg.DiskReserve),
		dataDir:      src.dataDir,
		storage:      src.storage,
		link:         src.link,
		goStats:      make([]metrics.Sample, len(goMetrics)),
	}
	for i, name := range goMetrics {
		s.goStats[i].Name = name
	}
	s.rss = newRSSReader()
	s.cgroup, s.cgErr = discoverCgroup(src.cgroupRoot, src.procSelfCgroup)
	if src.powerSupplyPath != "" && !cfg.Battery.Disabled {
		s.power = newPowerSupply(src.powerSupplyPath)
	}
	s.restartCPU()
	return s
}

// restartCPU starts the CPU window now: the time from construction to the
// monitor's start is the node's start-up (opening the store, recovering
// Pebble), which would read as a burst of CPU use.
func (s *sampler) restartCPU() {
	s.prevCPU, s.cpuErr = processCPUSeconds()
	s.prevAt = time.Now()
}

// sample takes one round. Each source failing only marks its own sample.
func (s *sampler) sample(ctx context.Context) Samples {
	start := time.Now()
	out := Samples{Time: start}
	out.Memory = s.memory(ctx)
	out.Disk = s.disk(ctx)
	out.CPU = s.cpu(start)
	if s.power != nil {
		out.Battery = s.power.read()
	}
	if s.link != nil {
		out.Link = LinkSample{Known: true, LinkStats: s.link.LinkStats()}
	}
	out.Cost = time.Since(start)
	return out
}

func (s *sampler) memory(ctx context.Context) MemorySample {
	m := MemorySample{Limit: s.memoryLimit}
	metrics.Read(s.goStats)
	m.GoHeap = int64(s.goStats[0].Value.Uint64())
	m.GoRuntime = int64(s.goStats[1].Value.Uint64() - s.goStats[2].Value.Uint64())
	rss, err := s.rss.read(m.GoRuntime)
	if err != nil {
		m.Err = fmt.Errorf("resources: process rss: %w", err)
		return m
	}
	m.RSS = rss
	if s.cgErr == nil {
		if m.CgroupUsage, m.CgroupLimit, err = s.cgroup.read(); err != nil {
			m.Err = err
			return m
		}
	}
	if m.Limit == 0 && m.CgroupLimit == 0 {
		vm, err := mem.VirtualMemoryWithContext(ctx)
		if err != nil {
			m.Err = fmt.Errorf("resources: host memory: %w", err)
			return m
		}
		m.HostTotal, m.HostUsed = int64(vm.Total), int64(vm.Total-vm.Available)
	}
	return m
}

func (s *sampler) disk(ctx context.Context) DiskSample {
	d := DiskSample{StorageLimit: s.storageLimit, Reserve: s.reserve}
	if s.storage != nil {
		n, err := s.storage()
		if err != nil {
			d.Err = fmt.Errorf("resources: store bytes: %w", err)
			return d
		}
		d.StoreBytes, d.StoreKnown = n, true
	}
	if s.dataDir != "" {
		u, err := disk.UsageWithContext(ctx, s.dataDir)
		if err != nil {
			d.Err = fmt.Errorf("resources: filesystem of %s: %w", s.dataDir, err)
			return d
		}
		d.FSTotal, d.FSFree = int64(u.Total), int64(u.Free)
	}
	return d
}

func (s *sampler) cpu(now time.Time) CPUSample {
	c := CPUSample{Procs: runtime.GOMAXPROCS(0)}
	sec, err := processCPUSeconds()
	if err != nil {
		c.Err = fmt.Errorf("resources: process cpu time: %w", err)
		return c
	}
	if s.cpuErr != nil { // no previous reading: this round starts the window
		s.cpuErr, s.prevCPU, s.prevAt = nil, sec, now
		c.Err = fmt.Errorf("%w: cpu window starts", ErrNotSampled)
		return c
	}
	c.Seconds, c.Window = sec-s.prevCPU, now.Sub(s.prevAt)
	s.prevCPU, s.prevAt = sec, now
	if c.Window < time.Millisecond {
		c.Err = fmt.Errorf("%w: cpu window too short", ErrNotSampled)
	}
	return c
}
