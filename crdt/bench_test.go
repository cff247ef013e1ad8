package crdt

import (
	"fmt"
	"testing"
	"time"
)

// Benchmarks per kind: mutator (delta construction), ApplyDelta (the join
// the store runs per write), MergeState (full-state join), and Entry/Delta
// encode and decode, reporting encoded sizes. Entries are built by a real
// replica history: the key written by two nodes, sized as noted.

type benchCase struct {
	name  string
	build func(t testing.TB, a, b *replica) // fills key "k" on a (b's ops delivered)
	next  func(e *Entry, m Mut) (*Delta, error)
}

func benchCases() []benchCase {
	return []benchCase{
		{"register", func(t testing.TB, a, b *replica) {
			a.mustDo(t, "k", set("23.5"))
		}, set("23.6")},
		{"counter", func(t testing.TB, a, b *replica) {
			a.mustDo(t, "k", incr(5))
			a.receive(t, b.mustDo(t, "k", incr(3)))
		}, incr(1)},
		{"set100", func(t testing.TB, a, b *replica) {
			for i := range 100 {
				a.mustDo(t, "k", sadd(fmt.Sprintf("member-%03d", i)))
			}
		}, sadd("member-new")},
		{"set100-readd", func(t testing.TB, a, b *replica) {
			for i := range 100 {
				a.mustDo(t, "k", sadd(fmt.Sprintf("member-%03d", i)))
			}
		}, sadd("member-050")},
		{"list100", func(t testing.TB, a, b *replica) {
			for i := range 100 {
				a.mustDo(t, "k", rpush(fmt.Sprintf(`{"temp":%d.5,"ts":1708300000}`, i)))
			}
		}, lpush(`{"temp":23.5,"ts":1708300000}`)},
		{"hash20", func(t testing.TB, a, b *replica) {
			for i := range 20 {
				a.mustDo(t, "k", hincr(fmt.Sprintf("2025-02-%02d", i+1), 4999))
			}
		}, hincr("2025-02-01", 1)},
		{"aggregate", func(t testing.TB, a, b *replica) {
			a.mustDo(t, "k", aggAdd(Partial{Count: 60, Sum: 1380, Min: 21, Max: 25, FirstTS: 1, LastTS: 59_000}))
			a.receive(t, b.mustDo(t, "k", aggAdd(Partial{Count: 60, Sum: 1200, Min: 19, Max: 21, FirstTS: 5, LastTS: 59_500})))
		}, aggAdd(Partial{Count: 61, Sum: 1400, Min: 21, Max: 25, FirstTS: 1, LastTS: 59_900})},
	}
}

// benchSetup returns replica a holding key "k" and the delta of one more
// operation on it.
func benchSetup(b *testing.B, c benchCase) (*replica, *Delta, Mut) {
	res := Resolver{Default: CrdtMerge}
	ra := newReplica("edge-001", RoleEdge, res)
	rb := newReplica("edge-002", RoleEdge, res)
	ra.clock.ms, rb.clock.ms = 1_708_300_000_000, 1_708_300_000_000
	ra.hlc, rb.hlc = NewHLC(ra.clock.now, time.Minute), NewHLC(rb.clock.now, time.Minute)
	c.build(b, ra, rb)
	m := Mut{Dot: Dot{"edge-001", ra.counter + 1}, Stamp: Stamp{TS: ra.hlc.Now(), Node: "edge-001"}, Strategy: CrdtMerge, Now: ra.clock.ms}
	d, err := c.next(ra.entries["k"], m)
	if err != nil || d == nil {
		b.Fatalf("%s: %v", c.name, err)
	}
	return ra, d, m
}

func BenchmarkMutator(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			r, _, m := benchSetup(b, c)
			e := r.entries["k"]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.next(e, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkApplyDelta(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			r, d, _ := benchSetup(b, c)
			e := r.entries["k"]
			b.ReportAllocs()
			for b.Loop() {
				e.ApplyDelta(d, r.ctx, CrdtMerge) // idempotent: same work every time
			}
		})
	}
}

func BenchmarkMergeState(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			r, _, _ := benchSetup(b, c)
			e := r.entries["k"]
			remote := e.Clone()
			b.ReportAllocs()
			for b.Loop() {
				e.MergeState(remote, r.ctx, r.ctx, CrdtMerge)
			}
		})
	}
}

func BenchmarkEntryEncode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			r, _, _ := benchSetup(b, c)
			e := r.entries["k"]
			buf := e.AppendBinary(nil)
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendBinary(buf[:0])
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}

func BenchmarkEntryDecode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			r, _, _ := benchSetup(b, c)
			enc := r.entries["k"].AppendBinary(nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeEntry(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes")
		})
	}
}

func BenchmarkDeltaEncode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			_, d, _ := benchSetup(b, c)
			buf := d.AppendBinary(nil)
			b.ReportAllocs()
			for b.Loop() {
				buf = d.AppendBinary(buf[:0])
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}

func BenchmarkDeltaDecode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			_, d, _ := benchSetup(b, c)
			enc := d.AppendBinary(nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeDelta(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes")
		})
	}
}

// BenchmarkBlockMerge measures the join of each building block on its own
// (a replica's block merged with a peer's that has one more update).
func BenchmarkBlockMerge(b *testing.B) {
	st := Stamp{TS: NewTimestamp(1_708_300_000_000, 0), Node: "a"}
	// Blocks are built by merging deltas as unions; ctx then holds every dot.
	ctx := NewContext()
	dot := func(n uint64) Dot { ctx.Add(Dot{"a", n}); return Dot{"a", n} }
	var reg LWWRegister
	rd, _ := reg.Write(dot(1), st, KindString, []byte("23.5"))
	reg.Merge(&rd, noDots{}, noDots{})
	var ctr PNCounter
	for _, o := range []string{"a", "b", "c"} {
		d, _ := ctr.Add(o, 5)
		ctr.Merge(&d)
	}
	var set ORSet
	var list List
	var hash ORMap
	for i := range 100 {
		sd, _ := set.Add(dot(uint64(10+i)), fmt.Sprintf("member-%03d", i))
		set.Merge(&sd, noDots{}, noDots{})
		ld, _ := list.Push(dot(uint64(200+i)), st, SideTail, []byte(fmt.Sprintf(`{"temp":%d.5}`, i)))
		list.Merge(&ld, noDots{}, noDots{})
	}
	for i := range 20 {
		hd, _, _ := hash.IncrBy(dot(uint64(400+i)), st, CrdtMerge, fmt.Sprintf("2025-02-%02d", i+1), 4999)
		hash.Merge(&hd, noDots{}, noDots{})
	}
	var agg Aggregate
	for _, o := range []string{"a", "b", "c"} {
		d, _ := agg.Add(o, Partial{Count: 60, Sum: 1380, Min: 21, Max: 25, FirstTS: 1, LastTS: 59_000})
		agg.Merge(&d)
	}
	run := func(name string, merge func(), enc func() []byte) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				merge()
			}
			b.ReportMetric(float64(len(enc())), "bytes")
		})
	}
	r2 := reg.Clone()
	run("LWWRegister", func() { reg.Merge(&r2, ctx, ctx) }, func() []byte { return reg.AppendBinary(nil) })
	c2 := ctr.Clone()
	run("PNCounter", func() { ctr.Merge(&c2) }, func() []byte { return ctr.AppendBinary(nil) })
	s2 := set.Clone()
	run("ORSet100", func() { set.Merge(&s2, ctx, ctx) }, func() []byte { return set.AppendBinary(nil) })
	l2 := list.Clone()
	run("List100", func() { list.Merge(&l2, ctx, ctx) }, func() []byte { return list.AppendBinary(nil) })
	h2 := hash.Clone()
	run("ORMap20", func() { hash.Merge(&h2, ctx, ctx) }, func() []byte { return hash.AppendBinary(nil) })
	a2 := agg.Clone()
	run("Aggregate3", func() { agg.Merge(&a2) }, func() []byte { return agg.AppendBinary(nil) })
}

func BenchmarkHLCNow(b *testing.B) {
	clk := &fakeClock{ms: 1_708_300_000_000}
	h := NewHLC(clk.now, time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		h.Now()
	}
}

func BenchmarkViewBytes(b *testing.B) {
	r, _, _ := benchSetup(b, benchCases()[0])
	e := r.entries["k"]
	b.ReportAllocs()
	for b.Loop() {
		if e.Kind(r.clock.ms) != KindString {
			b.Fatal("kind")
		}
		if _, err := e.Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}
