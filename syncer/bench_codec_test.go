package syncer

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// benchOps writes n ops of a kind to a real store and reads them back from
// its op log, as the edge sends them.
func benchOps(b testing.TB, kind string, n int) []store.Op {
	b.Helper()
	st := openStore(b, b.TempDir(), "edge-0001", crdt.RoleEdge, crdt.Resolver{Default: crdt.CrdtMerge}, nil)
	defer st.Close()
	ctx := context.Background()
	for i := range n {
		var err error
		switch kind {
		case "set":
			err = st.Set(ctx, fmt.Sprintf("sensor:temp:%03d", i%50), []byte(fmt.Sprintf("%d.%d", 20+i%10, i%10)))
		case "incr":
			_, err = st.IncrBy(ctx, fmt.Sprintf("store:42:visits:%d", i%20), 1)
		case "aggregate":
			err = st.AggregateMerge(ctx, fmt.Sprintf("agg/edge-0001/temp-%03d/1m/%d", i%10, 1708300800+60*(i/10)),
				crdt.Partial{Count: 60, Sum: 1350.5, Min: 21.5, Max: 23.25, FirstTS: 1708300800000, LastTS: 1708300859000})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := st.SyncWAL(ctx); err != nil {
		b.Fatal(err)
	}
	ops, _, err := st.OpsSince(ctx, store.OpsQuery{Limit: n, MaxBytes: 64 << 20})
	if err != nil || len(ops) != n {
		b.Fatalf("read %d ops: %v", len(ops), err)
	}
	return ops
}

// BenchmarkEncodeDeltaSync: encoding a batch; wire-B/op is the encoded
// message size (LZ4 from 512 bytes) divided by the ops it carries.
func BenchmarkEncodeDeltaSync(b *testing.B) {
	for _, kind := range []string{"set", "incr", "aggregate"} {
		for _, n := range []int{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/ops=%d", kind, n), func(b *testing.B) {
				ops := benchOps(b, kind, n)
				msg := &DeltaSync{Session: 1, After: 0, Upto: uint64(n), Ops: ops}
				var e Encoder
				size := len(e.Encode(msg))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					size = len(e.Encode(msg))
				}
				b.ReportMetric(float64(size)/float64(n), "wire-B/op")
				b.ReportMetric(float64(len(Encode(msg)))/float64(n), "raw-B/op")
			})
		}
	}
}

// BenchmarkDecodeDeltaSync: decoding a compressed batch of 100 ops.
func BenchmarkDecodeDeltaSync(b *testing.B) {
	for _, kind := range []string{"set", "aggregate"} {
		b.Run(kind, func(b *testing.B) {
			ops := benchOps(b, kind, 100)
			var e Encoder
			raw := append([]byte(nil), e.Encode(&DeltaSync{Session: 1, Upto: 100, Ops: ops})...)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeRelay: a hub's relay batch of 1000 ops written by many
// edges (actors), each edge's ops in one run as its batches land in the
// hub's log.
func BenchmarkEncodeRelay(b *testing.B) {
	base := benchOps(b, "set", 1000)
	for _, actors := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("actors=%d", actors), func(b *testing.B) {
			ops := append([]store.Op(nil), base...)
			for i := range ops {
				a := fmt.Sprintf("edge-%04d$abcdefgh", i*actors/len(ops))
				ops[i].Dot.Node, ops[i].Stamp.Node = a, a
			}
			msg := &DeltaSync{Session: 1, Upto: uint64(len(ops)), Ops: ops}
			var e Encoder
			b.ReportAllocs()
			for b.Loop() {
				e.Encode(msg)
			}
		})
	}
}
