package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// node is one ferrite process of the demo.
type node struct {
	name string
	proc *proc
	addr string // MQTT host:port
	cmd  *commander
}

// demo is one run: three nodes, two sensor simulators, the writes made.
type demo struct {
	opts           *options
	out            io.Writer
	dir            string
	ferrite, bench string

	nodes []*node // every started node, in start order
	edges []*node
	hub   *node
	sims  []*proc

	visits int64 // the sum of every INCRBY the demo made on demo:visits
	failed bool

	dataMu   sync.Mutex
	dataMsg  map[string]int      // bucket messages for cloud subscribers, per edge
	dataKeys map[string]struct{} // the buckets they carried
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(ctx context.Context) (err error) {
	defer func() { d.failed = err != nil }()
	if err := d.setup(ctx); err != nil {
		return err
	}
	if err := d.startEdges(ctx); err != nil {
		return err
	}
	if err := d.offlineWrites(ctx); err != nil {
		return err
	}
	if err := d.startHub(ctx); err != nil {
		return err
	}
	if d.opts.sensors {
		if err := d.startSensors(); err != nil {
			return err
		}
	}
	if err := d.live(ctx); err != nil {
		return err
	}
	return d.converge(context.WithoutCancel(ctx))
}

// setup makes the work directory and finds or builds the binaries.
func (d *demo) setup(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "ferrite-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	d.printf("ferrite-demo: data and logs in %s\n", dir)
	d.ferrite, d.bench = d.opts.ferrite, d.opts.bench
	bin := filepath.Join(dir, "bin")
	if d.ferrite == "" || (d.bench == "" && d.opts.sensors) {
		d.printf("building the binaries (go build)…\n")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return err
		}
	}
	if d.ferrite == "" {
		if d.ferrite, err = build(ctx, bin, "./cmd/ferrite"); err != nil {
			return err
		}
	}
	if d.bench == "" && d.opts.sensors {
		if d.bench, err = build(ctx, bin, "./cmd/ferrite-bench"); err != nil {
			return err
		}
	}
	return nil
}

// hubPort is reserved before the edges start: they know where the hub will be.
var hubPort int

func (d *demo) startEdges(ctx context.Context) error {
	var err error
	if hubPort, err = freePort(); err != nil {
		return err
	}
	for _, name := range []string{"edge-a", "edge-b"} {
		n, err := d.startNode(ctx, name, fmt.Sprintf(edgeConfig, name, filepath.Join(d.dir, name), hubPort))
		if err != nil {
			return err
		}
		d.edges = append(d.edges, n)
		d.printf("%-6s  up: MQTT %s (its hub, 127.0.0.1:%d, is not running yet)\n", name, n.addr, hubPort)
	}
	return nil
}

// offlineWrites writes the same keys on both edges while neither can reach
// the hub: concurrent writes, merged once the hub is up.
func (d *demo) offlineWrites(ctx context.Context) error {
	writes := map[string][][]string{
		"edge-a": {{"SET", "demo:color", "red"}, {"INCRBY", "demo:visits", "5"}, {"SADD", "demo:tags", "from-a"}, {"HSET", "demo:settings", "mode", "eco"}},
		"edge-b": {{"SET", "demo:color", "blue"}, {"INCRBY", "demo:visits", "7"}, {"SADD", "demo:tags", "from-b"}, {"HSET", "demo:settings", "fan", "on"}},
	}
	d.visits = 12
	for _, e := range d.edges {
		var shown []string
		for _, w := range writes[e.name] {
			if _, err := e.cmd.do(ctx, w...); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
			shown = append(shown, strings.Join(w, " "))
		}
		var q struct {
			Pending int `json:"pending_ops"`
		}
		if err := e.cmd.doInto(ctx, &q, "EDGE.QUEUE"); err != nil {
			return err
		}
		d.printf("%-6s  offline writes: %s (%d ops queued for the hub)\n", e.name, strings.Join(shown, "; "), q.Pending)
	}
	return nil
}

func (d *demo) startHub(ctx context.Context) error {
	n, err := d.startNode(ctx, "hub", fmt.Sprintf(hubConfig, filepath.Join(d.dir, "hub"), hubPort))
	if err != nil {
		return err
	}
	d.hub = n
	d.dataMsg, d.dataKeys = make(map[string]int), make(map[string]struct{})
	err = n.cmd.watch(ctx, "ferrite/data/#", func(_ string, payload []byte) {
		var m struct{ Node, Key string }
		if json.Unmarshal(payload, &m) != nil {
			return
		}
		d.dataMu.Lock()
		d.dataMsg[m.Node]++
		d.dataKeys[m.Key] = struct{}{}
		d.dataMu.Unlock()
	})
	if err != nil {
		return err
	}
	d.printf("hub     up: MQTT %s; the edges connect and sync\n", n.addr)
	return nil
}

// startSensors runs ferrite-bench -gentle (a few sensors of every payload
// format at 1 Hz) against each edge.
func (d *demo) startSensors() error {
	for _, e := range d.edges {
		p, err := start("sensors@"+e.name, d.bench, filepath.Join(d.dir, "sensors-"+e.name+".log"),
			"-gentle", "-broker", "tcp://"+e.addr)
		if err != nil {
			return err
		}
		d.sims = append(d.sims, p)
	}
	d.printf("sensors simulated on both edges (ferrite-bench -gentle: 1 Hz, every payload format)\n\n")
	return nil
}

// live prints a summary every interval, then makes one more increment on
// alternating edges, until ctx ends or --duration passes.
func (d *demo) live(ctx context.Context) error {
	begin := time.Now()
	var end <-chan time.Time
	if d.opts.duration > 0 {
		t := time.NewTimer(d.opts.duration)
		defer t.Stop()
		end = t.C
	}
	tick := time.NewTicker(d.opts.interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			d.printf("\ninterrupted: ")
			return nil
		case <-end:
			d.printf("\n--duration reached: ")
			return nil
		case <-tick.C:
		}
		if err := d.checkAlive(); err != nil {
			return err
		}
		s, err := d.snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return err
		}
		d.print(time.Since(begin), s)
		// One more increment for the next summary, on alternating edges.
		// Not cancelled by Ctrl-C: the demo must know whether it was applied.
		e := d.edges[i%len(d.edges)]
		if _, err := e.cmd.do(context.WithoutCancel(ctx), "INCRBY", "demo:visits", "1"); err != nil {
			return err
		}
		d.visits++
	}
}

// converge stops the writes and the sensors, closes the open buckets,
// syncs, and waits (up to --settle) until every replica agrees.
func (d *demo) converge(ctx context.Context) error {
	d.printf("writes stopped; flushing open buckets and syncing…\n")
	for _, p := range d.sims {
		_ = p.stop(10 * time.Second)
	}
	d.sims = nil
	for _, e := range d.edges {
		if _, err := e.cmd.do(ctx, "SENSOR.FLUSH"); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	begin := time.Now()
	deadline := begin.Add(d.opts.settle)
	for {
		for _, e := range d.edges {
			_, _ = e.cmd.do(ctx, "EDGE.SYNC") // fails while the link is still coming up; retried
		}
		s, err := d.snapshot(ctx)
		if err != nil {
			return err
		}
		if why := d.divergence(s); why == "" {
			d.print(time.Since(begin), s)
			d.verdict(s, time.Since(begin))
			return nil
		} else if time.Now().After(deadline) {
			d.print(time.Since(begin), s)
			d.printf("NOT CONVERGED after %s: %s\n", d.opts.settle, why)
			return errNotConverged
		}
		if err := d.checkAlive(); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond) // the demo's pace, not a synchronisation
	}
}

func (d *demo) checkAlive() error {
	for _, n := range d.nodes {
		if !n.proc.alive() {
			return fmt.Errorf("%s exited: %v (log: %s)", n.name, n.proc.err, n.proc.log)
		}
	}
	return nil
}

// shutdown stops every process (simulators, edges, hub) gracefully and
// removes the work directory unless --keep or the demo failed. It reports
// whether every node exited cleanly.
func (d *demo) shutdown() bool {
	var errs []string
	for _, p := range d.sims {
		_ = p.stop(10 * time.Second) // a simulator's exit status does not matter
	}
	for _, n := range d.nodes {
		n.cmd.close()
	}
	for i := len(d.nodes) - 1; i >= 0; i-- {
		if err := d.nodes[i].proc.stop(30 * time.Second); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		d.failed = true
		d.printf("stop: %s\n", strings.Join(errs, "; "))
	} else if len(d.nodes) > 0 {
		d.printf("every process stopped cleanly\n")
	}
	switch {
	case d.dir == "":
	case d.opts.keep || d.failed:
		d.printf("data and logs kept in %s\n", d.dir)
	default:
		_ = os.RemoveAll(d.dir)
	}
	return len(errs) == 0
}
