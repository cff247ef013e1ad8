package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

// TestQueueOverflowFullSync: an edge offline writes far more than its
// queue holds; the oldest ops are dropped (counted), the next session
// sends full state; the hub and the other edge end with the edge's final
// state, nothing of it lost; the other edge gets it by FullSync too
// (a merge logs no ops).
func TestQueueOverflowFullSync(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	hub.startHub(b.url)
	e2.startEdge(b.url)
	e1.startEdge("mqtt://127.0.0.1:1", func(o *EdgeOptions) { o.QueueCapacity = 50 }) // unreachable: offline
	ctx := context.Background()
	const writes = 400
	for i := range writes {
		check(t, e1.st.Set(ctx, fmt.Sprintf("k%d", i%37), []byte(fmt.Sprint(i))))
		_, err := e1.st.IncrBy(ctx, "counter", 1)
		check(t, err)
		if i%50 == 0 {
			_, err := e1.st.Del(ctx, fmt.Sprintf("k%d", (i+1)%37))
			check(t, err)
		}
	}
	check(t, e2.st.Set(ctx, "from-e2", []byte("x")))
	// Every op is either pending or counted as dropped.
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := e1.edge.Status()
		return s.NeedFullSync && s.PendingOps <= 50 && s.Dropped+uint64(s.PendingOps) == e1.st.LastSeq(),
			fmt.Sprintf("edge-1 %+v, %d ops written", s, e1.st.LastSeq())
	})
	want := map[string]string{}
	for i := range 37 {
		k := fmt.Sprintf("k%d", i)
		v, err := e1.st.Get(ctx, k)
		if err == nil {
			want[k] = string(v)
		}
	}
	// Reconnect e1 to the hub (same data directory).
	e1.stopSync()
	e1.startEdge(b.url, func(o *EdgeOptions) { o.QueueCapacity = 50 })
	waitConverged(t, 30*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e2} {
		for k, v := range want {
			if got := mustGet(t, r.st, k); got != v {
				t.Fatalf("%s: %s = %q, want %q (edge-1's final state)", r.name, k, got, v)
			}
		}
		if v := mustGet(t, r.st, "counter"); v != fmt.Sprint(writes) {
			t.Fatalf("%s: counter = %s, want %d", r.name, v, writes)
		}
	}
	if v := mustGet(t, e1.st, "from-e2"); v != "x" {
		t.Fatalf("edge-1 lacks edge-2's write")
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := e1.edge.Status()
		return !s.NeedFullSync && s.PendingOps == 0 && s.FullSyncsUp == 1, fmt.Sprintf("edge-1 %+v", s)
	})
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := e2.edge.Status()
		return s.FullSyncsDown > 0, fmt.Sprintf("edge-2 got no FullSync after the hub merged edge-1's state: %+v", s)
	})
	// Later writes flow as deltas again.
	check(t, e1.st.Set(ctx, "after", []byte("delta")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		v, err := e2.st.Get(ctx, "after")
		return err == nil && string(v) == "delta", fmt.Sprintf("edge-2 after=%q %v", v, err)
	})
}

// TestClockSkew: edge-1's clock runs two hours ahead. Last-writer-wins
// follows the HLC, so its write wins over a later (in real time) write of
// edge-2 everywhere, and the far-future node is reported: by the hub (its
// Hello clock), by edge-2 (ops stamped ahead) and in the skew metric.
func TestClockSkew(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.LastWriteWins}
	hub := newReplica(t, "hub", crdt.RoleHub, res)
	e1 := &replica{t: t, name: "edge-1", role: crdt.RoleEdge, dir: t.TempDir(), res: res,
		clock: func() int64 { return time.Now().Add(2 * time.Hour).UnixMilli() }}
	e1.open()
	t.Cleanup(e1.close)
	e2 := newReplica(t, "edge-2", crdt.RoleEdge, res)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "mode", []byte("from-the-future")))
	check(t, e2.st.Set(ctx, "mode", []byte("from-now"))) // later in real time
	hub.startHub(b.url)
	e1.startEdge(b.url, func(o *EdgeOptions) { o.Clock = func() time.Time { return time.Now().Add(2 * time.Hour) } })
	e2.startEdge(b.url)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		if v := mustGet(t, r.st, "mode"); v != "from-the-future" {
			t.Fatalf("%s: mode = %q, want the higher HLC's value", r.name, v)
		}
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		_, ok := e2.edge.Status().SkewedNodes["edge-1"]
		return ok, fmt.Sprintf("edge-2 skewed nodes: %v", e2.edge.Status().SkewedNodes)
	})
	if f := e2.edge.StatusFields()["clock_skewed_nodes"]; !slices.Equal(f.([]string), []string{"edge-1"}) {
		t.Fatalf("EDGE.STATUS clock_skewed_nodes = %v", f)
	}
	var e1s EdgeStatus
	for _, e := range hub.hub.Status().Edges {
		if e.Node == "edge-1" {
			e1s = e
		}
	}
	if e1s.ClockOffset < time.Hour {
		t.Fatalf("hub sees edge-1's clock offset %v, want about 2h", e1s.ClockOffset)
	}
}

// TestStrategiesConverge: concurrent writes of one key on the hub and both
// edges resolve to the same value on every replica under each strategy,
// the value the strategy says.
func TestStrategiesConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: four clusters")
	}
	b := startEmbedded(t)
	base := time.Now().UnixMilli()
	cases := []struct {
		strategy crdt.Strategy
		want     string
	}{
		{crdt.LastWriteWins, "hub"}, // latest HLC: the hub's clock is furthest ahead
		{crdt.CrdtMerge, "hub"},     // registers resolve last-writer-wins
		{crdt.CloudWins, "hub"},     // the hub's write whatever the clocks
		{crdt.EdgeWins, "edge-2"},   // an edge's write; among edges the later one
	}
	for i, c := range cases {
		t.Run(c.strategy.String(), func(t *testing.T) {
			res := crdt.Resolver{Default: c.strategy}
			prefix := fmt.Sprintf("s%d/", i) // a topic prefix per cluster: one broker
			mk := func(name string, role crdt.Role, ahead int64) *replica {
				r := &replica{t: t, name: name, role: role, dir: t.TempDir(), res: res,
					clock: func() int64 { return base + ahead + (time.Now().UnixMilli() - base) }}
				r.open()
				t.Cleanup(r.close)
				return r
			}
			hub, e1, e2 := mk("hub", crdt.RoleHub, 3000), mk("edge-1", crdt.RoleEdge, 1000), mk("edge-2", crdt.RoleEdge, 2000)
			if c.strategy == crdt.EdgeWins {
				// The hub's write is the latest, edge-2's the latest of the edges.
				hub.clock = func() int64 { return base + 5000 }
			}
			ctx := context.Background()
			for _, r := range []*replica{hub, e1, e2} {
				check(t, r.st.Set(ctx, "k", []byte(r.name)))
				_, err := r.st.IncrBy(ctx, "n", 1)
				check(t, err)
			}
			hub.startHub(b.url, func(o *HubOptions) { o.TopicPrefix = prefix + "$ferrite" })
			for _, e := range []*replica{e1, e2} {
				e.startEdge(b.url, func(o *EdgeOptions) { o.TopicPrefix = prefix + "$ferrite" })
			}
			waitConverged(t, 20*time.Second, hub, e1, e2)
			for _, r := range []*replica{hub, e1, e2} {
				if v := mustGet(t, r.st, "k"); v != c.want {
					t.Fatalf("%s: k = %q, want %q", r.name, v, c.want)
				}
				if n := r.st.ConflictCount(); n != 2 {
					t.Fatalf("%s: %d conflicts, want 2 (two losers of k%s)", r.name, n, map[bool]string{true: " and n", false: ""}[c.strategy != crdt.CrdtMerge])
				}
			}
			want := "3"
			if c.strategy != crdt.CrdtMerge {
				want = "1" // the whole-value strategies: the winner's INCR from 0
			}
			if v := mustGet(t, hub.st, "n"); v != want {
				t.Fatalf("n = %s, want %s under %s", v, want, c.strategy)
			}
		})
	}
}

// TestRetentionFullSync: the hub prunes what every edge acknowledged, and
// beyond a lagging edge when the log passes its retention; that edge gets
// full state when it comes back.
func TestRetentionFullSync(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub := newReplica(t, "hub", crdt.RoleHub, res)
	e1 := newReplica(t, "edge-1", crdt.RoleEdge, res, noFsync)
	e2 := newReplica(t, "edge-2", crdt.RoleEdge, res)
	hub.startHub(b.url, func(o *HubOptions) { o.RetentionBytes = 64 << 10; o.maintain = 50 * time.Millisecond })
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "first", []byte("1")))
	waitConverged(t, 10*time.Second, hub, e1, e2)
	// Both edges acknowledged everything: the hub prunes its log.
	waitFor(t, 10*time.Second, func() (bool, string) {
		return hub.st.OldestSeq() > hub.st.LastSeq(), fmt.Sprintf("hub log oldest %d last %d", hub.st.OldestSeq(), hub.st.LastSeq())
	})
	e2.stopSync()
	for i := range 3000 {
		check(t, e1.st.Set(ctx, fmt.Sprintf("bulk:%d", i%500), []byte(fmt.Sprintf("value-%d-padding-padding-padding", i))))
	}
	waitFor(t, 20*time.Second, func() (bool, string) {
		hs := hub.hub.Status()
		return hs.LogBytes <= 64<<10+2<<20 && hub.st.PrunedSeq() > 1000, fmt.Sprintf("hub log %+v pruned %d", hs, hub.st.PrunedSeq())
	})
	e2.startEdge(b.url)
	waitConverged(t, 30*time.Second, hub, e1, e2)
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := e2.edge.Status()
		return s.FullSyncsDown > 0, fmt.Sprintf("edge-2 came back behind the retained log without a FullSync: %+v", s)
	})
}

// TestSyncNowFailsFast: with the hub unreachable, EDGE.SYNC fails with
// ErrLinkDown instead of hanging; EDGE.QUEUE shows the queue.
func TestSyncNowFailsFast(t *testing.T) {
	res := crdt.Resolver{}
	e := newReplica(t, "edge-1", crdt.RoleEdge, res)
	e.startEdge(fmt.Sprintf("mqtt://127.0.0.1:%d", freePort(t)), func(o *EdgeOptions) { o.Policy = PolicyManual })
	ctx := context.Background()
	check(t, e.st.Set(ctx, "a", []byte("1")))
	check(t, e.st.Set(ctx, "b", []byte("22")))
	cmds := map[string]Command{}
	for _, c := range Commands(e.edge) {
		cmds[c.Name] = c
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := cmds["EDGE.SYNC"].Run(cctx, nil)
	if !errors.Is(err, ErrLinkDown) {
		t.Fatalf("EDGE.SYNC with the hub down: %v, want ErrLinkDown", err)
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		q, _ := cmds["EDGE.QUEUE"].Run(ctx, nil)
		r := q.(QueueReply)
		return r.PendingOps == 2 && r.PendingBytes > 0 && r.Capacity == DefaultQueueCapacity && r.Oldest != "",
			fmt.Sprintf("EDGE.QUEUE %+v", r)
	})
	f := e.edge.StatusFields()
	if f["sync_status"] != "offline" || f["pending_ops"] != 2 || f["hub_connected"] != false || f["last_sync"] != nil {
		t.Fatalf("EDGE.STATUS fields %v", f)
	}
	if ls := e.edge.LinkStats(); ls.Connected || ls.ConsecutiveFailures == 0 {
		t.Fatalf("LinkStats %+v", ls)
	}
}

// TestConflictsCommand: EDGE.CONFLICTS lists both values of a conflict
// detected through sync, and CLEAR forgets them.
func TestConflictsCommand(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.LastWriteWins}
	hub, e1, e2 := hubAndEdges(t, res)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "door", []byte("open")))
	check(t, e2.st.Set(ctx, "door", []byte("closed")))
	hub.startHub(b.url)
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	waitConverged(t, 10*time.Second, hub, e1, e2)
	cmd := ConflictsCommand(e1.st)
	out, err := cmd.Run(ctx, nil)
	check(t, err)
	list := out.([]ConflictReply)
	if len(list) != 1 {
		t.Fatalf("EDGE.CONFLICTS = %+v, want one", list)
	}
	c := list[0]
	vals := []string{c.Winner.Value, c.Loser.Value}
	slices.Sort(vals)
	if c.Key != "door" || !slices.Equal(vals, []string{`"closed"`, `"open"`}) || c.Strategy != "lww" || c.ID == "" {
		t.Fatalf("conflict %+v", c)
	}
	if _, err := cmd.Run(ctx, []string{"zero"}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("bad limit: %v", err)
	}
	out, err = cmd.Run(ctx, []string{"CLEAR"})
	check(t, err)
	if out.(map[string]int)["cleared"] != 1 {
		t.Fatalf("CLEAR = %v", out)
	}
	out, _ = cmd.Run(ctx, nil)
	if len(out.([]ConflictReply)) != 0 {
		t.Fatalf("conflicts after CLEAR: %v", out)
	}
}

// TestOnApplied: the hub reports the keys edges changed, after they are
// durable (the root republishes merged sensor buckets from it).
func TestOnApplied(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, _ := hubAndEdges(t, res)
	got := make(chan []string, 16)
	hub.startHub(b.url, func(o *HubOptions) { o.OnApplied = func(keys []string) { got <- keys } })
	e1.startEdge(b.url)
	ctx := context.Background()
	check(t, e1.st.AggregateMerge(ctx, "agg/temp/60/1708300800", crdt.Partial{Count: 3, Sum: 66, Min: 21, Max: 23, FirstTS: 1, LastTS: 2}))
	select {
	case keys := <-got:
		if !slices.Contains(keys, "agg/temp/60/1708300800") {
			t.Fatalf("OnApplied(%v)", keys)
		}
		p, err := hub.st.Aggregate(ctx, "agg/temp/60/1708300800")
		check(t, err)
		if p.Count != 3 {
			t.Fatalf("hub aggregate %+v when OnApplied ran", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnApplied not called")
	}
}

// An edge without a hub kept up to QueueCapacity ops (values included)
// that nothing would ever read, so a small device filled its storage with
// them (found by the resources audit). It prunes them at once; given a hub
// later, its first sync sends full state.
func TestNoHubKeepsNoQueue(t *testing.T) {
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	e := newReplica(t, "edge-1", crdt.RoleEdge, res)
	e.startEdge("")
	ctx := context.Background()
	for i := range 50 {
		check(t, e.st.Set(ctx, fmt.Sprintf("k%d", i), []byte("v")))
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		return e.st.PrunedSeq() == e.st.LastSeq(), fmt.Sprintf("op log %d..%d", e.st.OldestSeq(), e.st.LastSeq())
	})
	e.stopSync()
	b := startEmbedded(t)
	hub := newReplica(t, "hub", crdt.RoleHub, res)
	hub.startHub(b.url)
	e.startEdge(b.url)
	waitConverged(t, 10*time.Second, hub, e)
	n, err := hub.st.DBSize(ctx)
	check(t, err)
	if n != 50 {
		t.Fatalf("hub has %d keys, want 50", n)
	}
}
