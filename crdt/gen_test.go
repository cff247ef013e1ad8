package crdt

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Random operations for property tests. Keys are few so that operations
// collide; values are few so that equal values occur.

var genKeys = []string{"s", "c", "h", "l", "t", "g"}

// genOp is one random operation, structured so that a reference model can
// execute it too.
type genOp struct {
	key  string
	name string   // set, setex, del, expire, incr, hset, hsetm, hdel, hincr, lpush, rpush, ltrim, sadd, srem, agg
	strs []string // values, members, fields
	n, m int64    // increments, trim range, expiry, aggregate value
}

func (o genOp) String() string { return fmt.Sprintf("%s %s %q %d %d", o.name, o.key, o.strs, o.n, o.m) }

// randomOp returns a random operation on a random key, biased towards the
// key's usual kind but sometimes of another kind (type changes).
func randomOp(r *rand.Rand, now int64) genOp {
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
		return genOp{key: key, name: "del"}
	case 1:
		return genOp{key: key, name: "expire", n: max(now+int64(r.IntN(3)-1)*500, 0)}
	}
	switch kind {
	case "s":
		if r.IntN(3) == 0 {
			return genOp{key: key, name: "setex", strs: []string{val()}, n: now + int64(r.IntN(1000))}
		}
		return genOp{key: key, name: "set", strs: []string{val()}}
	case "c":
		return genOp{key: key, name: "incr", n: int64(r.IntN(7) - 3)}
	case "h":
		switch r.IntN(4) {
		case 0:
			return genOp{key: key, name: "hset", strs: []string{fld(), val()}}
		case 1:
			return genOp{key: key, name: "hdel", strs: []string{fld()}}
		case 2:
			return genOp{key: key, name: "hsetm", strs: []string{fld(), val(), fld(), val()}}
		}
		return genOp{key: key, name: "hincr", strs: []string{fld()}, n: int64(r.IntN(5) - 2)}
	case "l":
		switch r.IntN(4) {
		case 0:
			return genOp{key: key, name: "ltrim", n: int64(r.IntN(4) - 1), m: int64(r.IntN(5) - 2)}
		case 1:
			return genOp{key: key, name: "lpush", strs: []string{val(), val()}}
		}
		return genOp{key: key, name: "rpush", strs: []string{val(), val()}}
	case "t":
		if r.IntN(3) == 0 {
			return genOp{key: key, name: "srem", strs: []string{mem()}}
		}
		return genOp{key: key, name: "sadd", strs: []string{mem(), mem()}}
	}
	return genOp{key: key, name: "agg", n: int64(r.IntN(100))}
}

// mutator returns the Entry mutator for o.
func (o genOp) mutator() func(*Entry, Mut) (*Delta, error) {
	switch o.name {
	case "set":
		return set(o.strs[0])
	case "setex":
		return func(e *Entry, m Mut) (*Delta, error) { return e.Set(m, []byte(o.strs[0]), false, o.n) }
	case "del":
		return del()
	case "expire":
		return expire(o.n)
	case "incr":
		return incr(o.n)
	case "hset":
		return hset(o.strs[0], o.strs[1])
	case "hsetm":
		return func(e *Entry, m Mut) (*Delta, error) {
			return e.HSetMulti(m, []FieldValue{{o.strs[0], []byte(o.strs[1])}, {o.strs[2], []byte(o.strs[3])}})
		}
	case "hdel":
		return hdel(o.strs...)
	case "hincr":
		return hincr(o.strs[0], o.n)
	case "lpush":
		return lpush(o.strs...)
	case "rpush":
		return rpush(o.strs...)
	case "ltrim":
		return ltrim(o.n, o.m)
	case "sadd":
		return sadd(o.strs...)
	case "srem":
		return srem(o.strs...)
	case "agg":
		v := float64(o.n)
		return func(e *Entry, m Mut) (*Delta, error) {
			var p Partial
			if e.Kind(m.Now) == KindAggregate { // views ignore expiry
				p, _, _ = e.OriginPartial(m.Dot.Node)
			}
			if p.Count == 0 {
				p = Partial{Min: v, Max: v, FirstTS: m.Now, LastTS: m.Now}
			}
			p.Version = 0
			p.Count++
			p.Sum += v
			p.Min, p.Max = min(p.Min, v), max(p.Max, v)
			p.LastTS = max(p.LastTS, m.Now)
			return e.AggregateAdd(m, p)
		}
	}
	panic("unknown op " + o.name)
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
			g := randomOp(r, rep.clock.ms)
			o, err := rep.do(t, g.key, g.mutator())
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
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -crdt.seed)", seed)
	return rand.New(rand.NewPCG(seed, seed>>1)), seed
}
