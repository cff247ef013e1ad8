package crdt

import (
	"fmt"
	"strings"
	"testing"
)

// Converting strings into counters concurrently counts one start value,
// even when the converters converted different writes (found in review).
func TestConvertConcurrentIdenticalStrings(t *testing.T) {
	m := Resolver{Default: CrdtMerge}
	x, y := newReplica("x", RoleEdge, m), newReplica("y", RoleEdge, m)
	a, b := newReplica("a", RoleEdge, m), newReplica("b", RoleEdge, m)
	for _, tc := range []struct {
		name   string
		write  func(string) func(*Entry, Mut) (*Delta, error)
		bump   func(int64) func(*Entry, Mut) (*Delta, error)
		read   func(e *Entry) string
		key    string
		expect string
	}{
		{"string", set, incr, func(e *Entry) string { v, err := e.Int(); return fmt.Sprint(v, err) }, "k", "108 <nil>"},
		{"field", func(v string) func(*Entry, Mut) (*Delta, error) { return hset("f", v) },
			func(n int64) func(*Entry, Mut) (*Delta, error) { return hincr("f", n) },
			func(e *Entry) string { v, _, err := e.HGet("f"); return fmt.Sprint(string(v), " ", err) }, "h", "108 <nil>"},
	} {
		ox := x.mustDo(t, tc.key, tc.write("100"))
		oy := y.mustDo(t, tc.key, tc.write("100"))
		a.receive(t, ox)
		a.receive(t, oy)
		b.receive(t, ox)
		oa := a.mustDo(t, tc.key, tc.bump(5)) // converts y's write (the winner)
		ob := b.mustDo(t, tc.key, tc.bump(3)) // converts x's write
		for _, r := range []*replica{a, b, x, y} {
			for _, o := range []*op{ox, oy, oa, ob} {
				r.receive(t, o)
			}
			if got := tc.read(r.entries[tc.key]); got != tc.expect {
				t.Errorf("%s on %s: %s, want %s", tc.name, r.name, got, tc.expect)
			}
		}
	}
}

// HINCRBY converting a field of a whole-value hash (written under LWW, the
// key then moved to CrdtMerge) on two replicas counts the field once.
func TestConvertWholeValueHashField(t *testing.T) {
	lww := Resolver{Default: LastWriteWins}
	h, a, b := newReplica("h", RoleHub, lww), newReplica("a", RoleEdge, lww), newReplica("b", RoleEdge, lww)
	o0 := h.mustDo(t, "k", hset("f", "100"))
	a.receive(t, o0)
	b.receive(t, o0)
	for _, r := range []*replica{h, a, b} {
		r.resolver = Resolver{Default: CrdtMerge}
	}
	oa := a.mustDo(t, "k", hincr("f", 5))
	ob := b.mustDo(t, "k", hincr("f", 3))
	for _, r := range []*replica{h, a, b} {
		r.receive(t, oa)
		r.receive(t, ob)
		if v, _, err := r.entries["k"].HGet("f"); string(v) != "108" || err != nil {
			t.Errorf("%s: f = %s (%v), want 108", r.name, v, err)
		}
	}
}

// Re-adding a member already present costs a small delta and keeps the
// entry bounded, and the member still wins over a concurrent SREM.
func TestSAddPresentMemberIsCheap(t *testing.T) {
	m := Resolver{Default: CrdtMerge}
	a, b := newReplica("a", RoleEdge, m), newReplica("b", RoleEdge, m)
	var ms []string
	for i := range 1000 {
		ms = append(ms, fmt.Sprintf("sensor-%04d", i))
	}
	o0 := a.mustDo(t, "k", sadd(ms...))
	b.receive(t, o0)
	size := len(a.entries["k"].AppendBinary(nil))
	var readds []*op
	for range 50 {
		o := a.mustDo(t, "k", sadd("sensor-0001"))
		if len(o.delta) > 200 {
			t.Fatalf("re-add delta is %d bytes", len(o.delta))
		}
		readds = append(readds, o)
	}
	if grown := len(a.entries["k"].AppendBinary(nil)) - size; grown > 64 {
		t.Fatalf("50 re-adds grew the entry by %d bytes", grown)
	}
	// b removes the member concurrently with a's re-add: add wins.
	orem := b.mustDo(t, "k", srem("sensor-0001"))
	a.receive(t, orem)
	for _, o := range readds {
		b.receive(t, o)
	}
	for _, r := range []*replica{a, b} {
		if in, err := r.entries["k"].IsMember("sensor-0001"); !in || err != nil {
			t.Errorf("%s: sensor-0001 removed by a concurrent SREM (%v)", r.name, err)
		}
	}
}

// A conflict record shows the value of an element-carrying head (a merged
// counter, a hash field counter, a set) instead of an empty one.
func TestConflictShowsElementValues(t *testing.T) {
	m := Resolver{Default: CrdtMerge}
	a, b := newReplica("a", RoleEdge, m), newReplica("b", RoleEdge, m)
	oa := a.mustDo(t, "h", hincr("f", 2))
	ob := b.mustDo(t, "h", hset("f", "str"))
	oa2 := a.mustDo(t, "s", sadd("x", "y"))
	ob2 := b.mustDo(t, "s", set("text"))
	a.receive(t, ob)
	a.receive(t, ob2)
	b.receive(t, oa)
	b.receive(t, oa2)
	for _, r := range []*replica{a, b} {
		got := map[string]string{}
		for _, c := range r.conflicts {
			got[c.Key+"/"+c.Field] = DisplayValue(c.Winner.Kind, c.Winner.Value) + " beat " + DisplayValue(c.Loser.Kind, c.Loser.Value)
		}
		t.Logf("%s: %v", r.name, got)
		if len(got) != 2 {
			t.Fatalf("%s: conflicts %v", r.name, got)
		}
		for k, v := range got {
			w, l, _ := strings.Cut(v, " beat ")
			if w == "" || l == "" {
				t.Errorf("%s: %s: an empty value in %q", r.name, k, v)
			}
		}
	}
}

// The sweeper's delete of an expired key loses to a write made elsewhere
// after the expired value, however late the sweep runs (found by the sync
// audit: a hub restarted after an outage swept keys and beat writes an
// edge had made during the outage).
func TestDeleteExpiredLosesToLaterWrite(t *testing.T) {
	for _, strat := range []Strategy{LastWriteWins, CrdtMerge} {
		res := Resolver{Default: strat}
		hub, e := newReplica("hub", RoleHub, res), newReplica("e", RoleEdge, res)
		o1 := hub.mustDo(t, "k", func(en *Entry, m Mut) (*Delta, error) { return en.Set(m, []byte("a"), false, 8_000) })
		e.receive(t, o1)
		e.clock.ms = 7_000 // before the expiry, on the edge
		o2 := e.mustDo(t, "k", set("b"))
		hub.clock.ms = 60_000 // the hub sweeps long after
		o3 := hub.mustDo(t, "k", func(en *Entry, m Mut) (*Delta, error) { return en.DeleteExpired(m) })
		hub.receive(t, o2)
		e.receive(t, o3)
		for _, r := range []*replica{hub, e} {
			if v, err := r.entries["k"].Bytes(); string(v) != "b" || err != nil {
				t.Errorf("%s %s: k = %q (%v), want b", strat, r.name, v, err)
			}
		}
	}
}
