package syncer

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFleet times the fleet scenarios (fleet_test.go) with the hub
// in a child process, for fleets of 20, 50 and 100 edges (20 under
// -short; FERRITE_FLEET_SIZES=20,200 picks others). Every iteration is one
// round of a scenario on the same fleet:
//
//	connected: every edge writes 20 own keys, 3 shared keys and 5
//	           increments of a shared counter while connected
//	herd:      the same, offline; then every edge reconnects at once
//	hubrestart: the hub stops, the edges write the same, the hub starts
//	           again and every edge starts a new session at once (the
//	           hub's figures include its start)
//	onewriter: edge 0 writes 200 keys one by one, the others idle
//	idle:      nobody writes for 5 seconds (hub-cpu-ms/s)
//
// Metrics: converge-s (from the first write or the reconnection until
// every edge holds every write; the hub relayed them, and the round ends
// checking every replica's digest and the exact counter), hub-cpu-s,
// hub-allocs/op and hub-B/op (per op written), hub-cpu-us/delivery (per
// op written x edges that receive it), the hub's heap in use, live heap
// (after a collection) and peak RSS, sent/delivery (ops the hub sent per
// op an edge needed: above 1 it resent), and edges-cpu-s (this process:
// the simulated edges and the broker, on the same cores).
// The edges and the hub run with the default ack timeout (10s) and
// backoff (1s..1m); FERRITE_FLEET_TIMERS=test gives them the tests' fast
// ones (2s, 20ms..300ms), a harsher load: slow answers are resent sooner.
// Run: go test -run '^$' -bench Fleet -benchtime 3x ./syncer/
// Profile the hub: FERRITE_FLEET_HUB_PROF=/tmp/prof (hub-cpu.pprof,
// hub-mem.pprof; -cpuprofile profiles the edges and the broker).
func BenchmarkFleet(b *testing.B) {
	for _, n := range fleetSizes(b) {
		b.Run(fmt.Sprintf("edges=%d", n), func(b *testing.B) {
			f := newFleet(b, n, os.Getenv("FERRITE_FLEET_TIMERS") != "test", childFleetHub)
			round := 0
			w := fleetWrites{own: 20, shared: 3, incrs: 5}
			perEdge := uint64(w.own + w.shared + w.incrs)
			// restarts: the scenario restarts the hub, whose figures then
			// start from zero.
			run := func(name string, ops uint64, restarts bool, scenario func(round int) time.Duration) {
				b.Run(name, func(b *testing.B) {
					f.tb = b
					defer func() { f.tb = nil }()
					var m fleetMetrics
					for b.Loop() {
						round++
						before, self := f.hub.usage(b), processCPU()
						if restarts {
							before = hubUsage{}
						}
						d := scenario(round)
						m.edgesCPU += processCPU() - self
						m.add(d, before, f.hub.usage(b), ops, ops*uint64(n-1))
						b.StopTimer()
						f.checkConverged(time.Minute)
						b.StartTimer()
					}
					m.report(b)
				})
			}
			ops := perEdge * uint64(n)
			run("connected", ops, false, func(r int) time.Duration { return f.connectedRound(r, w, 2*time.Minute) })
			run("herd", ops, false, func(r int) time.Duration { return f.herdRound(r, w, 2*time.Minute) })
			run("hubrestart", ops, true, func(r int) time.Duration { return f.hubRestartRound(r, w, 2*time.Minute) })
			run("onewriter", 200, false, func(r int) time.Duration { return f.oneWriterRound(r, 200, 2*time.Minute) })
			b.Run("idle", func(b *testing.B) { f.tb = b; benchIdleHub(b, f.hub) })
		})
	}
}

// benchIdleHub measures the hub's CPU while every edge is connected and
// nothing changes: what its sessions cost just by existing.
func benchIdleHub(b *testing.B, h fleetHub) {
	const window = 5 * time.Second
	var cpu time.Duration
	for b.Loop() {
		before := h.usage(b)
		time.Sleep(window) // the measurement window: nothing to wait for
		cpu += h.usage(b).CPU - before.CPU
	}
	b.ReportMetric(float64(cpu.Microseconds())/1e3/window.Seconds()/float64(b.N), "hub-cpu-ms/s")
	b.ReportMetric(0, "ns/op")
}

// processCPU is this process's CPU time (user and system) so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fleetSizes(b *testing.B) []int {
	if s := os.Getenv("FERRITE_FLEET_SIZES"); s != "" {
		var sizes []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("FERRITE_FLEET_SIZES: %q", s)
			}
			sizes = append(sizes, n)
		}
		return sizes
	}
	if testing.Short() {
		return []int{20}
	}
	return []int{20, 50, 100}
}

// fleetMetrics sums a sub-benchmark's rounds.
type fleetMetrics struct {
	rounds           int
	converge, cpu    time.Duration
	mallocs, bytes   uint64
	ops, deliveries  uint64
	heap, live, rss  uint64
	peak             uint64
	edgesCPU         time.Duration // this process: the edges and the broker
	goroutines, sess int
	sent, dropped    uint64
}

func (m *fleetMetrics) add(d time.Duration, before, after hubUsage, ops, deliveries uint64) {
	m.rounds++
	m.converge += d
	m.cpu += after.CPU - before.CPU
	m.mallocs += after.Mallocs - before.Mallocs
	m.bytes += after.AllocBytes - before.AllocBytes
	m.ops += ops
	m.deliveries += deliveries
	m.heap = max(m.heap, after.HeapInuse)
	m.live = max(m.live, after.LiveHeap)
	m.peak = max(m.peak, after.PeakHeap)
	m.rss = max(m.rss, uint64(after.MaxRSS))
	m.goroutines, m.sess = after.Goroutines, after.Sessions
	m.sent += after.OpsSent - before.OpsSent
	m.dropped += after.Dropped - before.Dropped
}

func (m *fleetMetrics) report(b *testing.B) {
	r := float64(m.rounds)
	b.ReportMetric(m.converge.Seconds()/r, "converge-s")
	b.ReportMetric(m.cpu.Seconds()/r, "hub-cpu-s")
	b.ReportMetric(float64(m.cpu.Microseconds())/float64(m.deliveries), "hub-cpu-us/delivery")
	b.ReportMetric(float64(m.mallocs)/float64(m.ops), "hub-allocs/op")
	b.ReportMetric(float64(m.bytes)/float64(m.ops), "hub-B/op")
	b.ReportMetric(float64(m.heap)/(1<<20), "hub-heap-MB")
	b.ReportMetric(float64(m.live)/(1<<20), "hub-live-MB")
	b.ReportMetric(float64(m.peak)/(1<<20), "hub-peak-heap-MB")
	b.ReportMetric(m.edgesCPU.Seconds()/r, "edges-cpu-s")
	b.ReportMetric(float64(m.rss)/(1<<20), "hub-rss-MB")
	b.ReportMetric(float64(m.goroutines), "hub-goroutines")
	// Ops sent per op an edge needed: above 1, the hub resent.
	b.ReportMetric(float64(m.sent)/float64(m.deliveries), "sent/delivery")
	b.ReportMetric(float64(m.dropped)/r, "inbox-drops")
	// The framework's own figures cover the edges and the broker too.
	b.ReportMetric(0, "ns/op")
}
