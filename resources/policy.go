package resources

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Policy is the pure core of the monitor: it turns sampling rounds into
// levels (with hysteresis) and actions. It does no I/O, starts no goroutine
// and reads no clock (time comes in Samples.Time), so it is tested from
// injected samples. A Policy is not safe for concurrent use.
//
// The rules, for the overall level (the worse of memory and disk; CPU is
// levelled and shown but its level takes no action, as evicting or
// compacting relieves memory and disk, not CPU):
//
//	Warning  sync now, offload synced raw readings; compact when disk >= Warning
//	High     + roll up sensor buckets, high compression on;
//	         disk >= High: evict LRU data down to the disk's exit point
//	         memory >= High: release caches down to memory's exit point, then
//	         return freed heap to the OS
//	Critical + refuse new writes, naming the resources and their figures
//
// The exit point of a resource is its Warning threshold minus the hysteresis
// margin (the usage at which it would return to Normal). One-shot actions run
// as a batch when the memory or disk level rises, then every ActionInterval
// while the overall level stays at Warning or above; within a repeated batch,
// Compact runs only after an eviction or every CompactInterval. State actions
// (refusing writes, high compression, the sync interval) are emitted only
// when they change.
type Policy struct {
	cfg  Config
	base time.Duration

	trackers [numResources]tracker
	overall  Level

	// batched is the memory and disk levels of the last batch, lowered as
	// the levels drop: a level above its batched one makes a batch due.
	batched     [2]Level
	lastBatch   time.Time
	lastCompact time.Time

	refuseKey   string // the critical resources named by the reason in force
	refuse      string
	compression bool
	link        debounce
	battery     debounce
	interval    time.Duration

	evaluated bool
	notified  [numResources]float64 // percents at the last notable change
}

// NewPolicy returns a policy for a defaulted, valid cfg. baseSyncInterval is
// the syncer's configured interval (0: sync pacing is not managed).
func NewPolicy(cfg Config, baseSyncInterval time.Duration) *Policy {
	return &Policy{cfg: cfg, base: baseSyncInterval}
}

// ResourceState is one resource's figures and level in a Decision.
type ResourceState struct {
	Resource Resource
	Level    Level
	Usage    Usage
	// Err is why the round had no usage for the resource; Level is then
	// the level held from earlier rounds.
	Err error
}

// Transition is a level change of a resource or of the overall level.
type Transition struct {
	Resource string // "memory", "disk", "cpu" or "overall"
	From, To Level
	Usage    Usage // zero for "overall"
}

// Decision is the outcome of one Evaluate.
type Decision struct {
	Time      time.Time
	Resources [numResources]ResourceState
	// Overall is the worse of the memory and disk levels.
	Overall         Level
	Link            LinkQuality
	Battery         BatteryState
	SyncInterval    time.Duration // in force after this decision (0: not managed)
	RefuseReason    string        // in force after this decision ("" accepting)
	HighCompression bool          // in force after this decision
	Transitions     []Transition
	// Actions are the one-shot actions to run (in order) and the state
	// changes to apply.
	Actions []Action
	// Changed reports a notable change for the change hook: a transition,
	// a state action, a new link quality or battery state, a memory or disk
	// usage that moved by NotifyDelta points, or the first decision.
	Changed bool
}

// Evaluate feeds one sampling round and returns the decision.
func (p *Policy) Evaluate(s Samples) Decision {
	d := Decision{Time: s.Time}
	p.levels(s, &d)
	before := p.overall
	p.overall = max(d.Resources[ResourceMemory].Level, d.Resources[ResourceDisk].Level)
	d.Overall = p.overall
	if p.overall != before {
		d.Transitions = append(d.Transitions, Transition{Resource: "overall", From: before, To: p.overall})
	}
	d.Actions = p.batch(&d)
	nOneShot := len(d.Actions)
	d.Actions = p.writeGate(&d, d.Actions)
	if want := p.overall >= High; want != p.compression {
		p.compression = want
		d.Actions = append(d.Actions, Action{Kind: ActHighCompression, On: want})
	}
	paced := p.pace(s, &d)
	if iv := SyncInterval(p.base, p.cfg.MaxSyncInterval, d.Link, d.Battery, p.cfg); iv != p.interval {
		p.interval = iv
		d.Actions = append(d.Actions, Action{Kind: ActSetSyncInterval, Interval: iv})
	}
	d.SyncInterval, d.RefuseReason, d.HighCompression = p.interval, p.refuse, p.compression
	d.Changed = !p.evaluated || len(d.Transitions) > 0 || len(d.Actions) > nOneShot || paced || p.moved(&d)
	p.evaluated = true
	if d.Changed {
		for r := range numResources {
			if d.Resources[r].Err == nil {
				p.notified[r] = d.Resources[r].Usage.Percent
			}
		}
	}
	return d
}

// levels computes each resource's usage and level.
func (p *Policy) levels(s Samples, d *Decision) {
	usages := [numResources]func() (Usage, error){s.Memory.Usage, s.Disk.Usage, s.CPU.Usage}
	for r := range numResources {
		rs := &d.Resources[r]
		rs.Resource = r
		u, err := usages[r]()
		if err == nil && (math.IsNaN(u.Percent) || math.IsInf(u.Percent, 0) || u.Percent < 0) {
			err = fmt.Errorf("%w: %s usage %v is not a percentage", ErrNotSampled, r, u.Percent)
		}
		if err != nil {
			rs.Err, rs.Level = err, p.trackers[r].level
			continue
		}
		from, changed := p.trackers[r].observe(u.Percent, p.cfg.Thresholds.of(r), p.cfg.Hysteresis)
		rs.Usage, rs.Level = u, p.trackers[r].level
		if changed {
			d.Transitions = append(d.Transitions, Transition{Resource: r.String(), From: from, To: rs.Level, Usage: u})
		}
	}
}

// batch returns the one-shot actions due this round: when memory's or
// disk's level rose since the last batch, or ActionInterval after it while
// the overall level is Warning or above.
func (p *Policy) batch(d *Decision) []Action {
	mem, disk := d.Resources[ResourceMemory], d.Resources[ResourceDisk]
	rose := false
	for i, l := range [2]Level{mem.Level, disk.Level} {
		if l < p.batched[i] {
			p.batched[i] = l
		}
		rose = rose || l > p.batched[i]
	}
	if p.overall == Normal {
		return nil
	}
	if !rose && !p.lastBatch.IsZero() && d.Time.Sub(p.lastBatch) < p.cfg.ActionInterval {
		return nil
	}
	p.batched, p.lastBatch = [2]Level{mem.Level, disk.Level}, d.Time
	acts := []Action{{Kind: ActSyncNow}}
	if p.overall >= High {
		acts = append(acts, Action{Kind: ActRollUp})
	}
	acts = append(acts, Action{Kind: ActOffload})
	if disk.Level >= High && disk.Err == nil {
		acts = append(acts, Action{Kind: ActEvict, Resource: ResourceDisk, Bytes: p.excess(ResourceDisk, disk.Usage)})
	}
	if mem.Level >= High && mem.Err == nil {
		acts = append(acts,
			Action{Kind: ActReleaseMemory, Resource: ResourceMemory, Bytes: p.excess(ResourceMemory, mem.Usage)},
			Action{Kind: ActFreeOSMemory, Resource: ResourceMemory})
	}
	if disk.Level >= Warning && (rose || disk.Level >= High || p.lastCompact.IsZero() ||
		d.Time.Sub(p.lastCompact) >= p.cfg.CompactInterval) {
		p.lastCompact = d.Time
		acts = append(acts, Action{Kind: ActCompact, Resource: ResourceDisk})
	}
	return acts
}

// excess is how many bytes must go for usage u to reach resource r's exit
// point (its Warning threshold minus the hysteresis margin).
func (p *Policy) excess(r Resource, u Usage) int64 {
	exit := (p.cfg.Thresholds.of(r).Warning - p.cfg.Hysteresis.Margin) / 100 * u.Limit
	return int64(math.Ceil(max(0, u.Used-exit)))
}

// writeGate refuses writes at Critical and accepts them again below.
func (p *Policy) writeGate(d *Decision, acts []Action) []Action {
	if p.overall < Critical {
		if p.refuse != "" {
			p.refuse, p.refuseKey = "", ""
			acts = append(acts, Action{Kind: ActAcceptWrites})
		}
		return acts
	}
	var key []string
	var parts []string
	for _, r := range []Resource{ResourceMemory, ResourceDisk} {
		rs := d.Resources[r]
		if rs.Level < Critical {
			continue
		}
		key = append(key, r.String())
		parts = append(parts, p.describe(rs))
	}
	if k := strings.Join(key, ","); k != p.refuseKey {
		p.refuseKey = k
		p.refuse = "resources: refusing new writes: " + strings.Join(parts, "; ")
		acts = append(acts, Action{Kind: ActRefuseWrites, Reason: p.refuse})
	}
	return acts
}

// describe writes a critical resource's figures for the refusal reason, e.g.
// "disk critical: 4.9 MiB of 5.0 MiB used (97.1 % by storage_limit; critical
// at 95 %, writes resume below 90 %)".
func (p *Policy) describe(rs ResourceState) string {
	th := p.cfg.Thresholds.of(rs.Resource)
	if rs.Err != nil {
		return fmt.Sprintf("%s critical (figures unavailable this round: %v)", rs.Resource, rs.Err)
	}
	return fmt.Sprintf("%s critical: %s used (%.1f %% by %s; critical at %g %%, writes resume below %g %%)",
		rs.Resource, formatUsage(rs.Resource, rs.Usage), rs.Usage.Percent, rs.Usage.Source,
		th.Critical, th.Critical-p.cfg.Hysteresis.Margin)
}

// pace updates the link quality and battery state in force and reports
// whether either changed.
func (p *Policy) pace(s Samples, d *Decision) bool {
	k := p.cfg.Hysteresis.Samples
	q0, b0 := p.link.cur, p.battery.cur
	q := classifyLink(s.Link, p.cfg.Link)
	d.Link = LinkQuality(p.link.observe(int(q), int(q), k))
	raw := classifyBattery(s.Battery, p.cfg.Battery, 0)
	recovered := classifyBattery(s.Battery, p.cfg.Battery, p.cfg.Hysteresis.Margin)
	d.Battery = BatteryState(p.battery.observe(int(raw), int(recovered), k))
	return q0 != p.link.cur || b0 != p.battery.cur
}

// moved reports whether the memory or disk usage moved by NotifyDelta points
// since the last notable change (CPU use is too noisy to notify on; its
// level changes still count).
func (p *Policy) moved(d *Decision) bool {
	for _, r := range []Resource{ResourceMemory, ResourceDisk} {
		rs := d.Resources[r]
		if rs.Err == nil && math.Abs(rs.Usage.Percent-p.notified[r]) >= p.cfg.NotifyDelta {
			return true
		}
	}
	return false
}
