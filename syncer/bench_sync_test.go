package syncer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// End-to-end measurements over loopback: the gateway's broker, a hub and edges
// on real stores (fsync on). Run with -benchtime=Nx; each iteration is a
// whole scenario.

func pollUntil(b *testing.B, timeout time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkCatchUp10k: an edge comes online with 10,000 queued ops; time
// until the hub has durably applied and acknowledged all of them.
func BenchmarkCatchUp10k(b *testing.B) {
	const n = 10_000
	br := startEmbedded(b)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub := newReplica(b, "hub", crdt.RoleHub, res)
	hub.startHub(br.url)
	ctx := context.Background()
	var wire uint64
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		e := &replica{t: b, name: fmt.Sprintf("edge-%d", i), role: crdt.RoleEdge, dir: b.TempDir(), res: res, dur: store.DurabilityNone}
		e.open()
		for j := range n {
			if err := e.st.Set(ctx, fmt.Sprintf("sensor:%d:%d", j%100, j), []byte(fmt.Sprintf("%d.5", j%40))); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.st.SyncWAL(ctx); err != nil {
			b.Fatal(err)
		}
		last := e.st.LastSeq()
		b.StartTimer()
		e.startEdge(br.url)
		pollUntil(b, time.Minute, func() bool { s := e.edge.Status(); return s.UpAcked >= last && s.PendingOps == 0 })
		b.StopTimer()
		wire += e.edge.LinkStats().BytesSent
		e.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(wire)/float64(i*n), "uplink-B/op")
}

// BenchmarkPartitionHeal: two edges write 200 ops each (same and different
// keys) while edge-1 is cut off; time from the link coming back until all
// three replicas hold the same state.
func BenchmarkPartitionHeal(b *testing.B) {
	br := startEmbedded(b)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub := newReplica(b, "hub", crdt.RoleHub, res)
	e1 := newReplica(b, "edge-1", crdt.RoleEdge, res)
	e2 := newReplica(b, "edge-2", crdt.RoleEdge, res)
	hub.startHub(br.url)
	e1.startEdge(br.url)
	e2.startEdge(br.url)
	ctx := context.Background()
	same := func() bool {
		d := digest(b, hub.st)
		return digest(b, e1.st) == d && digest(b, e2.st) == d
	}
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		e1.stopSync()
		for j := range 200 {
			for _, e := range []*replica{e1, e2} {
				if _, err := e.st.IncrBy(ctx, fmt.Sprintf("ctr:%d", j%10), 1); err != nil {
					b.Fatal(err)
				}
				if err := e.st.Set(ctx, fmt.Sprintf("%s:%d:%d", e.name, round, j), []byte("v")); err != nil {
					b.Fatal(err)
				}
			}
		}
		pollUntil(b, time.Minute, func() bool { return e2.edge.Status().PendingOps == 0 })
		b.StartTimer()
		e1.startEdge(br.url)
		pollUntil(b, time.Minute, same)
	}
}

// BenchmarkSensorUplink: ten 1 Hz sensors aggregated into 60 s buckets
// (one aggregate op per sensor per closed bucket, as ingest writes them)
// over one simulated hour, pushed every `every` minutes; the edge's uplink
// MQTT bytes per raw reading against forwarding each reading as a QoS 0
// PUBLISH (a mosquitto bridge) of a plain number (the cheapest case) or
// of a small JSON object.
func BenchmarkSensorUplink(b *testing.B) {
	for _, every := range []int{1, 5} {
		b.Run(fmt.Sprintf("sync-every-%dm", every), func(b *testing.B) {
			const sensors, minutes = 10, 60
			br := startEmbedded(b)
			res := crdt.Resolver{Default: crdt.CrdtMerge}
			hub := newReplica(b, "hub", crdt.RoleHub, res)
			hub.startHub(br.url)
			ctx := context.Background()
			var up, bridge, bridgeJSON, readings float64
			i := 0
			for b.Loop() {
				i++
				e := newReplica(b, fmt.Sprintf("gw-%d", i), crdt.RoleEdge, res)
				e.startEdge(br.url, func(o *EdgeOptions) { o.Policy = PolicyManual })
				if err := e.edge.SyncNow(ctx); err != nil { // session up; count from here
					b.Fatal(err)
				}
				start := e.edge.LinkStats().BytesSent
				t0 := int64(1708300800)
				for m := range minutes {
					for s := range sensors {
						p := crdt.Partial{Count: 60, Sum: 60 * 22.4, Min: 21.9, Max: 22.8,
							FirstTS: (t0 + int64(60*m)) * 1000, LastTS: (t0+int64(60*m))*1000 + 59_000}
						key := fmt.Sprintf("agg/%s/temp-%03d/1m/%d", e.name, s, t0+int64(60*m)) // ingest.BucketKey
						if err := e.st.AggregateMerge(ctx, key, p); err != nil {
							b.Fatal(err)
						}
						for r := range 60 {
							// What a bridge forwards at QoS 0 (no packet id):
							// sensors/temp-NNN "22.4", or the JSON form.
							topic := fmt.Sprintf("sensors/temp-%03d", s)
							v := 21.9 + float64(r%10)/10
							bridge += float64(publishSize(topic, len(fmt.Sprintf("%.1f", v))) - 2)
							bridgeJSON += float64(publishSize(topic, len(fmt.Sprintf(`{"value":%.1f,"unit":"celsius","ts":%d}`, v, (t0+int64(60*m+r))*1000))) - 2)
						}
						readings += 60
					}
					if (m+1)%every == 0 {
						if err := e.edge.SyncNow(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				up += float64(e.edge.LinkStats().BytesSent - start)
				e.close()
			}
			b.ReportMetric(up/readings, "uplink-B/reading")
			b.ReportMetric(bridge/readings, "bridge-B/reading")
			b.ReportMetric(bridge/up, "x-less")
			b.ReportMetric(bridgeJSON/readings, "bridge-json-B/reading")
			b.ReportMetric(bridgeJSON/up, "x-less-json")
		})
	}
}
