package crdt

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

// replica is a store in miniature: one Context, one Entry per key, an HLC
// with a settable clock, and the store's rules for local and remote
// mutations (deltas go through their binary encoding; a remote op already
// applied is skipped).
//
// Two sets of dots are kept. ctx is the causal Context: every dot seen,
// including dots that a delta covered because it removed their data. applied
// holds the ops actually applied. A remote op is skipped only if applied
// holds it: ctx may hold an op's dot while the op's own removals were never
// seen (a later delta removed what the op wrote), so skipping by ctx would
// lose them.
type replica struct {
	name      string
	role      Role
	clock     fakeClock
	hlc       *HLC
	ctx       *Context
	applied   *Context
	counter   uint64
	entries   map[string]*Entry
	resolver  Resolver
	conflicts []Conflict
	skewErrs  int
}

// op is one replicated mutation as the op log holds it.
type op struct {
	id    string // "<node><counter>" for scenario files
	key   string
	dot   Dot
	stamp Stamp
	delta []byte
}

func newReplica(name string, role Role, res Resolver) *replica {
	r := &replica{name: name, role: role, ctx: NewContext(), applied: NewContext(), entries: map[string]*Entry{}, resolver: res}
	r.clock.ms = 1_000
	r.hlc = NewHLC(r.clock.now, time.Minute)
	return r
}

func (r *replica) entry(key string) *Entry {
	e, ok := r.entries[key]
	if !ok {
		e = &Entry{}
		r.entries[key] = e
	}
	return e
}

// do runs a mutator for key. A nil delta consumes no dot.
func (r *replica) do(t testing.TB, key string, f func(e *Entry, m Mut) (*Delta, error)) (*op, error) {
	t.Helper()
	s := r.resolver.For(key)
	r.counter++
	m := Mut{
		Dot:      Dot{Node: r.name, Counter: r.counter},
		Stamp:    Stamp{TS: r.hlc.Now(), Node: r.name, Role: r.role},
		Strategy: s,
		Now:      r.clock.ms,
	}
	e := r.entry(key)
	d, err := f(e, m)
	if err != nil || d == nil {
		r.counter--
		return nil, err
	}
	enc := d.AppendBinary(nil)
	d2, derr := DecodeDelta(enc)
	if derr != nil {
		t.Fatalf("%s: decoding own delta: %v\n%s", r.name, derr, d)
	}
	if !bytes.Equal(d2.AppendBinary(nil), enc) {
		t.Fatalf("%s: delta encoding not canonical", r.name)
	}
	if !slices.Contains(d.Ctx, m.Dot) {
		t.Fatalf("%s: delta does not cover its own dot %s", r.name, m.Dot)
	}
	cs := e.ApplyDelta(d2, r.ctx, s)
	r.ctx.AddDots(d2.Ctx)
	r.applied.Add(m.Dot)
	if len(cs) > 0 {
		t.Fatalf("%s: local mutation produced conflicts %v", r.name, cs)
	}
	return &op{id: fmt.Sprintf("%s%d", r.name, m.Dot.Counter), key: key, dot: m.Dot, stamp: m.Stamp, delta: enc}, nil
}

// receive applies a remote op as the store's ApplyRemote does. It reports
// whether the op was applied (not skipped).
func (r *replica) receive(t testing.TB, o *op) bool {
	t.Helper()
	if r.applied.Contains(o.dot) {
		return false
	}
	d, err := DecodeDelta(o.delta)
	if err != nil {
		t.Fatalf("%s: decoding %s: %v", r.name, o.id, err)
	}
	if _, err := r.hlc.Update(o.stamp.TS); err != nil {
		r.skewErrs++
	}
	cs := r.entry(o.key).ApplyDelta(d, r.ctx, r.resolver.For(o.key))
	r.ctx.AddDots(d.Ctx)
	r.applied.Add(o.dot)
	r.record(o.key, cs)
	return true
}

func (r *replica) record(key string, cs []Conflict) {
	for _, c := range cs {
		c.Key = key
		r.conflicts = append(r.conflicts, c)
	}
}

// mergeFrom merges o's full state into r (FullSync), every key of either.
func (r *replica) mergeFrom(o *replica) {
	keys := slices.Sorted(maps.Keys(r.entries))
	for k := range o.entries {
		if _, ok := r.entries[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		oe, ok := o.entries[k]
		if !ok {
			oe = &Entry{}
		}
		cs := r.entry(k).MergeState(oe, r.ctx, o.ctx, r.resolver.For(k))
		r.record(k, cs)
	}
	r.ctx.Merge(o.ctx)
	r.applied.Merge(o.applied)
}

func (r *replica) clone() *replica {
	c := *r
	c.ctx = r.ctx.Clone()
	c.applied = r.applied.Clone()
	c.entries = make(map[string]*Entry, len(r.entries))
	for k, e := range r.entries {
		c.entries[k] = e.Clone()
	}
	c.conflicts = slices.Clone(r.conflicts)
	return &c
}

// state encodes every non-empty entry and the context: two replicas hold
// the same state iff their states are equal.
func (r *replica) state() string {
	var sb bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(r.entries)) {
		e := r.entries[k]
		if e.IsEmpty() {
			continue
		}
		fmt.Fprintf(&sb, "%s=%x\n", k, e.AppendBinary(nil))
	}
	fmt.Fprintf(&sb, "ctx=%x\n", r.ctx.AppendBinary(nil))
	return sb.String()
}

// view renders the visible value of key at the replica's clock.
func (r *replica) view(key string) string {
	e, ok := r.entries[key]
	if !ok {
		return "(none)"
	}
	return renderView(e, r.clock.ms)
}

func renderView(e *Entry, now int64) string {
	k := e.Kind(now)
	var s string
	switch k {
	case KindNone:
		return "(none)"
	case KindString, KindCounter:
		v, err := e.Bytes()
		s = fmt.Sprintf("%q", v)
		if err != nil {
			s = "error: " + err.Error()
		}
	case KindHash:
		fvs, err := e.HGetAll()
		var parts []string
		for _, f := range fvs {
			parts = append(parts, fmt.Sprintf("%s=%q", f.Field, f.Value))
		}
		s = fmt.Sprintf("{%s}", joinStr(parts))
		if err != nil {
			s = "error: " + err.Error()
		}
	case KindList:
		vs, err := e.Range(0, -1)
		var parts []string
		for _, v := range vs {
			parts = append(parts, fmt.Sprintf("%q", v))
		}
		s = fmt.Sprintf("[%s]", joinStr(parts))
		if err != nil {
			s = "error: " + err.Error()
		}
	case KindSet:
		ms, err := e.Members()
		s = fmt.Sprintf("{%s}", joinStr(ms))
		if err != nil {
			s = "error: " + err.Error()
		}
	case KindAggregate:
		p, err := e.Aggregate()
		s = fmt.Sprintf("count=%d sum=%g min=%g max=%g first=%d last=%d", p.Count, p.Sum, p.Min, p.Max, p.FirstTS, p.LastTS)
		if err != nil {
			s = "error: " + err.Error()
		}
	}
	if at := e.ExpireAt(); at != 0 {
		s += fmt.Sprintf(" (expires %d)", at)
	}
	return k.String() + " " + s
}

func joinStr(parts []string) string {
	var sb bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(p)
	}
	return sb.String()
}

// mustDo runs a mutator and fails the test on error.
func (r *replica) mustDo(t testing.TB, key string, f func(e *Entry, m Mut) (*Delta, error)) *op {
	t.Helper()
	o, err := r.do(t, key, f)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	return o
}

// Mutator adapters for tests.

func set(v string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.Set(m, []byte(v), false, 0) }
}

func del() func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.Delete(m) }
}

func incr(n int64) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.IncrBy(m, n) }
}

func sadd(ms ...string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.SAdd(m, ms...) }
}

func srem(ms ...string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.SRem(m, ms...) }
}

func bs(vs ...string) [][]byte {
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = []byte(v)
	}
	return out
}

func lpush(vs ...string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.LPush(m, bs(vs...)...) }
}

func rpush(vs ...string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.RPush(m, bs(vs...)...) }
}

func ltrim(start, stop int64) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.LTrim(m, start, stop) }
}

func hset(f, v string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.HSet(m, f, []byte(v)) }
}

func hdel(fs ...string) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.HDel(m, fs...) }
}

func hincr(f string, n int64) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.HIncrBy(m, f, n) }
}

func expire(at int64) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.Expire(m, at) }
}

func aggAdd(p Partial) func(*Entry, Mut) (*Delta, error) {
	return func(e *Entry, m Mut) (*Delta, error) { return e.AggregateAdd(m, p) }
}
