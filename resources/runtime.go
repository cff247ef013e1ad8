package resources

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// MemoryBudget is how memory_limit is split at start.
//
//	StoreCache  25 % of the limit, for the store to share between Pebble's
//	            block cache, its memtables and the store's hot-entry cache
//	GoLimit     GOMEMLIMIT: the limit minus 10 % headroom (goroutine stacks,
//	            C allocations, the binary's pages), minus StoreCache when
//	            Pebble allocates its cache off the Go heap (cgo builds)
//
// Pebble's manual allocator (internal/manual) takes block cache and memtable
// memory from C malloc when cgo is enabled and from the Go heap otherwise, so
// in a cgo build that memory is outside what GOMEMLIMIT governs and must be
// subtracted from it; in a pure-Go build it is inside.
type MemoryBudget struct {
	Limit      int64 `json:"limit"`
	GoLimit    int64 `json:"go_limit"`
	StoreCache int64 `json:"store_cache"`
	// OffHeapCache reports whether the store cache is allocated outside
	// the Go heap (cgo build).
	OffHeapCache bool `json:"off_heap_cache"`
}

// MemoryBudgetFor splits limit (0: no limit, an empty budget).
func MemoryBudgetFor(limit int64) MemoryBudget { return memoryBudget(limit, cgoEnabled()) }

func memoryBudget(limit int64, offHeap bool) MemoryBudget {
	if limit <= 0 {
		return MemoryBudget{}
	}
	b := MemoryBudget{Limit: limit, StoreCache: limit / 4, OffHeapCache: offHeap}
	b.GoLimit = limit - limit/10
	if offHeap {
		b.GoLimit -= b.StoreCache
	}
	return b
}

// CacheBudget returns the store's cache budget for memory_limit (0: no limit,
// the store keeps its own default).
func CacheBudget(memoryLimit int64) int64 { return MemoryBudgetFor(memoryLimit).StoreCache }

// cgoEnabled reads the CGO_ENABLED build setting of the running binary. An
// unknown setting counts as enabled: the lower Go limit is the safe guess.
func cgoEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return true
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return true
}

// RuntimeSettings records what ApplyRuntime did.
type RuntimeSettings struct {
	GOMAXPROCS     int          `json:"gomaxprocs"`
	PrevGOMAXPROCS int          `json:"-"`
	GoMemLimit     int64        `json:"gomemlimit"` // math.MaxInt64: none
	PrevGoMemLimit int64        `json:"-"`
	Memory         MemoryBudget `json:"memory_budget"`
	// BatchSize is the batch size hint of the cpu budget.
	BatchSize int `json:"batch_size"`
}

// ApplyRuntime sets the process-wide runtime limits from cfg; call it once at
// start, before the store opens (it gives the store its cache budget in
// Memory.StoreCache):
//
//   - cpu_budget low/medium sets GOMAXPROCS to that share of the runtime's
//     default (see CPUBudget); high leaves it, so the runtime keeps tracking
//     a cgroup CPU quota;
//   - memory_limit sets GOMEMLIMIT to Memory.GoLimit.
//
// An operator's GOMAXPROCS or GOMEMLIMIT environment variable wins over the
// configuration (logged).
func ApplyRuntime(cfg Config, logger *slog.Logger) RuntimeSettings {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := runtime.GOMAXPROCS(0)
	rs := RuntimeSettings{
		GOMAXPROCS: base, PrevGOMAXPROCS: base,
		Memory:    MemoryBudgetFor(int64(cfg.MemoryLimit)),
		BatchSize: cfg.CPUBudget.BatchSize(),
	}
	rs.PrevGoMemLimit = debug.SetMemoryLimit(-1)
	rs.GoMemLimit = rs.PrevGoMemLimit
	if want := cfg.CPUBudget.Procs(base); want != base {
		if os.Getenv("GOMAXPROCS") != "" {
			logger.Info("GOMAXPROCS set in the environment; cpu_budget does not change it",
				"gomaxprocs", base, "cpu_budget", cfg.CPUBudget)
		} else {
			runtime.GOMAXPROCS(want)
			rs.GOMAXPROCS = want
		}
	}
	if rs.Memory.GoLimit > 0 {
		if os.Getenv("GOMEMLIMIT") != "" {
			logger.Info("GOMEMLIMIT set in the environment; memory_limit does not change it",
				"gomemlimit", rs.PrevGoMemLimit, "memory_limit", cfg.MemoryLimit)
		} else {
			debug.SetMemoryLimit(rs.Memory.GoLimit)
			rs.GoMemLimit = rs.Memory.GoLimit
		}
	}
	logger.Info("runtime limits", "gomaxprocs", rs.GOMAXPROCS, "gomemlimit", rs.GoMemLimit,
		"store_cache", rs.Memory.StoreCache, "batch_size", rs.BatchSize)
	return rs
}

// Restore puts back the GOMAXPROCS and GOMEMLIMIT found by ApplyRuntime (for
// tests and embedders that stop a node and keep the process).
func (rs RuntimeSettings) Restore() {
	if rs.GOMAXPROCS != rs.PrevGOMAXPROCS {
		runtime.GOMAXPROCS(rs.PrevGOMAXPROCS)
	}
	if rs.GoMemLimit != rs.PrevGoMemLimit {
		debug.SetMemoryLimit(rs.PrevGoMemLimit)
	}
}
