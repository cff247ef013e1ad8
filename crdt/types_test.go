package crdt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Law tests for each building block on its own. A block replica is a state
// plus a causal Context; a delta is a state fragment plus the dots it
// covers. Counters and aggregates ignore contexts (they are not dotted).

type blockSpec[T any] struct {
	// mutate returns a random delta of x made by node with dot and stamp.
	mutate func(r *rand.Rand, x *T, dot Dot, st Stamp) (T, []Dot, bool)
	merge  func(x, y *T, xc, yc DotSet)
	clone  func(x *T) T
	encode func(x *T) []byte
	decode func([]byte) (*T, error)
	view   func(x *T) string
}

type blockReplica[T any] struct {
	name    string
	s       T
	ctx     *Context
	counter uint64
	ts      int64
}

type blockDelta[T any] struct {
	frag   T
	covers []Dot
}

func (sp *blockSpec[T]) join(x, y *blockReplica[T]) *blockReplica[T] {
	z := &blockReplica[T]{name: x.name, s: sp.clone(&x.s), ctx: x.ctx.Clone(), counter: x.counter, ts: x.ts}
	sp.merge(&z.s, &y.s, z.ctx, y.ctx)
	z.ctx.Merge(y.ctx)
	return z
}

func (sp *blockSpec[T]) apply(x *blockReplica[T], d *blockDelta[T]) {
	sp.merge(&x.s, &d.frag, x.ctx, dotList(normalizeDots(append([]Dot(nil), d.covers...))))
	x.ctx.AddDots(d.covers)
}

func (sp *blockSpec[T]) state(t *testing.T, x *blockReplica[T]) string {
	t.Helper()
	b := sp.encode(&x.s)
	back, err := sp.decode(b)
	if err != nil {
		t.Fatalf("decode own encoding: %v", err)
	}
	if !bytes.Equal(sp.encode(back), b) {
		t.Fatalf("encoding not canonical")
	}
	return fmt.Sprintf("%x|%x", b, x.ctx.AppendBinary(nil))
}

// local performs one random mutation on x and returns its delta.
func (sp *blockSpec[T]) local(r *rand.Rand, x *blockReplica[T]) (*blockDelta[T], bool) {
	x.counter++
	x.ts += int64(1 + r.IntN(50))
	dot := Dot{Node: x.name, Counter: x.counter}
	st := Stamp{TS: NewTimestamp(x.ts, 0), Node: x.name}
	frag, covers, ok := sp.mutate(r, &x.s, dot, st)
	if !ok {
		x.counter--
		return nil, false
	}
	d := &blockDelta[T]{frag: frag, covers: covers}
	sp.apply(x, d)
	return d, true
}

// histories returns three replicas with random, partly shared histories.
func (sp *blockSpec[T]) histories(r *rand.Rand) []*blockReplica[T] {
	reps := []*blockReplica[T]{{name: "a", ctx: NewContext()}, {name: "b", ctx: NewContext()}, {name: "c", ctx: NewContext()}}
	var ds []*blockDelta[T]
	for range 20 + r.IntN(40) {
		x := reps[r.IntN(3)]
		if r.IntN(3) > 0 || len(ds) == 0 {
			if d, ok := sp.local(r, x); ok {
				ds = append(ds, d)
			}
			continue
		}
		sp.apply(x, ds[r.IntN(len(ds))])
	}
	return reps
}

func checkBlockLaws[T any](t *testing.T, sp *blockSpec[T]) {
	r, seed := newRand(t)
	rounds := lawRounds(t) * 2
	for round := range rounds {
		reps := sp.histories(r)
		a, b, c := reps[0], reps[1], reps[2]
		fail := func(law, x, y string) {
			t.Fatalf("seed %d round %d: %s\n%s\n%s", seed, round, law, x, y)
		}
		if x, y := sp.state(t, sp.join(a, b)), sp.state(t, sp.join(b, a)); x != y {
			fail("a⊔b != b⊔a", x, y)
		}
		if x, y := sp.state(t, sp.join(sp.join(a, b), c)), sp.state(t, sp.join(a, sp.join(b, c))); x != y {
			fail("(a⊔b)⊔c != a⊔(b⊔c)", x, y)
		}
		if x, y := sp.state(t, sp.join(a, a)), sp.state(t, a); x != y {
			fail("a⊔a != a", x, y)
		}
		// Delta equals mutation: for y ⊒ a, y ⊔ δ == y ⊔ a'.
		y := sp.join(a, b)
		d, ok := sp.local(r, a)
		if !ok {
			continue
		}
		viaDelta := sp.join(y, &blockReplica[T]{ctx: NewContext()})
		sp.apply(viaDelta, d)
		if x, z := sp.state(t, viaDelta), sp.state(t, sp.join(y, a)); x != z {
			fail("y⊔δ != y⊔a'", x, z)
		}
		// Convergence: everyone merges everyone.
		ab := sp.join(sp.join(a, b), c)
		ba := sp.join(sp.join(c, b), a)
		if sp.view(&ab.s) != sp.view(&ba.s) {
			fail("views differ", sp.view(&ab.s), sp.view(&ba.s))
		}
	}
}

func pick[S any](r *rand.Rand, xs ...S) S { return xs[r.IntN(len(xs))] }

func TestLWWRegisterLaws(t *testing.T) {
	checkBlockLaws(t, &blockSpec[LWWRegister]{
		mutate: func(r *rand.Rand, x *LWWRegister, dot Dot, st Stamp) (LWWRegister, []Dot, bool) {
			d, c := x.Write(dot, st, pick(r, KindString, KindDeleted), []byte(pick(r, "x", "y")))
			if d.heads[0].Kind == KindDeleted {
				d.heads[0].Value = nil
			}
			return d, c, true
		},
		merge:  func(x, y *LWWRegister, xc, yc DotSet) { x.Merge(y, xc, yc) },
		clone:  func(x *LWWRegister) LWWRegister { return x.Clone() },
		encode: func(x *LWWRegister) []byte { return x.AppendBinary(nil) },
		decode: DecodeLWWRegister,
		view: func(x *LWWRegister) string {
			w, l, _ := x.Resolve(LastWriteWins)
			return fmt.Sprint(w, len(l))
		},
	})
}

func TestPNCounterLaws(t *testing.T) {
	checkBlockLaws(t, &blockSpec[PNCounter]{
		mutate: func(r *rand.Rand, x *PNCounter, dot Dot, _ Stamp) (PNCounter, []Dot, bool) {
			d, err := x.Add(dot.Node, int64(r.IntN(11)-5))
			return d, []Dot{dot}, err == nil
		},
		merge:  func(x, y *PNCounter, _, _ DotSet) { x.Merge(y) },
		clone:  func(x *PNCounter) PNCounter { return x.Clone() },
		encode: func(x *PNCounter) []byte { return x.AppendBinary(nil) },
		decode: DecodePNCounter,
		view: func(x *PNCounter) string {
			v, err := x.Value()
			return fmt.Sprint(v, err)
		},
	})
}

func TestORSetLaws(t *testing.T) {
	members := func(r *rand.Rand) []string {
		return []string{pick(r, "a", "b", "c", "d"), pick(r, "a", "b", "c", "d")}
	}
	checkBlockLaws(t, &blockSpec[ORSet]{
		mutate: func(r *rand.Rand, x *ORSet, dot Dot, _ Stamp) (ORSet, []Dot, bool) {
			if r.IntN(3) == 0 {
				d, c := x.Remove(members(r)...)
				return d, append(c, dot), true
			}
			d, c := x.Add(dot, members(r)...)
			return d, c, true
		},
		merge:  func(x, y *ORSet, xc, yc DotSet) { x.Merge(y, xc, yc) },
		clone:  func(x *ORSet) ORSet { return x.Clone() },
		encode: func(x *ORSet) []byte { return x.AppendBinary(nil) },
		decode: DecodeORSet,
		view:   func(x *ORSet) string { return fmt.Sprint(x.Members()) },
	})
}

func TestListLaws(t *testing.T) {
	checkBlockLaws(t, &blockSpec[List]{
		mutate: func(r *rand.Rand, x *List, dot Dot, st Stamp) (List, []Dot, bool) {
			if r.IntN(4) == 0 {
				d, c := x.Trim(int64(r.IntN(3)-1), int64(r.IntN(4)-1))
				return d, append(c, dot), true
			}
			d, c := x.Push(dot, st, pick(r, SideHead, SideTail), bs(pick(r, "x", "y"), pick(r, "y", "z"))...)
			return d, c, true
		},
		merge:  func(x, y *List, xc, yc DotSet) { x.Merge(y, xc, yc) },
		clone:  func(x *List) List { return x.Clone() },
		encode: func(x *List) []byte { return x.AppendBinary(nil) },
		decode: DecodeList,
		view:   func(x *List) string { return fmt.Sprintf("%q", x.Range(0, -1)) },
	})
}

func TestORMapLaws(t *testing.T) {
	checkBlockLaws(t, &blockSpec[ORMap]{
		mutate: func(r *rand.Rand, x *ORMap, dot Dot, st Stamp) (ORMap, []Dot, bool) {
			f := pick(r, "f", "g", "h")
			switch r.IntN(3) {
			case 0:
				d, c := x.Set(dot, st, f, []byte(pick(r, "1", "x")))
				return d, c, true
			case 1:
				d, c := x.Delete(dot, st, f)
				return d, c, true
			}
			d, c, err := x.IncrBy(dot, st, CrdtMerge, f, int64(r.IntN(5)-2))
			return d, c, err == nil
		},
		merge:  func(x, y *ORMap, xc, yc DotSet) { x.Merge(y, xc, yc) },
		clone:  func(x *ORMap) ORMap { return x.Clone() },
		encode: func(x *ORMap) []byte { return x.AppendBinary(nil) },
		decode: DecodeORMap,
		view: func(x *ORMap) string {
			all, err := x.All(CrdtMerge)
			return fmt.Sprint(all, err)
		},
	})
}

func TestAggregateLaws(t *testing.T) {
	checkBlockLaws(t, &blockSpec[Aggregate]{
		mutate: func(r *rand.Rand, x *Aggregate, dot Dot, _ Stamp) (Aggregate, []Dot, bool) {
			v := float64(r.IntN(100))
			p, ok := x.Partial(dot.Node)
			if !ok {
				p = Partial{Min: v, Max: v, FirstTS: int64(dot.Counter), LastTS: int64(dot.Counter)}
			}
			p.Version = 0
			p.Count++
			p.Sum += v
			p.Min, p.Max, p.LastTS = min(p.Min, v), max(p.Max, v), int64(dot.Counter)
			d, err := x.Add(dot.Node, p)
			return d, []Dot{dot}, err == nil
		},
		merge:  func(x, y *Aggregate, _, _ DotSet) { x.Merge(y) },
		clone:  func(x *Aggregate) Aggregate { return x.Clone() },
		encode: func(x *Aggregate) []byte { return x.AppendBinary(nil) },
		decode: DecodeAggregate,
		view:   func(x *Aggregate) string { return fmt.Sprintf("%+v", x.Total()) },
	})
}

// TestAggregateNeverDoubleCounts: a duplicated or stale partial changes
// nothing; two origins add up.
func TestAggregateNeverDoubleCounts(t *testing.T) {
	var a, b Aggregate
	d1, err := a.Add("e1", Partial{Count: 2, Sum: 10, Min: 4, Max: 6, FirstTS: 1, LastTS: 2})
	if err != nil {
		t.Fatal(err)
	}
	a.Merge(&d1)
	a.Merge(&d1)
	b.Merge(&d1)
	d2, _ := b.Add("e2", Partial{Count: 1, Sum: 1, Min: 1, Max: 1, FirstTS: 0, LastTS: 0})
	b.Merge(&d2)
	a.Merge(&b)
	a.Merge(&b)
	got := a.Total()
	want := Partial{Count: 3, Sum: 11, Min: 1, Max: 6, FirstTS: 0, LastTS: 2}
	if got != want {
		t.Fatalf("total %+v, want %+v", got, want)
	}
	if _, err := a.Add("e1", Partial{Version: 1, Count: 5, Sum: 1, Min: 0, Max: 1}); err == nil {
		t.Fatal("stale version accepted")
	}
}
