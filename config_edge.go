package ferrite

import (
	"fmt"
	"strings"
	"time"

	"github.com/ferrite-edge/ferrite/resources"
)

// Sync policies (edge.sync_policy), as the syncer implements them.
const (
	SyncImmediate     = "immediate"     // push every change as soon as it is durable
	SyncPeriodic      = "periodic"      // push every sync_interval
	SyncOpportunistic = "opportunistic" // push when the link is up, batched by sync_interval (default)
	SyncManual        = "manual"        // push only on EDGE.SYNC
)

// Conflict strategies in their canonical config spelling.
const (
	StrategyLWW       = "lww"
	StrategyCrdtMerge = "crdt_merge"
	StrategyCloudWins = "cloud_wins"
	StrategyEdgeWins  = "edge_wins"
)

// strategyAliases maps every accepted spelling (lower-cased), including the
// feature document's enum names, to the canonical one.
var strategyAliases = map[string]string{
	"lww": StrategyLWW, "lastwritewins": StrategyLWW, "last_write_wins": StrategyLWW, "last-write-wins": StrategyLWW,
	"crdt_merge": StrategyCrdtMerge, "crdtmerge": StrategyCrdtMerge, "crdt-merge": StrategyCrdtMerge, "crdt": StrategyCrdtMerge,
	"cloud_wins": StrategyCloudWins, "cloudwins": StrategyCloudWins, "cloud-wins": StrategyCloudWins,
	"edge_wins": StrategyEdgeWins, "edgewins": StrategyEdgeWins, "edge-wins": StrategyEdgeWins,
}

// CanonicalStrategy returns the canonical spelling of a conflict strategy
// ("LastWriteWins" → "lww", "CrdtMerge" → "crdt_merge", ...).
func CanonicalStrategy(s string) (string, bool) {
	c, ok := strategyAliases[strings.ToLower(strings.TrimSpace(s))]
	return c, ok
}

// Preset is a device class from the feature document: the store's memory
// budget, its key limit and its value compression level (0 = off).
type Preset struct {
	Name             string
	MemoryLimit      Size
	MaxKeys          int64
	CompressionLevel int
}

// Presets, as in the feature document's table.
var Presets = []Preset{
	{Name: "minimal", MemoryLimit: 4 << 20, MaxKeys: 10_000, CompressionLevel: 0},
	{Name: "iot", MemoryLimit: 2 << 20, MaxKeys: 1_000, CompressionLevel: 9},
	{Name: "mobile", MemoryLimit: 32 << 20, MaxKeys: 50_000, CompressionLevel: 6},
	{Name: "standard", MemoryLimit: 16 << 20, MaxKeys: 100_000, CompressionLevel: 0},
	{Name: "full", MemoryLimit: 64 << 20, MaxKeys: 1_000_000, CompressionLevel: 3},
}

// DefaultPreset is used when edge.preset is not set.
const DefaultPreset = "standard"

// PresetByName looks a preset up.
func PresetByName(name string) (Preset, bool) {
	for _, p := range Presets {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// ConflictRule overrides the conflict strategy for keys under a prefix (the
// longest matching prefix wins).
type ConflictRule struct {
	Prefix   string `yaml:"prefix"`
	Strategy string `yaml:"strategy"`
}

// EdgeConfig is the edge: section, the feature document's edge keys: the
// hub link and sync policy (syncer), the store's limits (preset) and the
// resource monitor.
type EdgeConfig struct {
	// HubURL is the hub's broker: mqtt://host:1883 or mqtts://host:8883
	// (empty: no hub, the node runs standalone).
	HubURL           string   `yaml:"hub_url"`
	SyncInterval     Duration `yaml:"sync_interval"`
	SyncPolicy       string   `yaml:"sync_policy"`
	OfflineQueueSize int64    `yaml:"offline_queue_size"`
	// QueuePath is the directory of the store's write-ahead log, where
	// every change (and so the offline queue) is first made durable; it
	// may be another device. Default: inside <data_dir>/store. It may be
	// changed between restarts: the old directory is recovered from.
	QueuePath          string         `yaml:"queue_path"`
	ConflictResolution string         `yaml:"conflict_resolution"`
	ConflictRules      []ConflictRule `yaml:"conflict_rules"`
	Preset             string         `yaml:"preset"`
	// MaxKeys overrides the preset's key limit (0: the preset's).
	MaxKeys int64 `yaml:"max_keys"`
	// CompressionLevel overrides the preset's (0 = off, 1-9).
	CompressionLevel *int `yaml:"compression_level"`
	// Resources is the resource monitor: the feature document's
	// memory_limit (the process: GOMEMLIMIT, memory levels, and the
	// store's cache budget), storage_limit, cpu_budget, plus its tuning.
	Resources resources.Config `yaml:"resources"`
}

func (e *EdgeConfig) defaults() {
	*e = EdgeConfig{
		SyncInterval:       Duration(30 * time.Second),
		SyncPolicy:         SyncOpportunistic,
		OfflineQueueSize:   10_000,
		ConflictResolution: StrategyCrdtMerge,
		Preset:             DefaultPreset,
		Resources:          resources.DefaultConfig(),
	}
}

func (e *EdgeConfig) validate(s section, _ *Config) {
	if e.HubURL != "" {
		validBrokerURL(s, "hub_url", e.HubURL)
	}
	durationRange(s, "sync_interval", e.SyncInterval, 100*time.Millisecond, 24*time.Hour)
	s.oneOf("sync_policy", e.SyncPolicy, SyncImmediate, SyncPeriodic, SyncOpportunistic, SyncManual)
	s.inRange("offline_queue_size", e.OfflineQueueSize, 1, 1<<32)
	if _, ok := CanonicalStrategy(e.ConflictResolution); !ok {
		s.add("conflict_resolution", "invalid value %q (want lww, crdt_merge, cloud_wins or edge_wins; LastWriteWins, CrdtMerge, CloudWins, EdgeWins also accepted)", e.ConflictResolution)
	}
	seen := map[string]bool{}
	for i, r := range e.ConflictRules {
		rs := s.in(fmt.Sprintf("conflict_rules[%d]", i))
		if r.Prefix == "" {
			rs.add("prefix", "must not be empty (the default strategy is conflict_resolution)")
		} else if seen[r.Prefix] {
			rs.add("prefix", "%q listed twice", r.Prefix)
		}
		seen[r.Prefix] = true
		if _, ok := CanonicalStrategy(r.Strategy); !ok {
			rs.add("strategy", "invalid value %q (want lww, crdt_merge, cloud_wins or edge_wins)", r.Strategy)
		}
	}
	if _, ok := PresetByName(e.Preset); !ok {
		names := make([]string, len(Presets))
		for i, p := range Presets {
			names[i] = p.Name
		}
		s.add("preset", "unknown preset %q (want one of: %s)", e.Preset, strings.Join(names, ", "))
	}
	if e.MaxKeys < 0 {
		s.add("max_keys", "must not be negative")
	}
	if e.CompressionLevel != nil && (*e.CompressionLevel < 0 || *e.CompressionLevel > 9) {
		s.add("compression_level", "%d out of range [0 (off), 9]", *e.CompressionLevel)
	}
	validateResources(s.in("resources"), &e.Resources)
}

// validateResources files each problem resources.Config.Validate reports
// ("resources: invalid config: resources.<field>: <msg>") under its key.
func validateResources(s section, rc *resources.Config) {
	err := rc.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		msg := e.Error()
		if _, rest, ok := strings.Cut(msg, "resources."); ok {
			if field, m, ok := strings.Cut(rest, ": "); ok {
				s.add(field, "%s", m)
				continue
			}
		}
		s.add("", "%s", msg)
	}
}

// EdgeLimits are the effective store limits: the preset's values with
// explicit keys taking precedence.
type EdgeLimits struct {
	Preset string
	// MemoryLimit is the store's memory budget (caches, memtables): the
	// preset's, capped by a quarter of edge.resources.memory_limit.
	MemoryLimit Size
	// ProcessMemoryLimit is edge.resources.memory_limit (0: none).
	ProcessMemoryLimit Size
	StorageLimit       Size // 0: no explicit limit
	MaxKeys            int64
	CompressionLevel   int // 0 = off
}

// Limits resolves the preset against the explicit keys.
func (e *EdgeConfig) Limits() EdgeLimits {
	p, ok := PresetByName(e.Preset)
	if !ok {
		p, _ = PresetByName(DefaultPreset)
	}
	l := EdgeLimits{
		Preset:           p.Name,
		MemoryLimit:      p.MemoryLimit,
		StorageLimit:     Size(e.Resources.StorageLimit),
		MaxKeys:          p.MaxKeys,
		CompressionLevel: p.CompressionLevel,
	}
	if m := Size(e.Resources.MemoryLimit); m != 0 {
		l.ProcessMemoryLimit = m
		if b := Size(resources.CacheBudget(int64(m))); b < l.MemoryLimit {
			l.MemoryLimit = b
		}
	}
	if e.MaxKeys != 0 {
		l.MaxKeys = e.MaxKeys
	}
	if e.CompressionLevel != nil {
		l.CompressionLevel = *e.CompressionLevel
	}
	return l
}

// Strategy is the canonical default conflict strategy.
func (e *EdgeConfig) Strategy() string {
	s, _ := CanonicalStrategy(e.ConflictResolution)
	return s
}

// Rules returns the conflict rules with canonical strategy names.
func (e *EdgeConfig) Rules() []ConflictRule {
	out := make([]ConflictRule, len(e.ConflictRules))
	for i, r := range e.ConflictRules {
		s, _ := CanonicalStrategy(r.Strategy)
		out[i] = ConflictRule{Prefix: r.Prefix, Strategy: s}
	}
	return out
}
