package resources

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by every problem Validate reports.
var ErrInvalidConfig = errors.New("resources: invalid config")

// MinMemoryLimit is the smallest memory_limit accepted: the Go runtime, the
// broker and Pebble need a few MiB before the first byte of data.
const MinMemoryLimit = 16 << 20

// Config is the `edge.resources` section of the node configuration. The zero
// value of every field means "default"; call SetDefaults, then Validate.
type Config struct {
	// MemoryLimit caps the process (RSS); it also sets GOMEMLIMIT and the
	// store's cache budget at start (see MemoryBudgetFor). 0 = no limit of
	// our own (a cgroup limit, if any, still applies).
	MemoryLimit Bytes `yaml:"memory_limit"`
	// StorageLimit caps the bytes of the store in the data directory.
	// 0 = bounded only by the filesystem's free space.
	StorageLimit Bytes `yaml:"storage_limit"`
	// DiskReserve is free filesystem space kept out of the store's capacity
	// (Pebble compactions need room to write their output). Default 16 MiB;
	// negative: none (a YAML 0 is mapped to it: see ExplicitZeros).
	DiskReserve Bytes `yaml:"disk_reserve"`
	// CPUBudget is low, medium or high (default high): see CPUBudget.
	CPUBudget CPUBudget `yaml:"cpu_budget"`

	// SampleInterval is the time between sampling rounds (default 5s).
	SampleInterval time.Duration `yaml:"sample_interval"`
	// ActionInterval is how often a level's one-shot actions (sync now,
	// offload, compact, evict, ...) are repeated while the level holds
	// (default 30s). They also run at once whenever the level rises.
	ActionInterval time.Duration `yaml:"action_interval"`
	// CompactInterval is how often Compact is repeated while the disk
	// stays at Warning or above without an eviction (default 10m): a full
	// compaction rewrites the store, and doing it every action_interval
	// on an unchanging store would only wear the flash. It still runs at
	// once when the disk level rises and after every eviction.
	CompactInterval time.Duration `yaml:"compact_interval"`
	// ActionTimeout bounds one action call (default 2m).
	ActionTimeout time.Duration `yaml:"action_timeout"`
	// MaxSyncInterval caps the slowed-down sync interval (default 15m).
	MaxSyncInterval time.Duration `yaml:"max_sync_interval"`
	// NotifyDelta is the change in the memory or disk usage (percentage
	// points) that makes the monitor notify its change hook even when no
	// level changed (default 5).
	NotifyDelta float64 `yaml:"notify_delta"`

	Hysteresis Hysteresis       `yaml:"hysteresis"`
	Thresholds ThresholdsConfig `yaml:"thresholds"`
	Battery    BatteryConfig    `yaml:"battery"`
	Link       LinkConfig       `yaml:"link"`
}

// ThresholdsConfig overrides the per-resource thresholds (percent).
// Defaults: memory 80/90/95 and disk 70/85/95 as in the feature document,
// cpu 80/90/95 (of the cpu budget).
type ThresholdsConfig struct {
	Memory Thresholds `yaml:"memory"`
	Disk   Thresholds `yaml:"disk"`
	CPU    Thresholds `yaml:"cpu"`
}

// of returns the thresholds of resource r.
func (t ThresholdsConfig) of(r Resource) Thresholds {
	switch r {
	case ResourceMemory:
		return t.Memory
	case ResourceDisk:
		return t.Disk
	}
	return t.CPU
}

// BatteryConfig tunes how the battery slows background sync. While the
// device runs on its battery the sync interval is multiplied by
// DischargingFactor, below Low percent by LowFactor, below Critical percent
// by CriticalFactor. On external power (or without a battery) the factor is 1.
type BatteryConfig struct {
	// Disabled ignores any battery.
	Disabled          bool    `yaml:"disabled"`
	Low               float64 `yaml:"low"`                // percent, default 30
	Critical          float64 `yaml:"critical"`           // percent, default 10
	DischargingFactor float64 `yaml:"discharging_factor"` // default 2
	LowFactor         float64 `yaml:"low_factor"`         // default 4
	CriticalFactor    float64 `yaml:"critical_factor"`    // default 8
}

// LinkConfig tunes how link quality slows sync. A link is degraded when its
// RTT reaches RTTDegraded or a sync round failed; poor when its RTT reaches
// RTTPoor or FailuresPoor consecutive rounds failed; down when disconnected
// (treated as poor). The sync interval is multiplied by DegradedFactor or
// PoorFactor.
type LinkConfig struct {
	RTTDegraded    time.Duration `yaml:"rtt_degraded"`    // default 500ms
	RTTPoor        time.Duration `yaml:"rtt_poor"`        // default 2s
	FailuresPoor   int           `yaml:"failures_poor"`   // default 3
	DegradedFactor float64       `yaml:"degraded_factor"` // default 2
	PoorFactor     float64       `yaml:"poor_factor"`     // default 4
}

// DefaultConfig returns the configuration used when the section is empty.
func DefaultConfig() Config {
	var c Config
	c.SetDefaults()
	return c
}

// ExplicitZeros marks the fields where 0 is a meaningful setting (no disk
// reserve, no hysteresis margin) and not "use the default", for a Config
// whose defaults were applied before its explicit values were decoded
// (the YAML config): SetDefaults then keeps them at 0.
func (c *Config) ExplicitZeros() {
	if c.DiskReserve == 0 {
		c.DiskReserve = -1
	}
	if c.Hysteresis.Margin == 0 {
		c.Hysteresis.Margin = -1
	}
}

// SetDefaults fills every zero field with its default; the negative
// markers of ExplicitZeros become 0.
func (c *Config) SetDefaults() {
	defer func() {
		c.DiskReserve = max(c.DiskReserve, 0)
		c.Hysteresis.Margin = max(c.Hysteresis.Margin, 0)
	}()
	setDefault(&c.DiskReserve, 16<<20)
	setDefault(&c.CPUBudget, CPUHigh)
	setDefault(&c.SampleInterval, 5*time.Second)
	setDefault(&c.ActionInterval, 30*time.Second)
	setDefault(&c.CompactInterval, 10*time.Minute)
	setDefault(&c.ActionTimeout, 2*time.Minute)
	setDefault(&c.MaxSyncInterval, 15*time.Minute)
	setDefault(&c.NotifyDelta, 5)
	setDefault(&c.Hysteresis.Margin, 5)
	setDefault(&c.Hysteresis.Samples, 3)
	defaultThresholds(&c.Thresholds.Memory, Thresholds{80, 90, 95})
	defaultThresholds(&c.Thresholds.Disk, Thresholds{70, 85, 95})
	defaultThresholds(&c.Thresholds.CPU, Thresholds{80, 90, 95})
	b := &c.Battery
	setDefault(&b.Low, 30)
	setDefault(&b.Critical, 10)
	setDefault(&b.DischargingFactor, 2)
	setDefault(&b.LowFactor, 4)
	setDefault(&b.CriticalFactor, 8)
	l := &c.Link
	setDefault(&l.RTTDegraded, 500*time.Millisecond)
	setDefault(&l.RTTPoor, 2*time.Second)
	setDefault(&l.FailuresPoor, 3)
	setDefault(&l.DegradedFactor, 2)
	setDefault(&l.PoorFactor, 4)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func defaultThresholds(t *Thresholds, d Thresholds) {
	setDefault(&t.Warning, d.Warning)
	setDefault(&t.High, d.High)
	setDefault(&t.Critical, d.Critical)
}

// Validate reports every problem of a defaulted configuration at once, each
// naming its field, joined into one error wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	var v validator
	if c.MemoryLimit != 0 && c.MemoryLimit < MinMemoryLimit {
		v.add("memory_limit", "%s is below the minimum %s", c.MemoryLimit, Bytes(MinMemoryLimit))
	}
	v.nonNegative("storage_limit", int64(c.StorageLimit))
	v.nonNegative("disk_reserve", int64(c.DiskReserve))
	if _, err := c.CPUBudget.share(); err != nil {
		v.add("cpu_budget", "%v", err)
	}
	v.atLeast("sample_interval", c.SampleInterval, 10*time.Millisecond)
	v.atLeast("action_interval", c.ActionInterval, 10*time.Millisecond)
	v.atLeast("compact_interval", c.CompactInterval, 10*time.Millisecond)
	v.atLeast("action_timeout", c.ActionTimeout, 10*time.Millisecond)
	v.atLeast("max_sync_interval", c.MaxSyncInterval, time.Second)
	if !(c.NotifyDelta > 0 && c.NotifyDelta <= 100) {
		v.add("notify_delta", "%v must be in (0, 100]", c.NotifyDelta)
	}
	if !(c.Hysteresis.Margin >= 0 && c.Hysteresis.Margin < 50) {
		v.add("hysteresis.margin", "%v must be in [0, 50) percentage points", c.Hysteresis.Margin)
	}
	if c.Hysteresis.Samples < 1 || c.Hysteresis.Samples > 1000 {
		v.add("hysteresis.samples", "%d must be in [1, 1000]", c.Hysteresis.Samples)
	}
	for r := range numResources {
		v.thresholds("thresholds."+r.String(), c.Thresholds.of(r), c.Hysteresis.Margin)
	}
	b := c.Battery
	if !(b.Critical > 0 && b.Critical < b.Low && b.Low <= 100) {
		v.add("battery", "want 0 < critical (%v) < low (%v) <= 100", b.Critical, b.Low)
	}
	v.factor("battery.discharging_factor", b.DischargingFactor)
	v.factor("battery.low_factor", b.LowFactor)
	v.factor("battery.critical_factor", b.CriticalFactor)
	l := c.Link
	if !(l.RTTDegraded > 0 && l.RTTDegraded < l.RTTPoor) {
		v.add("link", "want 0 < rtt_degraded (%v) < rtt_poor (%v)", l.RTTDegraded, l.RTTPoor)
	}
	if l.FailuresPoor < 1 {
		v.add("link.failures_poor", "%d must be at least 1", l.FailuresPoor)
	}
	v.factor("link.degraded_factor", l.DegradedFactor)
	v.factor("link.poor_factor", l.PoorFactor)
	return v.err()
}

// validator collects field-named problems.
type validator struct{ problems []error }

func (v *validator) add(field, format string, args ...any) {
	v.problems = append(v.problems, fmt.Errorf("%w: resources.%s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
}

func (v *validator) nonNegative(field string, n int64) {
	if n < 0 {
		v.add(field, "%d must not be negative", n)
	}
}

func (v *validator) atLeast(field string, d, least time.Duration) {
	if d < least {
		v.add(field, "%v must be at least %v", d, least)
	}
}

func (v *validator) factor(field string, f float64) {
	if !(f >= 1 && f <= 1000) {
		v.add(field, "%v must be in [1, 1000]", f)
	}
}

func (v *validator) thresholds(field string, t Thresholds, margin float64) {
	for _, x := range []float64{t.Warning, t.High, t.Critical} {
		if math.IsNaN(x) {
			v.add(field, "NaN threshold")
			return
		}
	}
	if !(t.Warning > margin && t.Warning < t.High && t.High < t.Critical && t.Critical <= 100) {
		v.add(field, "want hysteresis margin (%v) < warning (%v) < high (%v) < critical (%v) <= 100",
			margin, t.Warning, t.High, t.Critical)
	}
}

func (v *validator) err() error { return errors.Join(v.problems...) }

// CPUBudget is the share of the machine's CPUs the node may use:
//
//	low     25 % of the default GOMAXPROCS (at least 1), batch size hint 64
//	medium  50 % (at least 1), batch size hint 256
//	high    100 % (GOMAXPROCS left as the runtime chose it), batch size hint 1024
//
// The default GOMAXPROCS is the runtime's: the number of CPUs, lowered by a
// cgroup CPU quota, or the GOMAXPROCS environment variable.
type CPUBudget string

const (
	CPULow    CPUBudget = "low"
	CPUMedium CPUBudget = "medium"
	CPUHigh   CPUBudget = "high"
)

func (b CPUBudget) share() (float64, error) {
	switch CPUBudget(strings.ToLower(string(b))) {
	case CPULow:
		return 0.25, nil
	case CPUMedium:
		return 0.5, nil
	case CPUHigh, "":
		return 1, nil
	}
	return 0, fmt.Errorf("unknown cpu budget %q (low, medium, high)", string(b))
}

// Procs returns the GOMAXPROCS the budget allows out of base processors.
func (b CPUBudget) Procs(base int) int {
	share, err := b.share()
	if err != nil || base < 1 {
		return max(base, 1)
	}
	return max(1, int(math.Ceil(share*float64(base))))
}

// BatchSize returns the batch size hint for the budget: how many messages or
// ops a worker (ingest batches, sync rounds) should take at once, so a small
// budget yields the CPU more often.
func (b CPUBudget) BatchSize() int {
	share, _ := b.share()
	switch {
	case share <= 0.25:
		return 64
	case share <= 0.5:
		return 256
	}
	return 1024
}
