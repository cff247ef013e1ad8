package crdt

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Random operations for property tests. Keys are few so that operations
// collide; values are few so that equal values occur.

var genKeys = []string{"s", "c", "h", "l", "t", "g"}

// randomOp returns a random mutator on a random key, biased towards the
// key's usual kind but sometimes of another kind (type changes).
func randomOp(r *rand.Rand, now int64) (string, string, func(*Entry, Mut) (*Delta, error)) {
	key := genKeys[r.IntN(len(genKeys))]
	val := func() string { return fmt.Sprintf("v%d", r.IntN(4)) }
	mem := func() string { return fmt.Sprintf("m%d", r.IntN(5)) }
	fld := func() string { return fmt.Sprintf("f%d", r.IntN(3)) }
	kind := key
	if r.IntN(10) == 0 {
		kind = genKeys[r.IntN(len(genKeys))]
	}
	switch r.IntN(12) {
	case 0:
		return key, "del", del()
	case 1:
		at := now + int64(r.IntN(3)-1)*500
		return key, fmt.Sprintf("expire %d", at), expire(max(at, 0))
	}
	switch kind {
	case "s":
		v := val()
		if r.IntN(3) == 0 {
			at := now + int64(r.IntN(1000))
			return key, "set ex " + v, func(e *Entry, m Mut) (*Delta, error) { return e.Set(m, []byte(v), false, at) }
		}
		return key, "set " + v, set(v)
	case "c":
		n := int64(r.IntN(7) - 3)
		return key, fmt.Sprintf("incr %d", n), incr(n)
	case "h":
		switch r.IntN(4) {
		case 0:
			f, v := fld(), val()
			return key, "hset " + f + " " + v, hset(f, v)
		case 1:
			f := fld()
			return key, "hdel " + f, hdel(f)
		case 2:
			f1, f2, v := fld(), fld(), val()
			return key, "hsetmulti", func(e *Entry, m Mut) (*Delta, error) {
				return e.HSetMulti(m, []FieldValue{{f1, []byte(v)}, {f2, []byte(v + "x")}})
			}
		}
		f, n := fld(), int64(r.IntN(5)-2)
		return key, fmt.Sprintf("hincr %s %d", f, n), hincr(f, n)
	case "l":
		switch r.IntN(4) {
		case 0:
			a, b := int64(r.IntN(4)-1), int64(r.IntN(5)-2)
			return key, fmt.Sprintf("ltrim %d %d", a, b), ltrim(a, b)
		case 1:
			v1, v2 := val(), val()
			return key, "lpush " + v1 + " " + v2, lpush(v1, v2)
		}
		v1, v2 := val(), val()
		return key, "rpush " + v1 + " " + v2, rpush(v1, v2)
	case "t":
		if r.IntN(3) == 0 {
			m1 := mem()
			return key, "srem " + m1, srem(m1)
		}
		m1, m2 := mem(), mem()
		return key, "sadd " + m1 + " " + m2, sadd(m1, m2)
	}
	v := float64(r.IntN(100))
	return key, "agg", func(e *Entry, m Mut) (*Delta, error) {
		p, _, _ := e.OriginPartial(m.Dot.Node)
		if p.Count == 0 {
			p = Partial{Min: v, Max: v, FirstTS: now, LastTS: now}
		}
		p.Version = 0
		p.Count++
		p.Sum += v
		p.Min, p.Max = min(p.Min, v), max(p.Max, v)
		p.LastTS = max(p.LastTS, now)
		return e.AggregateAdd(m, p)
	}
}

// cluster is a set of replicas and the ops they produced.
type cluster struct {
	reps []*replica
	ops  []*op
}

func newCluster(res Resolver, names ...string) *cluster {
	c := &cluster{}
	for i, n := range names {
		role := RoleEdge
		if i == 0 {
			role = RoleHub
		}
		c.reps = append(c.reps, newReplica(n, role, res))
	}
	return c
}

// run performs steps random events: a local op on a random replica, or the
// delivery of a random earlier op (duplicates and reordering included) to a
// random replica. Ops never delivered are lost.
func (c *cluster) run(t testing.TB, r *rand.Rand, steps int) {
	t.Helper()
	for range steps {
		rep := c.reps[r.IntN(len(c.reps))]
		switch r.IntN(10) {
		case 0, 1, 2, 3, 4:
			rep.clock.ms += int64(r.IntN(300))
			key, _, f := randomOp(r, rep.clock.ms)
			o, err := rep.do(t, key, f)
			if err != nil {
				continue // WRONGTYPE, overflow, ...: nothing written
			}
			if o != nil {
				c.ops = append(c.ops, o)
			}
		default:
			if len(c.ops) > 0 {
				rep.receive(t, c.ops[r.IntN(len(c.ops))])
			}
		}
	}
}

// deliverAll delivers every op to every replica (in a random order).
func (c *cluster) deliverAll(t testing.TB, r *rand.Rand) {
	for _, rep := range c.reps {
		for _, i := range r.Perm(len(c.ops)) {
			rep.receive(t, c.ops[i])
		}
	}
}

// exchange merges every replica's full state into the first, then the
// first's into every other: after it all replicas hold the join of all.
func (c *cluster) exchange() {
	for _, rep := range c.reps[1:] {
		c.reps[0].mergeFrom(rep)
	}
	for _, rep := range c.reps[1:] {
		rep.mergeFrom(c.reps[0])
	}
}

func newRand(t testing.TB) (*rand.Rand, uint64) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed>>1)), seed
}
