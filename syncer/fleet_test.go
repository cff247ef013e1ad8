package syncer

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Fleet tests: one hub and many edges (each a real store on its own
// directory with a small memory limit and a real Edge) through one
// embedded broker. TestFleet runs every scenario with a small fleet and
// checks correctness only; BenchmarkFleet (fleet_bench_test.go) times
// them with larger fleets and the hub in a child process.

// fleetEdgeMemory is each edge's store memory budget (the "iot" preset's).
const fleetEdgeMemory = 2 << 20

// fleetHub is the hub of a fleet: in this process (tests) or in a child
// process (benchmarks, so that its CPU and memory are its own).
type fleetHub interface {
	// digest hashes the hub's state (see digest).
	digest(tb testing.TB) string
	// usage reads the hub's resource figures (zero where unknown).
	usage(tb testing.TB) hubUsage
	// stop stops the hub; start starts it again on the same data
	// directory.
	stop()
	start(tb testing.TB)
}

// hubUsage is what a hub process used so far.
type hubUsage struct {
	CPU        time.Duration // user + system
	Mallocs    uint64        // heap objects allocated, ever
	AllocBytes uint64        // heap bytes allocated, ever
	HeapInuse  uint64
	LiveHeap   uint64 // heap after a collection
	PeakHeap   uint64 // the most heap seen since the last reading
	MaxRSS     int64  // bytes
	Goroutines int
	Sessions   int // live edge sessions
	// OpsSent counts ops sent to edges (resends included), Dropped the
	// edges' messages dropped because a session's inbox was full.
	OpsSent, Dropped uint64
}

// inprocHub is a hub replica in this process.
type inprocHub struct {
	r   *replica
	url string
}

func (h inprocHub) digest(tb testing.TB) string { return digest(tb, h.r.st) }
func (h inprocHub) stop()                       { h.r.close() }

func (h inprocHub) start(testing.TB) {
	h.r.open()
	h.r.startHub(h.url)
}

func (h inprocHub) usage(testing.TB) hubUsage {
	h.r.hub.mu.Lock()
	defer h.r.hub.mu.Unlock()
	return hubUsage{Sessions: len(h.r.hub.sessions), Goroutines: countGoroutines("(*hubSession).run")}
}

// countGoroutines counts this process's goroutines with fn on their stack.
func countGoroutines(fn string) int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// fleet is a hub and n edges on one broker.
type fleet struct {
	tb     testing.TB
	br     *broker
	res    crdt.Resolver
	hub    fleetHub
	edges  []*replica
	actors []string // edges[i]'s actor
	incrs  int64    // increments of "counter" made by all edges so far
	// prodTimers: the edges (and a child hub) run with the default ack
	// timeout and backoff, not the tests' fast ones (fastEdge).
	prodTimers bool
}

func fleetEdgeStore(o *store.Options) { o.MemoryLimit = fleetEdgeMemory }

// newFleet starts a hub (startHub) and n edges on a new broker and waits
// until every edge has a session.
func newFleet(tb testing.TB, n int, prodTimers bool, startHub func(f *fleet) fleetHub) *fleet {
	tb.Helper()
	f := &fleet{tb: tb, br: startEmbedded(tb), res: crdt.Resolver{Default: crdt.CrdtMerge}, prodTimers: prodTimers}
	f.hub = startHub(f)
	tb.Cleanup(f.hub.stop)
	for i := range n {
		e := newReplica(tb, fmt.Sprintf("edge-%03d", i), crdt.RoleEdge, f.res, func(r *replica) { r.opts = fleetEdgeStore })
		f.edges = append(f.edges, e)
		f.actors = append(f.actors, e.st.Actor())
	}
	f.startEdges()
	f.waitSessions(time.Minute)
	return f
}

// inprocFleetHub starts the hub in this process.
func inprocFleetHub(f *fleet) fleetHub {
	r := newReplica(f.tb, "hub", crdt.RoleHub, f.res)
	r.startHub(f.br.url)
	return inprocHub{r: r, url: f.br.url}
}

func (f *fleet) startEdges() {
	for _, e := range f.edges {
		e.startEdge(f.br.url, func(o *EdgeOptions) {
			if f.prodTimers {
				o.AckTimeout, o.BackoffMin, o.BackoffMax = DefaultAckTimeout, DefaultBackoffMin, DefaultBackoffMax
			}
		})
	}
}

func (f *fleet) stopEdges() {
	var wg sync.WaitGroup
	for _, e := range f.edges {
		wg.Go(e.stopSync)
	}
	wg.Wait()
}

// waitSessions waits until every edge is connected with nothing pending.
func (f *fleet) waitSessions(timeout time.Duration) {
	f.tb.Helper()
	waitFor(f.tb, timeout, func() (bool, string) {
		for _, e := range f.edges {
			if s := e.edge.Status(); s.SyncStatus != "idle" || s.PendingOps > 0 {
				return false, fmt.Sprintf("%s: %s, %d pending", e.name, s.SyncStatus, s.PendingOps)
			}
		}
		return true, ""
	})
}

// fleetWrites is what each edge writes in a round: its own keys, keys
// every edge writes, and increments of the shared counter.
type fleetWrites struct{ own, shared, incrs int }

// write makes every edge write w concurrently (round names the keys).
func (f *fleet) write(round int, w fleetWrites) {
	f.tb.Helper()
	ctx := context.Background()
	errs := make(chan error, len(f.edges))
	var wg sync.WaitGroup
	for _, e := range f.edges {
		wg.Go(func() { errs <- writeRound(ctx, e.st, e.name, round, w) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		check(f.tb, err)
	}
	f.incrs += int64(len(f.edges) * w.incrs)
}

func writeRound(ctx context.Context, st *store.Store, name string, round int, w fleetWrites) error {
	val := []byte(name)
	for i := range max(w.own, w.shared, w.incrs) {
		if i < w.own {
			if err := st.Set(ctx, fmt.Sprintf("own:%s:%d:%d", name, round, i), val); err != nil {
				return err
			}
		}
		if i < w.shared {
			if err := st.Set(ctx, fmt.Sprintf("shared:%d:%d", round, i), val); err != nil {
				return err
			}
		}
		if i < w.incrs {
			if _, err := st.IncrBy(ctx, "counter", 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// written returns every edge's own counter: what every replica must hold.
func (f *fleet) written() []uint64 {
	want := make([]uint64, len(f.edges))
	for i, e := range f.edges {
		want[i] = e.st.VersionVector()[f.actors[i]]
	}
	return want
}

// covered reports whether every edge holds every edge's writes in want.
func (f *fleet) covered(want []uint64) (bool, string) {
	for _, e := range f.edges {
		vv := e.st.VersionVector()
		for i, a := range f.actors {
			if vv[a] < want[i] {
				return false, fmt.Sprintf("%s has %s up to %d of %d", e.name, a, vv[a], want[i])
			}
		}
	}
	return true, ""
}

// waitCovered waits until every edge holds want (polling) and returns how
// long it took.
func (f *fleet) waitCovered(timeout time.Duration, want []uint64) time.Duration {
	f.tb.Helper()
	start := time.Now()
	waitFor(f.tb, timeout, func() (bool, string) { return f.covered(want) })
	return time.Since(start)
}

// checkConverged checks that every replica holds the same state, the exact
// counter, and that no edge has anything pending.
func (f *fleet) checkConverged(timeout time.Duration) {
	f.tb.Helper()
	want := f.hub.digest(f.tb)
	waitFor(f.tb, timeout, func() (bool, string) {
		if d := f.hub.digest(f.tb); d != want {
			want = d // the hub still moved (a late range-only ack)
			return false, "hub digest moving"
		}
		for _, e := range f.edges {
			if d := digest(f.tb, e.st); d != want {
				return false, fmt.Sprintf("%s digest %s, hub %s", e.name, d, want)
			}
		}
		return true, ""
	})
	for _, e := range f.edges {
		v, err := e.st.Get(context.Background(), "counter")
		if errors.Is(err, store.ErrNotFound) {
			v, err = []byte("0"), nil
		}
		check(f.tb, err)
		if n, _ := strconv.ParseInt(string(v), 10, 64); n != f.incrs {
			f.tb.Fatalf("%s: counter = %s, want %d", e.name, v, f.incrs)
		}
	}
	f.waitSessions(timeout)
}

// Scenarios. Each returns the time from its start (writes, or the
// reconnection) until every edge holds every write.

// connectedRound: every edge writes while connected.
func (f *fleet) connectedRound(round int, w fleetWrites, timeout time.Duration) time.Duration {
	f.tb.Helper()
	start := time.Now()
	f.write(round, w)
	f.waitCovered(timeout, f.written())
	return time.Since(start)
}

// herdRound: every edge writes offline, then all reconnect at once.
func (f *fleet) herdRound(round int, w fleetWrites, timeout time.Duration) time.Duration {
	f.tb.Helper()
	f.stopEdges()
	f.write(round, w)
	want := f.written()
	start := time.Now()
	f.startEdges()
	f.waitCovered(timeout, want)
	return time.Since(start)
}

// hubRestartRound: the hub stops, every edge writes, the hub starts again
// and every edge starts a new session at once (the hub's live "online").
func (f *fleet) hubRestartRound(round int, w fleetWrites, timeout time.Duration) time.Duration {
	f.tb.Helper()
	f.hub.stop()
	f.write(round, w)
	want := f.written()
	start := time.Now()
	f.hub.start(f.tb)
	f.waitCovered(timeout, want)
	return time.Since(start)
}

// oneWriterRound: edge 0 writes ops keys one after the other (each
// durable, so sent on its own) while the others idle.
func (f *fleet) oneWriterRound(round, ops int, timeout time.Duration) time.Duration {
	f.tb.Helper()
	start := time.Now()
	check(f.tb, writeRound(context.Background(), f.edges[0].st, f.edges[0].name, round, fleetWrites{own: ops}))
	f.waitCovered(timeout, f.written())
	return time.Since(start)
}

// TestFleet: 20 edges (5 under -short) and a hub converge exactly in
// every scenario, no edge is left behind after a thundering herd or a hub
// restart, and the hub keeps one session (one goroutine) per edge across
// reconnections.
func TestFleet(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 5
	}
	f := newFleet(t, n, false, inprocFleetHub)
	w := fleetWrites{own: 10, shared: 3, incrs: 5}
	const timeout = time.Minute

	f.connectedRound(1, w, timeout)
	f.checkConverged(timeout)

	for round := 2; round <= 3; round++ {
		f.herdRound(round, w, timeout)
		f.checkConverged(timeout)
	}
	f.oneWriterRound(4, 50, timeout)
	f.checkConverged(timeout)
	f.hubRestartRound(5, w, timeout)
	f.checkConverged(timeout)

	if u := f.hub.usage(t); u.Sessions != n || u.Goroutines != n {
		t.Fatalf("hub: %d sessions, %d session goroutines; want %d each", u.Sessions, u.Goroutines, n)
	}
}
