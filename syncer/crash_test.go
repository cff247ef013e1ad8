package syncer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Crash tests: an edge or the hub runs in a child process (this test
// binary, re-executed) and is killed with SIGKILL mid-sync, repeatedly.
// Counters make double applies visible: after the last restart every
// replica's counter must equal the increments the edge made, never more
// (an op applied twice) nor less than those it acknowledged (an op lost).

const crashEnv = "SYNCER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(crashEnv); role != "" {
		os.Exit(crashChild(role))
	}
	if dir := os.Getenv(fleetHubEnv); dir != "" {
		os.Exit(fleetHubChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild runs a replica until killed. Edge: increments "counter" in a
// loop, printing each acknowledged (durable) value; with SYNCER_CRASH_FINAL
// set, it instead syncs, prints its counter and exits. Hub: serves.
func crashChild(role string) int {
	dir, url, node := os.Getenv("SYNCER_CRASH_DIR"), os.Getenv("SYNCER_CRASH_URL"), os.Getenv("SYNCER_CRASH_NODE")
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	ctx := context.Background()
	so := store.Options{NodeID: node, Dir: dir, Resolver: res, SweepInterval: -1, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if role == "hub" {
		so.Role = crdt.RoleHub
	}
	st, err := store.Open(ctx, so)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch role {
	case "hub":
		h, err := NewHub(HubOptions{Store: st, BrokerURL: url, Resolver: res, BackoffMin: 20 * time.Millisecond,
			BackoffMax: 200 * time.Millisecond, Registerer: prometheus.NewRegistry()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("ready")
		_ = h.Run(ctx) // until killed
		return 0
	case "edge":
		o := EdgeOptions{Store: st, HubURL: url, Policy: PolicyImmediate, Resolver: res, Registerer: prometheus.NewRegistry()}
		fastEdge(&o)
		e, err := NewEdge(o)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		go func() { _ = e.Run(ctx) }()
		if os.Getenv("SYNCER_CRASH_FINAL") != "" {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := e.SyncNow(sctx); err != nil {
				fmt.Fprintln(os.Stderr, "sync:", err)
				return 3
			}
			v, _ := st.Get(ctx, "counter")
			fmt.Printf("final %s\n", v)
			return 0
		}
		for {
			n, err := st.IncrBy(ctx, "counter", 1)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
			fmt.Println(n)
		}
	}
	return 1
}

type child struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

func startChild(t *testing.T, role, dir, url, node string, final bool) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+role, "SYNCER_CRASH_DIR="+dir, "SYNCER_CRASH_URL="+url, "SYNCER_CRASH_NODE="+node)
	if final {
		cmd.Env = append(cmd.Env, "SYNCER_CRASH_FINAL=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	check(t, err)
	check(t, cmd.Start())
	c := &child{cmd: cmd, out: bufio.NewScanner(out)}
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// TestCrashEdgeMidSync: kill -9 the edge while it writes and syncs,
// several times; then let it sync. The hub's counter equals the edge's,
// and is at least every increment the edge acknowledged.
func TestCrashEdgeMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: child processes")
	}
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub := newReplica(t, "hub", crdt.RoleHub, res)
	hub.startHub(b.url)
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := 0
	for range 6 {
		c := startChild(t, "edge", dir, b.url, "edge-1", false)
		want := 50 + rnd.IntN(400)
		for i := 0; i < want && c.out.Scan(); i++ {
			n, err := strconv.Atoi(c.out.Text())
			check(t, err)
			acked = max(acked, n)
		}
		c.kill()
	}
	c := startChild(t, "edge", dir, b.url, "edge-1", true)
	var final int
	for c.out.Scan() {
		if v, ok := strings.CutPrefix(c.out.Text(), "final "); ok {
			final, _ = strconv.Atoi(v)
		}
	}
	check(t, c.cmd.Wait())
	if final < acked {
		t.Fatalf("edge counter %d after restarts, but %d increments were acknowledged", final, acked)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		v := mustGet(t, hub.st, "counter")
		return v == strconv.Itoa(final), fmt.Sprintf("hub counter %s, edge %d (acked %d)", v, final, acked)
	})
}

// TestCrashHubMidApply: kill -9 the hub while two edges push increments,
// several times; after it comes back for good every replica holds the sum
// of the increments, exactly.
func TestCrashHubMidApply(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: child processes")
	}
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	e1 := newReplica(t, "edge-1", crdt.RoleEdge, res)
	e2 := newReplica(t, "edge-2", crdt.RoleEdge, res)
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 2)
	for _, e := range []*replica{e1, e2} {
		go func() {
			n := 0
			for ctx.Err() == nil {
				if _, err := e.st.IncrBy(context.Background(), "counter", 1); err != nil {
					break
				}
				n++
			}
			done <- n
		}()
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for range 5 {
		h := startChild(t, "hub", dir, b.url, "hub", false)
		if !h.out.Scan() {
			t.Fatal("hub child did not start")
		}
		time.Sleep(time.Duration(100+rnd.IntN(300)) * time.Millisecond) // let it apply, then crash it mid-stream
		h.kill()
	}
	cancel()
	total := <-done + <-done
	h := startChild(t, "hub", dir, b.url, "hub", false)
	if !h.out.Scan() {
		t.Fatal("hub child did not start")
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		v1, v2 := mustGet(t, e1.st, "counter"), mustGet(t, e2.st, "counter")
		return v1 == strconv.Itoa(total) && v2 == v1, fmt.Sprintf("counters %s / %s, want %d", v1, v2, total)
	})
	h.kill()
	// The hub's own store, reopened after the final kill, agrees too.
	st := openStore(t, dir, "hub", crdt.RoleHub, res, nil)
	defer st.Close()
	if v := mustGet(t, st, "counter"); v != strconv.Itoa(total) {
		t.Fatalf("hub counter %s, want %d", v, total)
	}
}
