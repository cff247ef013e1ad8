package resources

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestMemoryBudget(t *testing.T) {
	const limit = 100 << 20
	on := memoryBudget(limit, true)
	if on.StoreCache != limit/4 || on.GoLimit != limit-limit/10-limit/4 || !on.OffHeapCache {
		t.Fatalf("cgo budget %+v", on)
	}
	off := memoryBudget(limit, false)
	if off.StoreCache != limit/4 || off.GoLimit != limit-limit/10 {
		t.Fatalf("pure Go budget %+v", off)
	}
	if b := memoryBudget(0, true); b != (MemoryBudget{}) {
		t.Fatalf("no limit: %+v", b)
	}
	if CacheBudget(limit) != limit/4 {
		t.Fatalf("CacheBudget(%d) = %d", limit, CacheBudget(limit))
	}
}

// TestApplyRuntime changes process-wide settings and restores them; it must
// not run in parallel with other tests.
func TestApplyRuntime(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	t.Setenv("GOMEMLIMIT", "")
	base, mem0 := runtime.GOMAXPROCS(0), debug.SetMemoryLimit(-1)
	cfg := DefaultConfig()
	cfg.CPUBudget, cfg.MemoryLimit = CPULow, 256<<20
	rs := ApplyRuntime(cfg, nil)
	if got := runtime.GOMAXPROCS(0); got != CPULow.Procs(base) || rs.GOMAXPROCS != got {
		t.Errorf("GOMAXPROCS %d (reported %d), want %d", got, rs.GOMAXPROCS, CPULow.Procs(base))
	}
	if got := debug.SetMemoryLimit(-1); got != MemoryBudgetFor(256<<20).GoLimit || rs.GoMemLimit != got {
		t.Errorf("GOMEMLIMIT %d (reported %d), want %d", got, rs.GoMemLimit, MemoryBudgetFor(256<<20).GoLimit)
	}
	if rs.Memory.StoreCache != 64<<20 || rs.BatchSize != 64 {
		t.Errorf("settings %+v", rs)
	}
	rs.Restore()
	if runtime.GOMAXPROCS(0) != base || debug.SetMemoryLimit(-1) != mem0 {
		t.Fatalf("Restore left GOMAXPROCS %d GOMEMLIMIT %d, want %d %d", runtime.GOMAXPROCS(0), debug.SetMemoryLimit(-1), base, mem0)
	}
}

func TestApplyRuntimeRespectsTheEnvironment(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	t.Setenv("GOMEMLIMIT", "1GiB")
	base, mem0 := runtime.GOMAXPROCS(0), debug.SetMemoryLimit(-1)
	cfg := DefaultConfig()
	cfg.CPUBudget, cfg.MemoryLimit = CPULow, 256<<20
	if base == 1 {
		cfg.CPUBudget = CPUHigh
	}
	rs := ApplyRuntime(cfg, nil)
	defer rs.Restore()
	if runtime.GOMAXPROCS(0) != base || debug.SetMemoryLimit(-1) != mem0 {
		t.Fatal("ApplyRuntime overrode GOMAXPROCS/GOMEMLIMIT set in the environment")
	}
}
