package syncer

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
)

// TestLostDataDirectory: edge-1's disk is replaced while it is offline,
// and its new, empty data directory (same node id) takes writes before it
// reaches the hub again. Its new data directory writes under a new actor,
// so those writes reach the hub and edge-2 (named by the node id alone,
// they would reuse dots the hub holds and be dropped there for good), and
// edge-1 gets back what it had written before; every replica ends equal.
func TestLostDataDirectory(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	hub.startHub(b.url)
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "k", []byte("old")))
	check(t, e1.st.Set(ctx, "keep", []byte("v")))
	_, err := e1.st.IncrBy(ctx, "n", 1)
	check(t, err)
	_, err = e1.st.SAdd(ctx, "s", "a")
	check(t, err)
	waitConverged(t, 20*time.Second, hub, e1, e2)

	old := e1.st.Actor()
	e1.close()
	e1.dir = t.TempDir() // the new disk
	e1.open()
	if e1.st.Actor() == old {
		t.Fatalf("the new data directory writes as %q again", old)
	}
	check(t, e1.st.Set(ctx, "k", []byte("new")))
	check(t, e1.st.Set(ctx, "fresh", []byte("x")))
	_, err = e1.st.IncrBy(ctx, "n", 1)
	check(t, err)
	_, err = e1.st.SAdd(ctx, "s", "b")
	check(t, err)
	e1.startEdge(b.url)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		for k, want := range map[string]string{"k": "new", "fresh": "x", "keep": "v", "n": "2"} {
			if got := mustGet(t, r.st, k); got != want {
				t.Errorf("%s: %s = %q, want %q", r.name, k, got, want)
			}
		}
		m, err := r.st.SMembers(ctx, "s")
		check(t, err)
		slices.Sort(m)
		if !slices.Equal(m, []string{"a", "b"}) {
			t.Errorf("%s: s = %q", r.name, m)
		}
	}
	// Later writes of the new directory flow as deltas, under its actor.
	check(t, e1.st.Set(ctx, "after", []byte("1")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		v, err := e2.st.Get(ctx, "after")
		return err == nil && string(v) == "1", fmt.Sprintf("edge-2 after=%q %v", v, err)
	})
}

// TestLostDirectoryAfterFullSyncUp: an edge's earlier writes that reached
// the hub by a FullSync merge are not in the hub's op log, so the new data
// directory of that node can only get them back by a FullSync down. The
// hub's record of the node says it has every state generation (credited to
// the directory it lost): its Hello, naming no hub incarnation, must reset
// that, or with an unpruned log it would get no FullSync and never see
// those writes again (found in review).
func TestLostDirectoryAfterFullSyncUp(t *testing.T) {
	ctx := context.Background()
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub := newReplica(t, "hub", crdt.RoleHub, res)
	e1 := newReplica(t, "edge-1", crdt.RoleEdge, res)

	// edge-1 runs standalone first (no hub): its first sync sends full state.
	e1.startEdge("")
	for i := range 10 {
		check(t, e1.st.Set(ctx, fmt.Sprintf("old:%d", i), []byte("v")))
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		return e1.st.PrunedSeq() == e1.st.LastSeq(), "no-hub prune"
	})
	e1.stopSync()

	b := startEmbedded(t)
	hub.startHub(b.url)
	e1.startEdge(b.url)
	waitConverged(t, 20*time.Second, hub, e1)
	if v := mustGet(t, hub.st, "old:3"); v != "v" {
		t.Fatalf("hub old:3 = %q", v)
	}

	// edge-1's data directory is lost (a container restarted without its
	// volume, a replaced disk): same node id, empty directory, new actor.
	old := e1.st.Actor()
	e1.close()
	e1.dir = t.TempDir()
	e1.open()
	if e1.st.Actor() == old {
		t.Fatal("same actor")
	}
	e1.startEdge(b.url)
	waitFor(t, 20*time.Second, func() (bool, string) {
		v, err := e1.st.Get(ctx, "old:3")
		return err == nil && string(v) == "v", fmt.Sprintf("new edge-1 old:3 = %q %v (hub log %d..%d, edge status %+v)",
			v, err, hub.st.OldestSeq(), hub.st.LastSeq(), e1.edge.Status())
	})
	waitConverged(t, 10*time.Second, hub, e1)
}

// TestConflictsCommandNamesNodes: EDGE.CONFLICTS names each side's node id
// ("winner and loser (node, time, value)", README) and, apart, its actor.
func TestConflictsCommandNamesNodes(t *testing.T) {
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
	out, err := ConflictsCommand(e1.st).Run(ctx, nil)
	check(t, err)
	list := out.([]ConflictReply)
	if len(list) != 1 {
		t.Fatalf("EDGE.CONFLICTS = %+v, want one", list)
	}
	for _, h := range []ConflictHead{list[0].Winner, list[0].Loser} {
		if h.Node != "edge-1" && h.Node != "edge-2" {
			t.Errorf("EDGE.CONFLICTS node = %q, want a node id (edge-1 or edge-2)", h.Node)
		}
		if !strings.HasPrefix(h.Actor, h.Node+"$") {
			t.Errorf("EDGE.CONFLICTS actor = %q for node %q", h.Actor, h.Node)
		}
	}
}

// TestLostDirectoryPrunedLogFullBothWays: the same loss with a pruned hub
// log. The new directory ran standalone first (so it sends a FullSync up)
// and the hub restarted in between; both FullSyncs happen and every
// replica converges with the old and the new writes.
func TestLostDirectoryPrunedLogFullBothWays(t *testing.T) {
	ctx := context.Background()
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	fastPrune := func(o *HubOptions) { o.maintain = 50 * time.Millisecond }
	hub.startHub(b.url, fastPrune)
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	for i := range 10 {
		check(t, e1.st.Set(ctx, fmt.Sprintf("old:%d", i), []byte("v")))
	}
	_, err := e1.st.IncrBy(ctx, "n", 5)
	check(t, err)
	_, err = e1.st.SAdd(ctx, "s", "a")
	check(t, err)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	waitFor(t, 10*time.Second, func() (bool, string) {
		return hub.st.OldestSeq() > hub.st.LastSeq(), fmt.Sprintf("hub log %d..%d", hub.st.OldestSeq(), hub.st.LastSeq())
	})

	e1.close()
	hub.stopSync()
	e1.dir = t.TempDir()
	e1.open()
	e1.startEdge("") // standalone first
	check(t, e1.st.Set(ctx, "new", []byte("x")))
	_, err = e1.st.IncrBy(ctx, "n", 1)
	check(t, err)
	_, err = e1.st.SAdd(ctx, "s", "b")
	check(t, err)
	waitFor(t, 5*time.Second, func() (bool, string) { return e1.st.PrunedSeq() == e1.st.LastSeq(), "no-hub prune" })
	e1.stopSync()
	hub.startHub(b.url, fastPrune)
	e1.startEdge(b.url)
	waitConverged(t, 30*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		for k, want := range map[string]string{"old:3": "v", "new": "x", "n": "6"} {
			if got := mustGet(t, r.st, k); got != want {
				t.Errorf("%s: %s = %q, want %q", r.name, k, got, want)
			}
		}
		m, err := r.st.SMembers(ctx, "s")
		check(t, err)
		if len(m) != 2 {
			t.Errorf("%s: s = %q", r.name, m)
		}
	}
}

// TestNodeIDRefusesActorSeparator: a node id with '$' could name another
// node's data directory ("edge-1$abcdefgh") and write as it: the hub
// serves no such node, and no option accepts one.
func TestNodeIDRefusesActorSeparator(t *testing.T) {
	for _, id := range []string{"edge-1$abcdefgh", "$x", "a$"} {
		if err := validNodeID(id); err == nil || !strings.Contains(err.Error(), "$") {
			t.Errorf("validNodeID(%q) = %v", id, err)
		}
	}
	if err := validNodeID("edge-1"); err != nil {
		t.Fatal(err)
	}
}

// TestRestoredBackupNewActor: edge-1's data directory is restored from a
// backup taken before it wrote k=2 and later=x, which reached the hub. The
// restored directory would number its next writes with the dots of those;
// opened with NewActor (ferrite --new-actor) it writes under a new actor:
// its writes reach everyone, the original's later writes come back to it,
// and its ops from before the backup, under the retired actor, are still
// sent (the hub accepts any actor of the node).
func TestRestoredBackupNewActor(t *testing.T) {
	b, hub, e1, e2 := startLWWFleet(t)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "k", []byte("1")))
	waitConverged(t, 20*time.Second, hub, e1, e2)

	// The backup, taken with a write not yet sent.
	e1.close()
	e1.open()
	check(t, e1.st.Set(ctx, "pending", []byte("p")))
	old := e1.st.Actor()
	backup := takeBackup(t, e1)

	// The original goes on, syncs, then its disk dies.
	e1.open()
	e1.startEdge(b.url)
	check(t, e1.st.Set(ctx, "k", []byte("2")))
	check(t, e1.st.Set(ctx, "later", []byte("x")))
	waitConverged(t, 20*time.Second, hub, e1, e2)
	e1.close()

	// Restored, offline first: it writes before it reaches the hub.
	openRestored(t, e1, backup, crdt.Dot{Node: old, Counter: 2})
	check(t, e1.st.Set(ctx, "k", []byte("3")))
	check(t, e1.st.Set(ctx, "restored", []byte("y")))
	e1.startEdge(b.url)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		for k, want := range map[string]string{"k": "3", "later": "x", "restored": "y", "pending": "p"} {
			if got := mustGet(t, r.st, k); got != want {
				t.Errorf("%s: %s = %q, want %q", r.name, k, got, want)
			}
		}
	}
}

// restoreWithLaterWrites runs the backup/restore scenario of
// TestRestoredBackupNewActor: edge-1 is backed up, its original then
// writes n keys under its actor (they reach the hub), its disk dies, and
// the backup is opened with NewActor (not started). It returns the
// retired actor.
func restoreWithLaterWrites(t *testing.T, b *broker, hub, e1, e2 *replica, n int) string {
	t.Helper()
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "k", []byte("1")))
	waitConverged(t, 20*time.Second, hub, e1, e2)
	old := e1.st.Actor()
	backup := takeBackup(t, e1)

	e1.open()
	e1.startEdge(b.url)
	for i := range n {
		check(t, e1.st.Set(ctx, fmt.Sprintf("later/%03d", i), []byte("x")))
	}
	waitConverged(t, 20*time.Second, hub, e1, e2)
	e1.close()

	openRestored(t, e1, backup, crdt.Dot{Node: old, Counter: 1})
	return old
}

// startLWWFleet starts an embedded broker, a hub and two edges under
// last-writer-wins, all syncing.
func startLWWFleet(t *testing.T) (b *broker, hub, e1, e2 *replica) {
	t.Helper()
	b = startEmbedded(t)
	hub, e1, e2 = hubAndEdges(t, crdt.Resolver{Default: crdt.LastWriteWins})
	hub.startHub(b.url)
	e2.startEdge(b.url)
	e1.startEdge(b.url)
	return b, hub, e1, e2
}

// takeBackup stops r (syncer and store) and copies its data directory, as
// "stop and copy" does; it returns the copy.
func takeBackup(t *testing.T, r *replica) string {
	t.Helper()
	r.close()
	backup := t.TempDir()
	check(t, os.CopyFS(backup, os.DirFS(r.dir)))
	return backup
}

// openRestored opens the backup as r's data directory with NewActor, and
// checks that it writes under a new actor and still owns lastOwn, its last
// write under the retired one.
func openRestored(t *testing.T, r *replica, backup string, lastOwn crdt.Dot) {
	t.Helper()
	r.dir = backup
	r.opts = func(o *store.Options) { o.NewActor = true }
	r.open()
	r.opts = nil
	if r.st.Actor() == lastOwn.Node || !r.st.OwnDot(lastOwn) {
		t.Fatalf("restored as %q (was %q)", r.st.Actor(), lastOwn.Node)
	}
}

// TestRelayedRetiredOpsAreNotOwn: the hub sends the restored edge what its
// original wrote after the backup, under the retired actor; the edge's op
// log keeps them (for relaying), but they are not its own writes: they
// must not fill its offline queue (capacity 10 here, 25 such ops) nor be
// sent back up. Only the counter the actor was retired at tells them apart
// (found in review: they overflowed the queue and forced a full sync up).
func TestRelayedRetiredOpsAreNotOwn(t *testing.T) {
	b, hub, e1, e2 := startLWWFleet(t)
	const n = 25
	restoreWithLaterWrites(t, b, hub, e1, e2, n)
	ctx := context.Background()

	// Periodic rounds far apart: the down stream runs, nothing is pushed
	// up before the next round (the default opportunistic policy behaves
	// the same between its rounds).
	e1.startEdge(b.url, func(o *EdgeOptions) {
		o.Policy = PolicyPeriodic
		o.Interval = time.Hour
		o.QueueCapacity = 10
	})
	waitFor(t, 20*time.Second, func() (bool, string) {
		v, err := e1.st.Get(ctx, fmt.Sprintf("later/%03d", n-1))
		return err == nil && string(v) == "x", fmt.Sprintf("later/%03d not back yet: %v", n-1, err)
	})
	// One write of its own, after the relayed ops in its log: once it is
	// counted, the queue scan has passed them.
	check(t, e1.st.Set(ctx, "mine", []byte("1")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		st := e1.edge.Status()
		return st.PendingOps >= 1 || st.Dropped > 0, fmt.Sprintf("status %+v", st)
	})
	if st := e1.edge.Status(); st.PendingOps != 1 || st.Dropped != 0 || st.NeedFullSync {
		t.Errorf("one write of its own, but: pending_ops=%d dropped=%d need_full_sync=%v",
			st.PendingOps, st.Dropped, st.NeedFullSync)
	}
}

// TestRelayedRetiredOpsNotEchoed: with the immediate policy, the restored
// edge sends up its own write only, not the original's later writes the
// hub relayed to it.
func TestRelayedRetiredOpsNotEchoed(t *testing.T) {
	b, hub, e1, e2 := startLWWFleet(t)
	const n = 25
	restoreWithLaterWrites(t, b, hub, e1, e2, n)

	reg := prometheus.NewRegistry()
	e1.startEdge(b.url, func(o *EdgeOptions) { o.Registerer = reg })
	waitConverged(t, 20*time.Second, hub, e1, e2)
	// Ops go up in log order: once this later write is acknowledged,
	// anything before it that was going to be sent has been.
	check(t, e1.st.Set(context.Background(), "mine", []byte("1")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		st := e1.edge.Status()
		return st.PendingOps == 0 && mustGet(t, hub.st, "k") != "" && hasKey(hub, "mine"), fmt.Sprintf("status %+v", st)
	})
	if sent := counterValue(t, reg, "ferrite_sync_ops_sent_total"); sent != 1 {
		t.Errorf("sent %v ops up, want 1 (its own write; not the original's %d later writes the hub relayed)", sent, n)
	}
}

func hasKey(r *replica, key string) bool {
	_, err := r.st.Get(context.Background(), key)
	return err == nil
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	check(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
