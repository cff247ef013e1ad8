package syncer

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// BenchmarkHubEdgeCounters: what the hub reads of an edge's dots in its
// context, at every Hello (info) and after every applied batch (the ack's
// counter), on a hub whose context names `actors` edges.
func BenchmarkHubEdgeCounters(b *testing.B) {
	op := benchOps(b, "set", 1)[0]
	for _, actors := range []int{10, 1000, 10_000} {
		b.Run(fmt.Sprintf("actors=%d", actors), func(b *testing.B) {
			st := openStore(b, b.TempDir(), "hub", crdt.RoleHub, crdt.Resolver{Default: crdt.CrdtMerge}, nil)
			b.Cleanup(func() { _ = st.Close() })
			ops := make([]store.Op, actors)
			for i := range ops {
				ops[i] = op
				ops[i].Dot = crdt.Dot{Node: fmt.Sprintf("edge-%05d$abcdefgh", i), Counter: 1}
				ops[i].Stamp.Node = ops[i].Dot.Node
			}
			if _, err := st.ApplyRemote(context.Background(), ops); err != nil {
				b.Fatal(err)
			}
			h, err := NewHub(HubOptions{Store: st, BrokerURL: "mqtt://127.0.0.1:1"})
			if err != nil {
				b.Fatal(err)
			}
			actor := ops[actors/2].Dot.Node
			b.ReportAllocs()
			for b.Loop() {
				if i := h.info(actor, true); i.EdgeHas != 1 || i.EdgeMax != 1 {
					b.Fatalf("info %+v", i)
				}
				if n := h.edgeHas(actor); n != 1 {
					b.Fatalf("edgeHas %d", n)
				}
			}
		})
	}
}

// BenchmarkHubRegisterKnown: a session of a known edge starts (every
// reconnection), on a hub that knows `edges` edges.
func BenchmarkHubRegisterKnown(b *testing.B) {
	st := openStore(b, b.TempDir(), "hub", crdt.RoleHub, crdt.Resolver{Default: crdt.CrdtMerge}, nil)
	b.Cleanup(func() { _ = st.Close() })
	for _, edges := range []int{10, 1000, 10_000} {
		b.Run(fmt.Sprintf("edges=%d", edges), func(b *testing.B) {
			h, err := NewHub(HubOptions{Store: st, BrokerURL: "mqtt://127.0.0.1:1"})
			if err != nil {
				b.Fatal(err)
			}
			for i := range edges {
				h.records[fmt.Sprintf("edge-%05d", i)] = edgeRecord{}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := h.register(ctx, "edge-00000"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
