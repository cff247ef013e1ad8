package resources

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ErrNotSampled marks a resource that has no figures in a sampling round (no
// source configured, or the first CPU round that has no interval yet).
var ErrNotSampled = errors.New("resources: not sampled")

// Samples is one sampling round: the raw figures the pure core (Policy)
// turns into levels and actions. A sampler that failed leaves its Err set;
// the resource then keeps its level for that round.
type Samples struct {
	Time    time.Time
	Memory  MemorySample
	Disk    DiskSample
	CPU     CPUSample
	Battery BatterySample
	Link    LinkSample
	// Cost is how long the sampling round took (reported, not judged).
	Cost time.Duration
}

// Usage is one resource's consumption against its limit. Used and Limit are
// bytes for memory and disk, cores for CPU.
type Usage struct {
	Used    float64 `json:"used"`
	Limit   float64 `json:"limit"`
	Percent float64 `json:"percent"`
	// Source names the measure that gave the figures, e.g. "rss/memory_limit".
	Source string `json:"source"`
}

// MemorySample holds the memory figures of one round. Percent is the worst of
// the measures that apply:
//   - RSS against Limit (memory_limit), when Limit is set;
//   - the cgroup's working set (usage minus inactive file pages, as the
//     kernel reclaims those first) against the cgroup limit, when one is set;
//   - when neither is set, the host's used memory (total minus available)
//     against its total.
type MemorySample struct {
	RSS         int64 // resident set size of the process
	GoHeap      int64 // bytes in live and not yet swept heap objects
	GoRuntime   int64 // memory mapped by the Go runtime and not released
	Limit       int64 // memory_limit, 0 = not set
	CgroupUsage int64 // working set of the tightest limited cgroup
	CgroupLimit int64 // 0 = no cgroup memory limit
	HostUsed    int64
	HostTotal   int64
	Err         error
}

// Usage returns the memory usage the levels are computed from.
func (m MemorySample) Usage() (Usage, error) {
	if m.Err != nil {
		return Usage{}, m.Err
	}
	var u Usage
	found := false
	consider := func(used, limit int64, source string) {
		if limit <= 0 {
			return
		}
		c := usage(used, limit, source)
		if !found || c.Percent > u.Percent {
			u, found = c, true
		}
	}
	consider(m.RSS, m.Limit, "rss/memory_limit")
	consider(m.CgroupUsage, m.CgroupLimit, "cgroup")
	if !found {
		consider(m.HostUsed, m.HostTotal, "host")
	}
	if !found {
		return Usage{}, fmt.Errorf("%w: no memory limit known", ErrNotSampled)
	}
	return u, nil
}

// DiskSample holds the storage figures of one round. The store may grow up
// to its capacity: the bytes it holds plus the filesystem's free space above
// Reserve, capped by StorageLimit when set. Percent is StoreBytes against that
// capacity, so a small storage_limit and a nearly full filesystem both count.
// Without a store figure (StoreKnown false) the filesystem's own use is taken.
type DiskSample struct {
	StoreBytes   int64
	StoreKnown   bool
	StorageLimit int64 // storage_limit, 0 = not set
	FSTotal      int64 // 0 = filesystem not measured
	FSFree       int64 // bytes available to the process
	Reserve      int64 // free bytes kept for compactions and other tenants
	Err          error
}

// Usage returns the disk usage the levels are computed from.
func (d DiskSample) Usage() (Usage, error) {
	if d.Err != nil {
		return Usage{}, d.Err
	}
	if !d.StoreKnown {
		if d.FSTotal <= 0 {
			return Usage{}, fmt.Errorf("%w: neither store bytes nor filesystem known", ErrNotSampled)
		}
		return usage(d.FSTotal-d.FSFree, d.FSTotal, "filesystem"), nil
	}
	capacity, source := int64(math.MaxInt64), "storage_limit"
	if d.FSTotal > 0 {
		capacity, source = d.StoreBytes+max(0, d.FSFree-d.Reserve), "filesystem"
	}
	if d.StorageLimit > 0 && d.StorageLimit <= capacity {
		capacity, source = d.StorageLimit, "storage_limit"
	}
	if capacity == math.MaxInt64 {
		return Usage{}, fmt.Errorf("%w: no storage_limit and no filesystem figures", ErrNotSampled)
	}
	return usage(d.StoreBytes, capacity, source), nil
}

// CPUSample is the process's CPU time over the window since the previous
// round, against Procs cores (GOMAXPROCS, which cpu_budget sets).
type CPUSample struct {
	Seconds float64       // CPU seconds (user + system) used in the window
	Window  time.Duration // wall time of the window
	Procs   int
	Err     error
}

// Usage returns the CPU use in cores against the budget in cores.
func (c CPUSample) Usage() (Usage, error) {
	if c.Err != nil {
		return Usage{}, c.Err
	}
	if c.Window <= 0 || c.Procs <= 0 {
		return Usage{}, fmt.Errorf("%w: no cpu window yet", ErrNotSampled)
	}
	used := max(0, c.Seconds) / c.Window.Seconds()
	return Usage{Used: used, Limit: float64(c.Procs), Percent: 100 * used / float64(c.Procs), Source: "gomaxprocs"}, nil
}

// usage builds a Usage from integer figures; a zero or negative capacity
// with something stored is full.
func usage(used, limit int64, source string) Usage {
	u := Usage{Used: float64(used), Limit: float64(limit), Source: source}
	switch {
	case limit > 0:
		u.Percent = 100 * float64(used) / float64(limit)
	default:
		u.Percent = 100
	}
	return u
}

// BatterySample is the power state of the device. Present is false on a
// device without a battery (mains powered), which never slows sync.
type BatterySample struct {
	Present bool    `json:"present"`
	Percent float64 `json:"percent"`
	// Charging is true when a battery reports Charging or Full.
	Charging bool `json:"charging"`
	// ExternalPower is true when a mains/USB supply reports online.
	ExternalPower bool `json:"external_power"`
	// Status is the kernel's status of the first battery (Discharging, ...).
	Status string `json:"status,omitempty"`
	Err    error  `json:"-"`
}

// Discharging reports whether the device runs on its battery.
func (b BatterySample) Discharging() bool {
	return b.Present && !b.Charging && !b.ExternalPower
}

// LinkStats is what the syncer knows of its link to the hub. The syncer
// implements LinkStatsProvider to report it.
type LinkStats struct {
	// Connected is true while the MQTT session to the hub is up.
	Connected bool `json:"connected"`
	// RTT is a smoothed round-trip time (for example publish to Ack);
	// zero when not measured yet.
	RTT time.Duration `json:"rtt"`
	// ConsecutiveFailures counts sync rounds or connection attempts that
	// failed since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// Throughput in bytes per second over the recent past. Shown only: an
	// idle link has a low throughput without being poor.
	Throughput float64 `json:"throughput"`
}

// LinkSample is the link figures of one round; Known is false when no
// provider is wired (hub mode, or no syncer).
type LinkSample struct {
	Known bool
	LinkStats
}

// formatUsage writes used/limit in the resource's unit for log lines and
// refusal reasons.
func formatUsage(r Resource, u Usage) string {
	if r == ResourceCPU {
		return strconv.FormatFloat(u.Used, 'f', 2, 64) + " of " + strconv.FormatFloat(u.Limit, 'f', 0, 64) + " cores"
	}
	return formatBytes(int64(u.Used)) + " of " + formatBytes(int64(u.Limit))
}
