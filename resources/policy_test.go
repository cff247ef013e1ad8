package resources

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 2, 19, 10, 0, 0, 0, time.UTC)

// round builds the samples of one round with memory and disk at the given
// percentages of a 1000-byte limit, at t0 + at.
func round(at time.Duration, memPct, diskPct float64) Samples {
	return Samples{
		Time:   t0.Add(at),
		Memory: MemorySample{RSS: int64(memPct * 10), Limit: 1000},
		Disk:   DiskSample{StoreBytes: int64(diskPct * 10), StoreKnown: true, StorageLimit: 1000},
		CPU:    CPUSample{Seconds: 0.1, Window: time.Second, Procs: 1},
	}
}

func actionStrings(acts []Action) []string {
	out := []string{}
	for _, a := range acts {
		out = append(out, a.String())
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	c.ActionInterval = 30 * time.Second
	return c
}

func TestPolicyLevelsAndActions(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	steps := []struct {
		name          string
		at            time.Duration
		mem, disk     float64
		level         Level
		actions       string // space separated
		refusing      bool
		transitionsTo string // "resource:level" space separated
	}{
		{"normal", 0, 50, 50, Normal, "", false, ""},
		{"disk warning", 5 * time.Second, 50, 72, Warning, "sync_now offload compact", false, "disk:warning overall:warning"},
		{"warning holds, batch not due", 10 * time.Second, 50, 73, Warning, "", false, ""},
		{"disk high: evict to 65 %", 15 * time.Second, 50, 86, High,
			"sync_now roll_up offload evict(210 B) compact high_compression(true)", false, "disk:high overall:high"},
		{"disk critical: refuse", 20 * time.Second, 50, 96, Critical,
			"sync_now roll_up offload evict(310 B) compact refuse_writes", true, "disk:critical overall:critical"},
		{"critical holds, batch not due", 30 * time.Second, 50, 97, Critical, "", true, ""},
		{"batch repeats after action_interval", 50 * time.Second, 50, 97, Critical,
			"sync_now roll_up offload evict(320 B) compact", true, ""},
		{"memory high too: batch due at once", 55 * time.Second, 91, 97, Critical,
			"sync_now roll_up offload evict(320 B) release_memory(160 B) free_os_memory compact", true, "memory:high"},
		{"memory critical: the reason changes", 56 * time.Second, 96, 97, Critical,
			"sync_now roll_up offload evict(320 B) release_memory(210 B) free_os_memory compact refuse_writes", true, "memory:critical"},
		{"both fall: calm 1", 60 * time.Second, 50, 50, Critical, "", true, ""},
		{"calm 2", 61 * time.Second, 50, 50, Critical, "", true, ""},
		{"calm 3: back to normal, accept", 62 * time.Second, 50, 50, Normal,
			"accept_writes high_compression(false)", false, "memory:normal disk:normal overall:normal"},
		{"warning again: batch at once", 63 * time.Second, 50, 71, Warning, "sync_now offload compact", false, "disk:warning overall:warning"},
		{"memory rises: batch at once (disk held at warning)", 64 * time.Second, 81, 50, Warning, "sync_now offload compact", false, "memory:warning"},
	}
	for _, st := range steps {
		d := p.Evaluate(round(st.at, st.mem, st.disk))
		if d.Overall != st.level {
			t.Fatalf("%s: overall %v, want %v", st.name, d.Overall, st.level)
		}
		if got := strings.Join(actionStrings(d.Actions), " "); got != st.actions {
			t.Fatalf("%s: actions\n  %q\nwant\n  %q", st.name, got, st.actions)
		}
		if (d.RefuseReason != "") != st.refusing {
			t.Fatalf("%s: refuse reason %q, want refusing=%v", st.name, d.RefuseReason, st.refusing)
		}
		var tr []string
		for _, x := range d.Transitions {
			tr = append(tr, x.Resource+":"+x.To.String())
		}
		if got := strings.Join(tr, " "); got != st.transitionsTo {
			t.Fatalf("%s: transitions %q, want %q", st.name, got, st.transitionsTo)
		}
	}
}

func TestPolicyRefusalReasonNamesResourceAndFigures(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	s := round(0, 10, 0)
	s.Disk = DiskSample{StoreBytes: 5_100_000, StoreKnown: true, StorageLimit: 5 << 20}
	d := p.Evaluate(s)
	want := "resources: refusing new writes: disk critical: 4.9 MiB of 5.0 MiB used (97.3 % by storage_limit; critical at 95 %, writes resume below 90 %)"
	if d.RefuseReason != want {
		t.Fatalf("reason\n  %q\nwant\n  %q", d.RefuseReason, want)
	}
	i := slices.IndexFunc(d.Actions, func(a Action) bool { return a.Kind == ActRefuseWrites })
	if i < 0 || d.Actions[i].Reason != want {
		t.Fatalf("actions %v: no refuse_writes with the reason", d.Actions)
	}
}

func TestPolicyCPUTakesNoAction(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	s := round(0, 10, 10)
	s.CPU = CPUSample{Seconds: 2, Window: time.Second, Procs: 2}
	d := p.Evaluate(s)
	if d.Resources[ResourceCPU].Level != Critical || d.Overall != Normal || len(d.Actions) != 0 {
		t.Fatalf("cpu at 100 %%: cpu %v, overall %v, actions %v; want critical, normal, none",
			d.Resources[ResourceCPU].Level, d.Overall, d.Actions)
	}
}

func TestPolicyHoldsLevelWhenSamplingFails(t *testing.T) {
	c := testConfig()
	c.Hysteresis.Samples = 1
	p := NewPolicy(c, 0)
	p.Evaluate(round(0, 10, 96))
	s := round(time.Second, 10, 0)
	s.Disk.Err = errors.New("store closed")
	d := p.Evaluate(s)
	if rs := d.Resources[ResourceDisk]; rs.Level != Critical || rs.Err == nil || d.RefuseReason == "" {
		t.Fatalf("failed disk sample: level %v err %v refuse %q; want critical held, error, still refusing", rs.Level, rs.Err, d.RefuseReason)
	}
	if d.Overall != Critical || len(d.Transitions) != 0 {
		t.Fatalf("overall %v transitions %v", d.Overall, d.Transitions)
	}
	// NaN usage is not a percentage: held too.
	s = round(2*time.Second, 10, 0)
	s.Disk = DiskSample{StoreBytes: 0, StoreKnown: true, StorageLimit: 0}
	if d := p.Evaluate(s); d.Resources[ResourceDisk].Err == nil {
		t.Fatal("disk without limit or filesystem gave a usage")
	}
}

func TestPolicyChanged(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	if d := p.Evaluate(round(0, 10, 10)); !d.Changed {
		t.Fatal("first decision not marked changed")
	}
	if d := p.Evaluate(round(time.Second, 12, 13)); d.Changed {
		t.Fatal("small move marked changed")
	}
	if d := p.Evaluate(round(2*time.Second, 12, 16)); !d.Changed {
		t.Fatal("a 6 point move not marked changed")
	}
	if d := p.Evaluate(round(3*time.Second, 12, 19)); d.Changed {
		t.Fatal("3 points from the last notified value marked changed")
	}
	if d := p.Evaluate(round(4*time.Second, 12, 72)); !d.Changed {
		t.Fatal("a level change not marked changed")
	}
}

func TestExcessTargetsTheExitPoint(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	// Disk exit point: (70 - 5) % of 5 MiB.
	u := Usage{Used: 5 << 20, Limit: 5 << 20}
	if got, want := p.excess(ResourceDisk, u), int64(5<<20)-int64(0.65*float64(5<<20)); got != want {
		t.Fatalf("excess = %d, want %d", got, want)
	}
	if got := p.excess(ResourceDisk, Usage{Used: 10, Limit: 1000}); got != 0 {
		t.Fatalf("excess below the exit point = %d, want 0", got)
	}
}

func TestPolicyMemoryPressureAlone(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	if d := p.Evaluate(round(0, 81, 10)); strings.Join(actionStrings(d.Actions), " ") != "sync_now offload" {
		t.Fatalf("memory warning: actions %v, want sync and offload only (no compaction)", d.Actions)
	}
	d := p.Evaluate(round(time.Second, 92, 10))
	if got, want := strings.Join(actionStrings(d.Actions), " "), "sync_now roll_up offload release_memory(170 B) free_os_memory high_compression(true)"; got != want {
		t.Fatalf("memory high: actions %q, want %q", got, want)
	}
}

func TestPolicyCompactionIsNotRepeatedEveryBatch(t *testing.T) {
	p := NewPolicy(testConfig(), 0) // action_interval 30s, compact_interval 10m
	steps := []struct {
		at      time.Duration
		disk    float64
		actions string
	}{
		{0, 72, "sync_now offload compact"},
		{30 * time.Second, 72, "sync_now offload"},
		{60 * time.Second, 72, "sync_now offload"},
		{10 * time.Minute, 72, "sync_now offload compact"},
		{10*time.Minute + 30*time.Second, 86, "sync_now roll_up offload evict(210 B) compact high_compression(true)"},
		{11 * time.Minute, 86, "sync_now roll_up offload evict(210 B) compact"}, // after every eviction
	}
	for _, st := range steps {
		d := p.Evaluate(round(st.at, 10, st.disk))
		if got := strings.Join(actionStrings(d.Actions), " "); got != st.actions {
			t.Fatalf("at %v disk %v %%: actions %q, want %q", st.at, st.disk, got, st.actions)
		}
	}
}

func TestPolicyNoisyCPUDoesNotNotify(t *testing.T) {
	p := NewPolicy(testConfig(), 0)
	for i, secs := range []float64{0.1, 0.5, 0.2, 0.6} { // 10 % .. 60 %: no level change
		s := round(time.Duration(i)*time.Second, 10, 10)
		s.CPU = CPUSample{Seconds: secs, Window: time.Second, Procs: 1}
		if d := p.Evaluate(s); i > 0 && d.Changed {
			t.Fatalf("round %d: cpu at %v %% marked changed", i, secs*100)
		}
	}
}
