package resources

import (
	"fmt"
	"strings"
)

// Level is how close a resource is to its limit. Levels are ordered: a higher
// level is worse, and each level's actions include those of the levels below.
type Level uint8

const (
	Normal   Level = iota // below the warning threshold: no action
	Warning               // sync now, offload synced raw readings, compact (disk)
	High                  // and evict LRU data / release memory, raise compression, roll up
	Critical              // and refuse new writes
)

var levelNames = [...]string{"normal", "warning", "high", "critical"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// MarshalText writes the level's name, so JSON and YAML show "warning".
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error { return unmarshalName(l, levelNames[:], "level", b) }

// unmarshalName sets *v to the index of name b in names (case-insensitive).
func unmarshalName[T ~uint8](v *T, names []string, what string, b []byte) error {
	for i, n := range names {
		if n != "" && strings.EqualFold(n, string(b)) {
			*v = T(i)
			return nil
		}
	}
	return fmt.Errorf("resources: unknown %s %q", what, b)
}

// Resource names a monitored resource whose usage has a level.
type Resource uint8

const (
	ResourceMemory Resource = iota
	ResourceDisk
	ResourceCPU
	numResources
)

var resourceNames = [numResources]string{"memory", "disk", "cpu"}

func (r Resource) String() string {
	if r < numResources {
		return resourceNames[r]
	}
	return fmt.Sprintf("resource(%d)", uint8(r))
}

// MarshalText writes the resource's name.
func (r Resource) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a resource's name.
func (r *Resource) UnmarshalText(b []byte) error {
	return unmarshalName(r, resourceNames[:], "resource", b)
}

// Thresholds are the usage percentages at which a resource enters Warning,
// High and Critical. They must satisfy 0 < Warning < High < Critical <= 100.
type Thresholds struct {
	Warning  float64 `yaml:"warning" json:"warning"`
	High     float64 `yaml:"high" json:"high"`
	Critical float64 `yaml:"critical" json:"critical"`
}

// At returns the percentage at which level l starts (0 for Normal).
func (t Thresholds) At(l Level) float64 {
	switch l {
	case Warning:
		return t.Warning
	case High:
		return t.High
	case Critical:
		return t.Critical
	}
	return 0
}

// LevelOf returns the level a usage percentage falls in, without hysteresis.
func (t Thresholds) LevelOf(percent float64) Level {
	switch {
	case percent >= t.Critical:
		return Critical
	case percent >= t.High:
		return High
	case percent >= t.Warning:
		return Warning
	}
	return Normal
}

// Hysteresis keeps a level from flapping: a resource enters a higher level as
// soon as one sample reaches its threshold, but leaves a level only after
// Samples consecutive samples below that level's threshold minus Margin
// percentage points. It then drops to the highest level whose threshold minus
// Margin the last sample still reaches.
type Hysteresis struct {
	// Margin in percentage points (default 5): disk leaves Warning (70 %)
	// only below 65 %.
	Margin float64 `yaml:"margin"`
	// Samples is the number of consecutive calm samples needed to go down
	// (default 3).
	Samples int `yaml:"samples"`
}

// tracker is the hysteresis state of one resource.
type tracker struct {
	level Level
	calm  int // consecutive samples below the current level's exit point
}

// observe feeds one usage percentage and reports whether the level changed.
func (tr *tracker) observe(percent float64, th Thresholds, h Hysteresis) (from Level, changed bool) {
	from = tr.level
	if raw := th.LevelOf(percent); raw > tr.level {
		tr.level, tr.calm = raw, 0
		return from, true
	}
	if tr.level == Normal || percent >= th.At(tr.level)-h.Margin {
		tr.calm = 0
		return from, false
	}
	tr.calm++
	if tr.calm < h.Samples {
		return from, false
	}
	next := Normal
	for l := tr.level - 1; l > Normal; l-- {
		if percent >= th.At(l)-h.Margin {
			next = l
			break
		}
	}
	tr.level, tr.calm = next, 0
	return from, true
}

// debounce is the hysteresis of an ordered state (link quality, battery
// state): worse states are taken at once, better ones after k calm samples.
type debounce struct {
	cur  int
	calm int
}

// observe feeds the state the sample shows (raw) and the state it shows with
// the recovery margin applied (recovered, never better than raw), and returns
// the state in force.
func (d *debounce) observe(raw, recovered, k int) int {
	switch {
	case raw > d.cur:
		d.cur, d.calm = raw, 0
	case recovered < d.cur:
		d.calm++
		if d.calm >= k {
			d.cur, d.calm = recovered, 0
		}
	default:
		d.calm = 0
	}
	return d.cur
}
