package resources

import (
	"math"
	"strconv"
	"time"
)

// Snapshot is the monitor's state after its last round: what EDGE.RESOURCES
// returns and the change hook receives. It marshals to JSON as documented by
// its tags; sizes are bytes, CPU figures are cores, durations are Go
// duration strings ("30s").
type Snapshot struct {
	Time  time.Time `json:"time"`
	Level Level     `json:"level"` // overall: the worse of memory and disk

	Memory MemoryStatus   `json:"memory"`
	Disk   DiskStatus     `json:"disk"`
	CPU    ResourceStatus `json:"cpu"`

	Battery BatteryStatus `json:"battery"`
	Link    LinkStatus    `json:"link"`

	// Actions are the actions the current levels call for (see Policy),
	// plus "slow_sync" while the sync interval is above its base.
	Actions      []string `json:"actions"`
	RefuseReason string   `json:"refuse_reason,omitempty"`
	// SyncInterval is the interval in force; BaseSyncInterval the
	// configured one (both 0 when sync pacing is not managed).
	SyncInterval     Duration `json:"sync_interval"`
	BaseSyncInterval Duration `json:"base_sync_interval"`
	// Recent is the last run of each one-shot action.
	Recent []ActionRecord `json:"recent_actions"`

	SampleCost     Duration         `json:"sample_cost"`
	SampleInterval Duration         `json:"sample_interval"`
	Runtime        *RuntimeSettings `json:"runtime,omitempty"`
}

// ResourceStatus is one resource in a Snapshot.
type ResourceStatus struct {
	Used    float64 `json:"used"`
	Limit   float64 `json:"limit"`
	Percent float64 `json:"percent"`
	Level   Level   `json:"level"`
	// Source names the measure behind the figures (see Usage).
	Source string `json:"source,omitempty"`
	// Human is the figures for people, e.g. "4.8 MiB of 5.0 MiB".
	Human      string     `json:"human,omitempty"`
	Thresholds Thresholds `json:"thresholds"`
	// Error says why this round had no figures (the level is held).
	Error string `json:"error,omitempty"`
}

// MemoryStatus adds the memory measures to ResourceStatus.
type MemoryStatus struct {
	ResourceStatus
	RSS         int64 `json:"rss"`
	GoHeap      int64 `json:"go_heap"`
	GoRuntime   int64 `json:"go_runtime"`
	MemoryLimit int64 `json:"memory_limit"`
	CgroupLimit int64 `json:"cgroup_limit"`
}

// DiskStatus adds the storage measures to ResourceStatus.
type DiskStatus struct {
	ResourceStatus
	StoreBytes   int64 `json:"store_bytes"`
	StorageLimit int64 `json:"storage_limit"`
	FSFree       int64 `json:"fs_free"`
	FSTotal      int64 `json:"fs_total"`
}

// BatteryStatus is the power state in a Snapshot.
type BatteryStatus struct {
	Present       bool         `json:"present"`
	Percent       float64      `json:"percent"`
	Charging      bool         `json:"charging"`
	ExternalPower bool         `json:"external_power"`
	Status        string       `json:"status,omitempty"`
	State         BatteryState `json:"state"`
	Error         string       `json:"error,omitempty"`
}

// LinkStatus is the hub link in a Snapshot.
type LinkStatus struct {
	Quality             LinkQuality `json:"quality"`
	Connected           bool        `json:"connected"`
	RTT                 Duration    `json:"rtt"`
	ConsecutiveFailures int         `json:"consecutive_failures"`
	Throughput          float64     `json:"throughput"` // bytes per second
}

// ActionRecord is the last run of a one-shot action.
type ActionRecord struct {
	Action   ActionKind `json:"action"`
	At       time.Time  `json:"at"`
	Took     Duration   `json:"took"`
	Result   string     `json:"result"`          // ok, error, unwired
	Bytes    int64      `json:"bytes,omitempty"` // wanted (evict, release memory)
	Freed    int64      `json:"freed,omitempty"` // freed or dropped
	Error    string     `json:"error,omitempty"`
	Resource string     `json:"resource,omitempty"`
}

// Duration is a time.Duration that marshals as its string ("1m30s").
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// buildSnapshot renders a round.
func buildSnapshot(cfg Config, base time.Duration, s Samples, d *Decision) Snapshot {
	snap := Snapshot{
		Time: d.Time, Level: d.Overall,
		RefuseReason: d.RefuseReason, SyncInterval: Duration(d.SyncInterval), BaseSyncInterval: Duration(base),
		SampleCost: Duration(s.Cost), SampleInterval: Duration(cfg.SampleInterval),
		Actions: activeActions(d, base),
	}
	snap.Memory = MemoryStatus{
		ResourceStatus: resourceStatus(cfg, d.Resources[ResourceMemory]),
		RSS:            s.Memory.RSS, GoHeap: s.Memory.GoHeap, GoRuntime: s.Memory.GoRuntime,
		MemoryLimit: s.Memory.Limit, CgroupLimit: s.Memory.CgroupLimit,
	}
	snap.Disk = DiskStatus{
		ResourceStatus: resourceStatus(cfg, d.Resources[ResourceDisk]),
		StoreBytes:     s.Disk.StoreBytes, StorageLimit: s.Disk.StorageLimit, FSFree: s.Disk.FSFree, FSTotal: s.Disk.FSTotal,
	}
	snap.CPU = resourceStatus(cfg, d.Resources[ResourceCPU])
	b := s.Battery
	snap.Battery = BatteryStatus{Present: b.Present, Percent: b.Percent, Charging: b.Charging,
		ExternalPower: b.ExternalPower, Status: b.Status, State: d.Battery}
	if b.Err != nil {
		snap.Battery.Error = b.Err.Error()
	}
	l := s.Link
	snap.Link = LinkStatus{Quality: d.Link, Connected: l.Connected, RTT: Duration(l.RTT),
		ConsecutiveFailures: l.ConsecutiveFailures, Throughput: l.Throughput}
	return snap
}

func resourceStatus(cfg Config, rs ResourceState) ResourceStatus {
	st := ResourceStatus{Level: rs.Level, Thresholds: cfg.Thresholds.of(rs.Resource)}
	if rs.Err != nil {
		st.Error = rs.Err.Error()
		return st
	}
	u := rs.Usage
	st.Used, st.Limit, st.Source = u.Used, u.Limit, u.Source
	st.Percent = math.Round(u.Percent*100) / 100 // two decimals are plenty
	st.Human = formatUsage(rs.Resource, u) + " (" + strconv.FormatFloat(st.Percent, 'f', 1, 64) + " %)"
	return st
}

// activeActions names the actions the decision's levels call for.
func activeActions(d *Decision, base time.Duration) []string {
	acts := []string{}
	if d.Overall >= Warning {
		acts = append(acts, ActSyncNow.String(), ActOffload.String())
	}
	if d.Resources[ResourceDisk].Level >= Warning {
		acts = append(acts, ActCompact.String())
	}
	if d.Overall >= High {
		acts = append(acts, ActRollUp.String(), ActHighCompression.String())
	}
	if d.Resources[ResourceDisk].Level >= High {
		acts = append(acts, ActEvict.String())
	}
	if d.Resources[ResourceMemory].Level >= High {
		acts = append(acts, ActReleaseMemory.String(), ActFreeOSMemory.String())
	}
	if d.RefuseReason != "" {
		acts = append(acts, ActRefuseWrites.String())
	}
	if base > 0 && d.SyncInterval > base {
		acts = append(acts, "slow_sync")
	}
	return acts
}
