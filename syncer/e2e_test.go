package syncer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/prometheus/client_golang/prometheus"
)

// hubAndEdges starts a hub replica and two edge replicas on b.
func hubAndEdges(t *testing.T, res crdt.Resolver) (hub, e1, e2 *replica) {
	hub = newReplica(t, "hub", crdt.RoleHub, res)
	e1 = newReplica(t, "edge-1", crdt.RoleEdge, res)
	e2 = newReplica(t, "edge-2", crdt.RoleEdge, res)
	return
}

// writeOffline makes both edges write the same and different keys.
func writeOffline(t *testing.T, e1, e2 *replica, round int) {
	ctx := context.Background()
	for _, e := range []*replica{e1, e2} {
		check(t, e.st.Set(ctx, fmt.Sprintf("shared:%d", round), []byte(e.name)))
		check(t, e.st.Set(ctx, fmt.Sprintf("own:%s:%d", e.name, round), []byte("v")))
		_, err := e.st.IncrBy(ctx, "counter", 5)
		check(t, err)
		_, err = e.st.SAdd(ctx, "members", e.name+fmt.Sprint(round))
		check(t, err)
	}
}

func testConvergence(t *testing.T, b *broker) {
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	// The hub is down: the edges work offline.
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	writeOffline(t, e1, e2, 1)
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := e1.edge.Status()
		return s.PendingOps == 4 && s.SyncStatus == "offline", fmt.Sprintf("edge-1 status %+v", s)
	})

	hub.startHub(b.url)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		if v := mustGet(t, r.st, "counter"); v != "10" {
			t.Fatalf("%s: counter = %s, want 10", r.name, v)
		}
		if n := r.st.ConflictCount(); n != 1 {
			t.Fatalf("%s: %d conflicts recorded, want 1 (shared:1)", r.name, n)
		}
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		s1, s2 := e1.edge.Status(), e2.edge.Status()
		return s1.PendingOps == 0 && s2.PendingOps == 0 && s1.SyncStatus == "idle" && s2.SyncStatus == "idle",
			fmt.Sprintf("edge statuses %+v / %+v", s1, s2)
	})

	// The hub goes down again, the edges write, the hub restarts from its
	// data directory.
	hub.close()
	writeOffline(t, e1, e2, 2)
	hub.open()
	hub.startHub(b.url)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		if v := mustGet(t, r.st, "counter"); v != "20" {
			t.Fatalf("%s: counter = %s, want 20", r.name, v)
		}
		if n := r.st.ConflictCount(); n != 2 {
			t.Fatalf("%s: %d conflicts recorded, want 2", r.name, n)
		}
		members, err := r.st.SMembers(context.Background(), "members")
		check(t, err)
		if len(members) != 4 {
			t.Fatalf("%s: members %v, want 4", r.name, members)
		}
	}
	// SyncNow with nothing pending returns at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	check(t, e1.edge.SyncNow(ctx))
	hs := hub.hub.Status()
	if len(hs.Edges) != 2 {
		t.Fatalf("hub knows %d edges, want 2: %+v", len(hs.Edges), hs)
	}
}

// TestConvergeEmbedded: hub and two edges over the in-process broker;
// both edges write the same and different keys while the hub is down; the
// hub starts, later restarts; all three converge byte for byte, counters
// exact, each conflict recorded once per replica.
func TestConvergeEmbedded(t *testing.T) {
	testConvergence(t, startEmbedded(t))
}

// TestConvergeMosquitto: the same with mosquitto as the hub's (external)
// broker.
func TestConvergeMosquitto(t *testing.T) {
	testConvergence(t, startMosquitto(t))
}

// TestSyncRTTHistogram: an acknowledged batch feeds ferrite_sync_rtt_seconds
// on the edge and on the hub.
func TestSyncRTTHistogram(t *testing.T) {
	br := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hubReg, edgeReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	hub := newReplica(t, "hub", crdt.RoleHub, res)
	hub.startHub(br.url, func(o *HubOptions) { o.Registerer = hubReg })
	e := newReplica(t, "edge-1", crdt.RoleEdge, res)
	e.startEdge(br.url, func(o *EdgeOptions) { o.Registerer = edgeReg })
	ctx := context.Background()
	check(t, e.st.Set(ctx, "k", []byte("v")))
	check(t, e.edge.SyncNow(ctx))
	rttCount := func(reg *prometheus.Registry) uint64 {
		mfs, err := reg.Gather()
		check(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "ferrite_sync_rtt_seconds" {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}
	if n := rttCount(edgeReg); n == 0 {
		t.Error("edge: no RTT observed after an acknowledged sync")
	}
	// The hub measures the RTT of what it sends down: another edge's write.
	e2 := newReplica(t, "edge-2", crdt.RoleEdge, res)
	e2.startEdge(br.url)
	check(t, e2.st.Set(ctx, "k2", []byte("v")))
	check(t, e2.edge.SyncNow(ctx))
	waitFor(t, 10*time.Second, func() (bool, string) { return rttCount(hubReg) > 0, "hub RTT observed" })
}
