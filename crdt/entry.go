package crdt

import (
	"slices"
)

// Entry is the replicated state of one key: a causal delta-state CRDT
// (Almeida et al., "Delta State Replicated Data Types"). It holds
//
//   - heads: the key's incarnations, an LWWRegister. An overwrite (SET,
//     DEL, expiry, a type change, and every write under the LastWriteWins
//     family) creates a new head and removes every head and element it
//     observed. Concurrent heads are resolved by the strategy;
//   - payloads: per head, the elements tagged with it: its TTL register and,
//     for a head that carries elements (CrdtMerge collections and counters,
//     aggregates), its PNCounter, ORSet, List, ORMap or Aggregate. Elements
//     of a removed head are orphans and are pruned.
//
// The zero value is an empty entry (a key never written). An Entry is not
// safe for concurrent use; views never modify it.
type Entry struct {
	strategy Strategy    // the strategy of the last join; views resolve with it
	heads    LWWRegister // sorted by Dot
	pl       []payload   // sorted by parent; every parent is a head; none empty
}

// payload holds the elements tagged with one head (its parent).
type payload struct {
	parent  Dot
	ttl     []ttlElem // dotted, sorted by Dot
	counter PNCounter // Counter heads
	set     ORSet     // Set heads
	list    List      // List heads
	hash    ORMap     // Hash heads
	agg     Aggregate // Aggregate heads
}

// ttlElem is one write of a head's expiry time (Unix ms; 0 = persist).
// Concurrent writes are resolved like heads: the greatest stamp wins.
type ttlElem struct {
	Dot   Dot
	Stamp Stamp
	At    int64
}

func cmpTTL(a, b *ttlElem) int { return a.Dot.Compare(b.Dot) }
func ttlDot(t *ttlElem) Dot    { return t.Dot }

func (p *payload) empty() bool {
	return len(p.ttl) == 0 && len(p.counter.c) == 0 && len(p.set.e) == 0 &&
		len(p.list.items) == 0 && len(p.hash.f) == 0 && len(p.agg.p) == 0
}

// join merges o (the same parent's payload on the other side, or an empty
// one) into p.
func (p *payload) join(o *payload, lctx, rctx DotSet) {
	p.ttl = joinDotted(p.ttl, o.ttl, cmpTTL, ttlDot, lctx, rctx)
	p.counter.Merge(&o.counter)
	p.set.Merge(&o.set, lctx, rctx)
	p.list.Merge(&o.list, lctx, rctx)
	p.hash.Merge(&o.hash, lctx, rctx)
	p.agg.Merge(&o.agg)
}

// restrict drops the element kinds a head h cannot carry.
func (p *payload) restrict(h *Head) {
	carries := h.carriesElements()
	if !carries || h.Kind != KindCounter {
		p.counter = PNCounter{}
	}
	if !carries || h.Kind != KindSet {
		p.set = ORSet{}
	}
	if !carries || h.Kind != KindList {
		p.list = List{}
	}
	if !carries || h.Kind != KindHash {
		p.hash = ORMap{}
	}
	if !carries || h.Kind != KindAggregate {
		p.agg = Aggregate{}
	}
}

func (p *payload) clone() payload {
	return payload{
		parent:  p.parent,
		ttl:     slices.Clone(p.ttl),
		counter: p.counter.Clone(),
		set:     p.set.Clone(),
		list:    p.list.Clone(),
		hash:    p.hash.Clone(),
		agg:     p.agg.Clone(),
	}
}

// payloadOf returns the payload of head d, or nil.
func (e *Entry) payloadOf(d Dot) *payload {
	i, ok := slices.BinarySearchFunc(e.pl, d, func(p payload, d Dot) int { return p.parent.Compare(d) })
	if !ok {
		return nil
	}
	return &e.pl[i]
}

// payloadAt returns the payload of head d, adding an empty one if needed.
func (e *Entry) payloadAt(d Dot) *payload {
	i, ok := slices.BinarySearchFunc(e.pl, d, func(p payload, d Dot) int { return p.parent.Compare(d) })
	if !ok {
		e.pl = slices.Insert(e.pl, i, payload{parent: d})
	}
	return &e.pl[i]
}

// noDots is the empty causal context.
type noDots struct{}

func (noDots) Contains(Dot) bool { return false }

func ctxOrEmpty(c *Context) DotSet {
	if c == nil {
		return noDots{}
	}
	return c
}

// ApplyDelta joins delta d into e: the causal join of e (whose replica has
// seen the dots in local) with d's fragment (whose context is d.Ctx). A dot
// of e survives if the fragment holds it or d.Ctx does not cover it; a dot
// of the fragment is added unless local already saw it; counters, aggregate
// partials and other non-dotted parts merge by their own joins; then heads
// are resolved under s and orphaned elements pruned. It returns the
// conflicts this join newly created (Key unset). The caller adds d.Ctx to
// local afterwards (local.AddDots(d.Ctx)). The delta is not modified and
// may be applied to other entries.
func (e *Entry) ApplyDelta(d *Delta, local *Context, s Strategy) []Conflict {
	return e.join(&d.frag, ctxOrEmpty(local), (*deltaDots)(d), s)
}

// deltaDots is a Delta seen as the set of dots it covers (a pointer
// conversion: no allocation).
type deltaDots Delta

func (d *deltaDots) Contains(x Dot) bool { return dotList(d.Ctx).Contains(x) }

// MergeState joins the full state of another replica (remote, whose replica
// context is remoteCtx) into e (whose replica context is local). A key the
// remote does not have is merged as an empty Entry, so local data the
// remote saw and removed dies. The caller merges remoteCtx into local after
// merging every key. remote is not modified.
func (e *Entry) MergeState(remote *Entry, local, remoteCtx *Context, s Strategy) []Conflict {
	return e.join(remote, ctxOrEmpty(local), ctxOrEmpty(remoteCtx), s)
}

func (e *Entry) join(r *Entry, lctx, rctx DotSet, s Strategy) []Conflict {
	before := e.losses(s, nil)
	e.heads.Merge(&r.heads, lctx, rctx)
	e.pl = joinPayloads(e.pl, r.pl, lctx, rctx)
	e.prune()
	e.strategy = s
	return e.newConflicts(before, s)
}

func joinPayloads(l, r []payload, lctx, rctx DotSet) []payload {
	var none payload
	return joinNested(l, r,
		func(a, b *payload) int { return a.parent.Compare(b.parent) },
		func(dst, src *payload) {
			if src == nil {
				src = &none
			}
			dst.join(src, lctx, rctx)
		},
		func(src *payload) payload {
			p := payload{parent: src.parent}
			p.join(src, lctx, rctx)
			return p
		},
		func(*payload) bool { return false }) // prune decides, knowing the heads
}

// prune drops the payloads of heads that are gone (orphans: a dead dot never
// comes back), the element kinds a head cannot carry, and empty payloads.
func (e *Entry) prune() {
	w := 0
	for k := range e.pl {
		i := e.heads.find(e.pl[k].parent)
		if i < 0 {
			continue
		}
		e.pl[k].restrict(&e.heads.heads[i])
		if e.pl[k].empty() {
			continue
		}
		e.pl[w] = e.pl[k]
		w++
	}
	clear(e.pl[w:])
	e.pl = e.pl[:w]
}

// IsEmpty reports whether e holds nothing at all (not even a delete).
func (e *Entry) IsEmpty() bool { return e.heads.len() == 0 }

// Strategy returns the strategy e was last joined with; views resolve
// concurrent heads with it.
func (e *Entry) Strategy() Strategy { return e.strategy }

// Heads returns the key's heads sorted by dot (aliases e; do not modify).
func (e *Entry) Heads() []Head { return e.heads.heads }

// Clone returns a deep copy of e (byte values are shared: immutable).
func (e *Entry) Clone() *Entry {
	c := &Entry{strategy: e.strategy, heads: e.heads.Clone(), pl: make([]payload, len(e.pl))}
	for i := range e.pl {
		c.pl[i] = e.pl[i].clone()
	}
	return c
}

// eachDot calls fn with the dot of every dotted thing in e (heads, TTL
// writes, set members, list items, hash field heads), with repeats.
func (e *Entry) eachDot(fn func(Dot)) {
	for i := range e.heads.heads {
		fn(e.heads.heads[i].Dot)
	}
	for i := range e.pl {
		p := &e.pl[i]
		for _, t := range p.ttl {
			fn(t.Dot)
		}
		for _, m := range p.set.e {
			fn(m.Dot)
		}
		for _, it := range p.list.items {
			fn(it.Dot)
		}
		for _, f := range p.hash.f {
			for _, h := range f.Reg.heads {
				fn(h.Dot)
			}
		}
	}
}

// Dots returns every dot tagging something in e, sorted and unique.
func (e *Entry) Dots() []Dot {
	var ds []Dot
	e.eachDot(func(d Dot) { ds = append(ds, d) })
	return normalizeDots(ds)
}
