package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
)

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM).
func procStatus(t testing.TB, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

const memChildEnv = "STORE_MEM_CHILD"

// TestMemoryMillionKeys writes 1,000,000 keys of 16-byte values under the
// full preset (64 MiB) and checks the process stays within the limit, as a
// gateway process with GOMEMLIMIT set from memory_limit would. It runs in a
// fresh child process so the peak RSS is this workload's alone.
func TestMemoryMillionKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: writes 1,000,000 keys")
	}
	if raceEnabled {
		t.Skip("the race detector multiplies memory use")
	}
	if os.Getenv(memChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryMillionKeys$", "-test.v")
		cmd.Env = append(os.Environ(), memChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "memory_test.go") {
				t.Log(strings.TrimSpace(l))
			}
		}
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	const n = 1_000_000
	preset, _ := LookupPreset("full")
	old := debug.SetMemoryLimit(preset.MemoryLimit)
	defer debug.SetMemoryLimit(old)
	runtime.GC()
	base := procStatus(t, "VmRSS")
	s := openTest(t, func(o *Options) {
		o.ApplyPreset(preset)
		o.Resolver = crdt.Resolver{Default: crdt.LastWriteWins}
	})
	ctx := context.Background()
	value := []byte("0123456789abcdef")
	var wg sync.WaitGroup
	const writers = 4
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := s.Set(ctx, fmt.Sprintf("sensor:%07d", i), value); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := must[int64](t)(s.DBSize(ctx)); got != n {
		t.Fatalf("DBSIZE %d", got)
	}
	// Read a sample back (cold keys go through Pebble).
	for i := 0; i < n; i += 9973 {
		if v := must[[]byte](t)(s.Get(ctx, fmt.Sprintf("sensor:%07d", i))); string(v) != string(value) {
			t.Fatalf("key %d = %q", i, v)
		}
	}
	rss, peak := procStatus(t, "VmRSS"), procStatus(t, "VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_, cacheBytes := s.cache.stats()
	m := s.db.Metrics()
	t.Logf("1M keys, full preset: RSS %.1f MiB (peak %.1f MiB, test binary before open %.1f MiB); Go heap in use %.1f MiB; "+
		"Pebble block cache %.1f MiB, memtables %.1f MiB; hot cache %.1f MiB; disk %.1f MiB",
		mib(rss), mib(peak), mib(base), mib(int64(ms.HeapInuse)), mib(m.BlockCache.Size), mib(int64(m.MemTable.Size)),
		mib(cacheBytes), mib(int64(m.DiskSpaceUsage())))
	if peak > preset.MemoryLimit {
		t.Fatalf("peak RSS %.1f MiB exceeds the %d MiB memory limit", mib(peak), preset.MemoryLimit>>20)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
