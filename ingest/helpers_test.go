package ingest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// manualClock is a Clock the test moves.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// openStore opens the real Pebble store in dir.
func openStore(t testing.TB, dir string, mods ...func(*store.Options)) *store.Store {
	t.Helper()
	o := store.Options{NodeID: "edge-1", Dir: dir, Logger: quietLog, SweepInterval: -1}
	for _, m := range mods {
		m(&o)
	}
	s, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testNode is a store plus a pipeline on it, driven by a manual clock.
type testNode struct {
	t     testing.TB
	dir   string
	st    *store.Store
	p     *Pipeline
	clock *manualClock
	reg   *prometheus.Registry
	cmds  map[string]Command
}

func newTestNode(t testing.TB, dir string, mod func(*Options)) *testNode {
	t.Helper()
	n := &testNode{t: t, dir: dir, clock: &manualClock{now: t0.Add(5 * time.Second)}}
	n.open(mod)
	t.Cleanup(n.close)
	return n
}

func (n *testNode) open(mod func(*Options)) {
	n.t.Helper()
	n.st = openStore(n.t, n.dir)
	n.reg = prometheus.NewRegistry()
	o := Options{
		Store: NewStoreBackend(n.st), Clock: n.clock, TickInterval: -1, Logger: quietLog, Registerer: n.reg,
		Location: time.UTC,
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(context.Background(), o)
	if err != nil {
		n.t.Fatal(err)
	}
	n.p = p
	n.cmds = map[string]Command{}
	for _, c := range Commands(p) {
		n.cmds[c.Name] = c
	}
}

// restart closes the pipeline (gracefully unless crash) and the store,
// then opens both again on the same directory.
func (n *testNode) restart(crash bool, mod func(*Options)) {
	n.t.Helper()
	if !crash {
		if err := n.p.Close(context.Background()); err != nil {
			n.t.Fatal(err)
		}
	} else {
		// Stop the goroutine without the final writes a graceful Close does.
		n.p.closed.Store(true)
	}
	if err := n.st.Close(); err != nil {
		n.t.Fatal(err)
	}
	n.open(mod)
}

func (n *testNode) close() {
	if n.p != nil && !n.p.closed.Load() {
		_ = n.p.Close(context.Background())
	}
	if n.st != nil {
		_ = n.st.Close()
	}
}

func (n *testNode) publish(topic, payload string) {
	n.t.Helper()
	// QoS 1: synchronous, stored before HandleMessages returns.
	if err := n.p.HandleMessages(context.Background(), []*Message{{Topic: topic, Payload: []byte(payload), QoS: 1, Received: n.clock.Now()}}); err != nil {
		n.t.Fatal(err)
	}
}

func (n *testNode) cmd(name string, args ...string) (any, error) {
	n.t.Helper()
	c, ok := n.cmds[name]
	if !ok {
		n.t.Fatalf("no command %s", name)
	}
	if len(args) < c.MinArgs || (c.MaxArgs >= 0 && len(args) > c.MaxArgs) {
		n.t.Fatalf("%s: %d args", name, len(args))
	}
	return c.Run(context.Background(), args)
}

func (n *testNode) stats(id string) StatsReply {
	n.t.Helper()
	v, err := n.cmd("SENSOR.STATS", id)
	if err != nil {
		n.t.Fatalf("SENSOR.STATS %s: %v", id, err)
	}
	return v.(StatsReply)
}

// metricValue returns the value of a counter or gauge (without
// prometheus/testutil, whose dependencies are not in go.sum).
func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither a counter nor a gauge", c.Desc())
	return 0
}
