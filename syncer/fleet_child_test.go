package syncer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The fleet benchmarks' hub runs in a child process (this test binary,
// re-executed with fleetHubEnv set), so its CPU time, allocations and
// memory are measured alone. It answers one command per stdin line with
// one stdout line: "usage" (JSON hubUsage), "digest", "quit" (stops, then
// exits). With FERRITE_FLEET_HUB_PROF=dir it writes dir/hub-cpu.pprof and
// dir/hub-mem.pprof (allocations) covering its whole life.

const (
	fleetHubEnv     = "FERRITE_FLEET_HUB" // the hub's data directory
	fleetHubURLEnv  = "FERRITE_FLEET_HUB_URL"
	fleetHubProfEnv = "FERRITE_FLEET_HUB_PROF"
	fleetHubLogEnv  = "FERRITE_FLEET_HUB_LOG" // a file for the hub's debug log
	// set: the default ack timeout and backoff, not the tests' fast ones
	fleetHubTimersEnv = "FERRITE_FLEET_HUB_PROD_TIMERS"
)

// fleetHubChild is the child's main.
func fleetHubChild(dir string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "fleet hub:", err); return 2 }
	prof := os.Getenv(fleetHubProfEnv)
	if prof != "" {
		runtime.MemProfileRate = 64 << 10
		cpu, err := os.Create(filepath.Join(prof, "hub-cpu.pprof"))
		if err != nil {
			return fail(err)
		}
		defer cpu.Close()
		if err := pprof.StartCPUProfile(cpu); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	logger := quiet
	if path := os.Getenv(fleetHubLogEnv); path != "" {
		lf, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		defer lf.Close()
		logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := store.Open(context.Background(), store.Options{NodeID: "hub", Role: crdt.RoleHub, Dir: dir, Resolver: res,
		SweepInterval: -1, Logger: quiet, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	o := HubOptions{Store: st, BrokerURL: os.Getenv(fleetHubURLEnv), Resolver: res, Logger: logger,
		Registerer: prometheus.NewRegistry()}
	if os.Getenv(fleetHubTimersEnv) == "" {
		o.BackoffMin, o.BackoffMax, o.AckTimeout = 20*time.Millisecond, 300*time.Millisecond, 2*time.Second
	}
	h, err := NewHub(o)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	go samplePeakHeap(ctx)
	fleetHubServe(h, st, os.Stdin, os.Stdout)
	cancel()
	if err := <-done; err != nil {
		return fail(err)
	}
	h.Close()
	if prof != "" {
		runtime.GC()
		if err := writeHeapProfile(filepath.Join(prof, "hub-mem.pprof")); err != nil {
			return fail(err)
		}
	}
	return 0
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fleetHubServe answers the parent's commands until "quit" or EOF.
func fleetHubServe(h *Hub, st *store.Store, in io.Reader, out io.Writer) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "usage":
			b, _ := json.Marshal(selfUsage(h))
			fmt.Fprintf(out, "%s\n", b)
		case "digest":
			d, err := stateDigest(context.Background(), st)
			if err != nil {
				d = "error: " + err.Error()
			}
			fmt.Fprintln(out, d)
		case "quit":
			return
		}
	}
}

// peakHeap is the most heap objects' bytes seen by samplePeakHeap.
var peakHeap atomic.Uint64

// samplePeakHeap samples the heap every 50ms (runtime/metrics: no pause).
func samplePeakHeap(ctx context.Context) {
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rtmetrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peakHeap.Load() {
				peakHeap.Store(v)
			}
		}
	}
}

// peakRSS reads this process's peak resident set (VmHWM). The rusage
// maximum would not do: Linux carries it across exec, and os/exec starts
// a child sharing the parent's memory (vfork), so a child started by a
// big parent would report the parent's size.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// selfUsage reads this process's figures.
func selfUsage(h *Hub) hubUsage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.mu.Lock()
	sessions := len(h.sessions)
	h.mu.Unlock()
	u := hubUsage{
		CPU:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		Mallocs: ms.Mallocs, AllocBytes: ms.TotalAlloc, HeapInuse: ms.HeapInuse,
		MaxRSS: peakRSS(), Goroutines: runtime.NumGoroutine(), Sessions: sessions,
		OpsSent: counterOf(h.m.opsSent), Dropped: counterOf(h.m.inboxDropped),
		PeakHeap: peakHeap.Swap(0),
	}
	// The live heap after a collection (its CPU counts in the next
	// reading, before a round starts).
	runtime.GC()
	runtime.ReadMemStats(&ms)
	u.LiveHeap = ms.HeapAlloc
	return u
}

func counterOf(c prometheus.Counter) uint64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return uint64(m.GetCounter().GetValue())
}

// childHub is the parent's handle on a hub child process.
type childHub struct {
	env []string
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// childFleetHub starts the fleet's hub in a child process.
func childFleetHub(f *fleet) fleetHub {
	tb := f.tb
	tb.Helper()
	c := &childHub{env: append(os.Environ(), fleetHubEnv+"="+tb.TempDir(), fleetHubURLEnv+"="+f.br.url)}
	if f.prodTimers {
		c.env = append(c.env, fleetHubTimersEnv+"=1")
	}
	c.start(tb)
	return c
}

// start starts the child (again: on the same data directory). Its usage
// figures start from zero.
func (c *childHub) start(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = c.env
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	check(tb, err)
	out, err := cmd.StdoutPipe()
	check(tb, err)
	check(tb, cmd.Start())
	c.cmd, c.in, c.out = cmd, in, bufio.NewScanner(out)
}

func (c *childHub) ask(tb testing.TB, cmd string) string {
	tb.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		tb.Fatalf("hub child: %v", err)
	}
	if !c.out.Scan() {
		tb.Fatalf("hub child: no answer to %s: %v", cmd, c.out.Err())
	}
	return c.out.Text()
}

func (c *childHub) digest(tb testing.TB) string {
	d := c.ask(tb, "digest")
	if strings.HasPrefix(d, "error") {
		tb.Fatalf("hub child: %s", d)
	}
	return d
}

func (c *childHub) usage(tb testing.TB) hubUsage {
	var u hubUsage
	if err := json.Unmarshal([]byte(c.ask(tb, "usage")), &u); err != nil {
		tb.Fatalf("hub child: usage: %v", err)
	}
	return u
}

// stop asks the child to quit (it writes its profiles) and waits.
func (c *childHub) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	_, _ = fmt.Fprintln(c.in, "quit")
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
