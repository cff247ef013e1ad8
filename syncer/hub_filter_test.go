package syncer

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
)

// TestDownFilter: until the edge acknowledged the hub's log as it was at
// Hello, the filter holds its whole context; then only its own node's
// dots (every actor of the node, gaps included).
func TestDownFilter(t *testing.T) {
	c := crdt.NewContext()
	for _, d := range []crdt.Dot{
		{Node: "e$aaaaaaaa", Counter: 1}, {Node: "e$aaaaaaaa", Counter: 2}, {Node: "e$aaaaaaaa", Counter: 5},
		{Node: "e", Counter: 1}, {Node: "other$bbbbbbbb", Counter: 1}, {Node: "ee$cccccccc", Counter: 1},
	} {
		c.Add(d)
	}
	var f downFilter
	f.reset(c, 100)
	check := func(when string, want map[crdt.Dot]bool) {
		t.Helper()
		for d, w := range want {
			if got := f.contains(d); got != w {
				t.Errorf("%s: contains(%v) = %v, want %v", when, d, got, w)
			}
		}
	}
	all := map[crdt.Dot]bool{
		{Node: "e$aaaaaaaa", Counter: 2}: true, {Node: "e$aaaaaaaa", Counter: 5}: true,
		{Node: "e$aaaaaaaa", Counter: 3}: false, {Node: "e", Counter: 1}: true,
		{Node: "other$bbbbbbbb", Counter: 1}: true, {Node: "ee$cccccccc", Counter: 1}: true,
	}
	check("at Hello", all)
	f.acked(99, "e")
	check("acked before the Hello's last seq", all)
	f.acked(100, "e")
	all[crdt.Dot{Node: "other$bbbbbbbb", Counter: 1}] = false
	all[crdt.Dot{Node: "ee$cccccccc", Counter: 1}] = false
	check("caught up", all)

	f.reset(nil, 0)
	f.acked(0, "e")
	check("no context", map[crdt.Dot]bool{{Node: "e", Counter: 1}: false})
}

// BenchmarkHubSessionFilter: the memory a session's down filter retains,
// at Hello and once the edge caught up, when its context names `actors`
// edges (3 dots each).
func BenchmarkHubSessionFilter(b *testing.B) {
	for _, actors := range []int{100, 1000, 10_000} {
		c := crdt.NewContext()
		for i := range actors {
			for k := range 3 {
				c.Add(crdt.Dot{Node: fmt.Sprintf("edge-%05d$abcdefgh", i), Counter: uint64(k + 1)})
			}
		}
		raw := Encode(&Hello{Session: 1, Node: "edge-00001", Actor: "edge-00001$abcdefgh", Context: c})
		for _, caughtUp := range []bool{false, true} {
			b.Run(fmt.Sprintf("actors=%d/caught-up=%v", actors, caughtUp), func(b *testing.B) {
				const sessions = 20
				var before, after runtime.MemStats
				for b.Loop() {
					b.StopTimer()
					fs := make([]downFilter, sessions)
					runtime.GC()
					runtime.ReadMemStats(&before)
					b.StartTimer()
					for i := range fs {
						m, err := Decode(raw)
						if err != nil {
							b.Fatal(err)
						}
						fs[i].reset(m.(*Hello).Context, 10)
						if caughtUp {
							fs[i].acked(10, "edge-00001")
						}
					}
					b.StopTimer()
					runtime.GC()
					runtime.ReadMemStats(&after)
					runtime.KeepAlive(fs)
					b.StartTimer()
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/sessions, "retained-B/session")
			})
		}
	}
}
