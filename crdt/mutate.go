package crdt

import (
	"fmt"
	"slices"
	"strings"
)

// Mut describes one local mutation: its dot (the store assigns the next
// counter of the local node), its stamp (the HLC reading, node id and
// role), the key's strategy, and the wall time (Unix ms) for expiry
// decisions. The origin of counter and aggregate contributions is
// Dot.Node.
type Mut struct {
	Dot      Dot
	Stamp    Stamp
	Strategy Strategy
	Now      int64
}

// Delta is the change one mutation made to one key, shipped to other
// replicas: a fragment of Entry (the new heads and elements, plus the heads
// they hang from and any surviving elements that share a removed dot) and
// Ctx, the dots it covers: its own dot and every dot it removes. A delta
// never covers a dot without carrying everything still alive under it, so a
// replica that applies it may skip the covered mutations later.
type Delta struct {
	frag Entry
	Ctx  []Dot // sorted, unique
}

// builtDelta is a Delta with storage for a local mutation's first heads and
// covered dots, so that building one costs one allocation (newBuilder);
// decoded deltas do not carry it.
type builtDelta struct {
	Delta
	headBuf [2]Head
	ctxBuf  [4]Dot
}

// String formats the delta for debugging.
func (d *Delta) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "delta covers %v:", d.Ctx)
	for _, h := range d.frag.heads.heads {
		fmt.Fprintf(&sb, " head{%s}", h)
	}
	for i := range d.frag.pl {
		fmt.Fprintf(&sb, " payload{%s}", d.frag.pl[i].parent)
	}
	return sb.String()
}

// The mutators below compute a delta from e and mutate nothing: apply it
// with e.ApplyDelta (then add d.Ctx to the replica's Context). A nil delta
// with a nil error means the operation changes nothing (SREM of absent
// members, DEL of a missing key, ...): there is nothing to write and the
// dot may be reused.

// current is the visible state of the key for a mutation.
type current struct {
	w    *Head // winner under the mutation's strategy (nil if none)
	kind Kind  // visible kind at m.Now (KindNone: absent, deleted, expired, empty)
	ttl  int64 // visible expiry (0 if none or the key is not visible)
}

func (e *Entry) current(m *Mut) current {
	w := e.winnerUnder(m.Strategy)
	c := current{w: w, kind: e.kindOf(w, m.Strategy)}
	if c.kind != KindNone {
		t, _ := e.incTTL(w, m.Strategy)
		c.ttl = t.At
		if c.ttl != 0 && m.Now >= c.ttl {
			c.kind, c.ttl = KindNone, 0
		}
	}
	return c
}

// Set is SET key value: an overwrite with a String head. expireAt (Unix ms)
// sets a TTL; with expireAt 0, keepTTL keeps the current TTL (KEEPTTL) and
// otherwise the key persists.
func (e *Entry) Set(m Mut, value []byte, keepTTL bool, expireAt int64) (*Delta, error) {
	if expireAt < 0 {
		return nil, fmt.Errorf("%w: negative expiry time %d", ErrInvalid, expireAt)
	}
	c := e.current(&m)
	ttl := expireAt
	if ttl == 0 && keepTTL {
		ttl = c.ttl
	}
	b := newBuilder(e, m)
	b.overwrite(KindString, cloneBytes(value), ttl)
	return b.finish(), nil
}

// Delete is DEL key: an overwrite with a Deleted head. It is written even
// for an expired key (the store's sweeper deletes expired keys this way) and
// returns nil only if there is nothing but deletes to delete.
func (e *Entry) Delete(m Mut) (*Delta, error) {
	live := false
	for i := range e.heads.heads {
		live = live || e.heads.heads[i].Kind != KindDeleted
	}
	if !live {
		return nil, nil
	}
	b := newBuilder(e, m)
	b.overwrite(KindDeleted, nil, 0)
	return b.finish(), nil
}

// DeleteExpired is the TTL sweeper's delete of an expired key: Delete
// stamped just after the latest write the key had (its heads and TTL
// writes) instead of at the time of the sweep. The expiry belongs to the
// value it ended: a write made elsewhere after that value, concurrently
// with the expiry, is newer and wins under last-writer-wins, however late
// the sweep runs (a hub restarted after an outage sweeps at once).
func (e *Entry) DeleteExpired(m Mut) (*Delta, error) {
	var last Timestamp
	for i := range e.heads.heads {
		last = max(last, e.heads.heads[i].Stamp.TS)
	}
	for i := range e.pl {
		for _, t := range e.pl[i].ttl {
			last = max(last, t.Stamp.TS)
		}
	}
	if last != 0 && last+1 < m.Stamp.TS {
		m.Stamp.TS = last + 1
	}
	return e.Delete(m)
}

// Expire sets the key's expiry time in Unix ms (PEXPIREAT); 0 removes it
// (PERSIST). It returns nil if the key does not exist or the time does not
// change. The TTL belongs to the key's current incarnation: an overwrite
// concurrent with EXPIRE wins over it.
func (e *Entry) Expire(m Mut, at int64) (*Delta, error) {
	if at < 0 {
		return nil, fmt.Errorf("%w: negative expiry time %d", ErrInvalid, at)
	}
	c := e.current(&m)
	if c.kind == KindNone || at == c.ttl {
		return nil, nil
	}
	b := newBuilder(e, m)
	b.remove(func(r *elemRef) bool { return r.class == classTTL && e.inInc(c.w, r.parent) })
	b.cover(m.Dot)
	p := b.payload(c.w.Dot)
	p.ttl = append(p.ttl, ttlElem{Dot: m.Dot, Stamp: m.Stamp, At: at})
	return b.finish(), nil
}

// IncrBy is INCRBY key n (INCR, DECR, DECRBY are n = 1, -1, -n). The key
// must be absent, a counter, or a string holding a canonical int64
// (ErrNotInteger, ErrWrongType); the result must fit in int64
// (ErrOverflow). Under CrdtMerge the increment is a contribution of the
// origin (Dot.Node) to the counter, so concurrent increments add up; under
// the LastWriteWins family it overwrites the key with the new total.
func (e *Entry) IncrBy(m Mut, n int64) (*Delta, error) {
	c := e.current(&m)
	var cur int64
	switch c.kind {
	case KindNone:
	case KindString, KindCounter:
		v, err := e.intOf(c.w, m.Strategy)
		if err != nil {
			return nil, err
		}
		cur = v
	default:
		return nil, ErrWrongType
	}
	next, err := addInt(cur, n)
	if err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	switch {
	case !m.Strategy.Merges():
		b.overwrite(KindCounter, formatInt(next), c.ttl)
	case c.kind == KindCounter && c.w.carriesElements():
		if n == 0 {
			return nil, nil
		}
		var pc PNCounter
		if p := e.payloadOf(c.w.Dot); p != nil {
			pc = p.counter
		}
		dc, err := pc.addTo(m.Dot.Node, n)
		if err != nil {
			return nil, err
		}
		b.cover(m.Dot)
		b.payload(c.w.Dot).counter = dc
	default: // create, or convert a string or whole-value counter
		var src *Head
		if c.kind != KindNone {
			src = c.w
		}
		b.overwrite(KindCounter, nil, c.ttl)
		b.payload(m.Dot).counter = convertedCounter(m.Dot.Node, src, cur, n)
	}
	return b.finish(), nil
}

// builder assembles a Delta for one mutation of e.
type builder struct {
	e    *Entry
	m    Mut
	d    *Delta // the delta being built: storage for frag and ctx
	frag Entry
	ctx  []Dot
}

func newBuilder(e *Entry, m Mut) builder {
	bd := new(builtDelta)
	return builder{e: e, m: m, d: &bd.Delta, ctx: bd.ctxBuf[:0], frag: Entry{heads: LWWRegister{heads: bd.headBuf[:0]}}}
}

func (b *builder) cover(d Dot) { b.ctx = append(b.ctx, d) }

func (b *builder) addHead(h Head) { b.frag.heads.heads = append(b.frag.heads.heads, h) }

// payload returns the fragment's payload of head d. The pointer is valid
// until the next call.
func (b *builder) payload(d Dot) *payload { return b.frag.payloadAt(d) }

// overwrite makes the delta replace the whole key: it covers every dot of
// the entry and adds a new head (with a TTL write if ttl != 0). The caller
// fills the new head's payload (b.payload(b.m.Dot)) if it carries elements.
func (b *builder) overwrite(kind Kind, value []byte, ttl int64) {
	b.e.eachDot(b.cover)
	b.cover(b.m.Dot)
	b.addHead(Head{Dot: b.m.Dot, Stamp: b.m.Stamp, Kind: kind, Value: value})
	if ttl != 0 {
		p := b.payload(b.m.Dot)
		p.ttl = append(p.ttl, ttlElem{Dot: b.m.Dot, Stamp: b.m.Stamp, At: ttl})
	}
}

// elemClass names the kinds of dotted things in an Entry.
type elemClass uint8

const (
	classHead elemClass = iota
	classTTL
	classMember
	classItem
	classField
)

// elemRef identifies one dotted thing of an Entry for remove.
type elemRef struct {
	class  elemClass
	parent Dot // the payload's head (zero for heads)
	dot    Dot
	name   string // member or field name
	seq    uint32 // list item index within its push
	p      *payload
	i, j   int // index of the element (field, head within field)
}

// eachElem calls fn for every dotted thing of e.
func (e *Entry) eachElem(fn func(r *elemRef)) {
	var r elemRef
	for i := range e.heads.heads {
		r = elemRef{class: classHead, dot: e.heads.heads[i].Dot, i: i}
		fn(&r)
	}
	for k := range e.pl {
		p := &e.pl[k]
		for i, t := range p.ttl {
			r = elemRef{class: classTTL, parent: p.parent, dot: t.Dot, p: p, i: i}
			fn(&r)
		}
		for i, m := range p.set.e {
			r = elemRef{class: classMember, parent: p.parent, dot: m.Dot, name: m.Member, p: p, i: i}
			fn(&r)
		}
		for i, it := range p.list.items {
			r = elemRef{class: classItem, parent: p.parent, dot: it.Dot, seq: it.Seq, p: p, i: i}
			fn(&r)
		}
		for i := range p.hash.f {
			f := &p.hash.f[i]
			for j := range f.Reg.heads {
				r = elemRef{class: classField, parent: p.parent, dot: f.Reg.heads[j].Dot, name: f.Name, p: p, i: i, j: j}
				fn(&r)
			}
		}
	}
}

// remove makes the delta remove every dotted thing for which gone returns
// true: it covers their dots, and carries every surviving thing tagged with
// one of those dots (one mutation's dot may tag several members, items or
// fields, and the head it created), so that covering the dot removes
// exactly what was removed. It reports whether anything was removed.
func (b *builder) remove(gone func(r *elemRef) bool) bool {
	var removed []Dot
	b.e.eachElem(func(r *elemRef) {
		if gone(r) {
			removed = append(removed, r.dot)
		}
	})
	if len(removed) == 0 {
		return false
	}
	removed = normalizeDots(removed)
	for _, d := range removed {
		b.cover(d)
	}
	b.e.eachElem(func(r *elemRef) {
		if dotList(removed).Contains(r.dot) && !gone(r) {
			b.carry(r)
		}
	})
	return true
}

// carry copies a surviving dotted thing (and the non-dotted data that hangs
// from it) into the fragment.
func (b *builder) carry(r *elemRef) {
	switch r.class {
	case classHead:
		h := b.e.heads.heads[r.i]
		b.addHead(h)
		if src := b.e.payloadOf(h.Dot); src != nil {
			p := b.payload(h.Dot)
			p.counter.Merge(&src.counter)
			p.agg.Merge(&src.agg)
		}
	case classTTL:
		p := b.payload(r.parent)
		p.ttl = append(p.ttl, r.p.ttl[r.i])
	case classMember:
		p := b.payload(r.parent)
		p.set.e = append(p.set.e, r.p.set.e[r.i])
	case classItem:
		p := b.payload(r.parent)
		p.list.items = append(p.list.items, r.p.list.items[r.i])
	case classField:
		src := &r.p.hash.f[r.i]
		h := src.Reg.heads[r.j]
		f := b.payload(r.parent).hash.fieldAt(src.Name)
		f.Reg.heads = append(f.Reg.heads, h)
		if c := src.counterOf(h.Dot); c != nil {
			f.Ctr = append(f.Ctr, fieldCounter{Head: h.Dot, C: c.Clone()})
		}
	}
}

// finish canonicalises the fragment and returns the delta. Every payload's
// head is included (as a reference if the delta does not cover it), so a
// replica that has not seen that head yet can attach the elements.
func (b *builder) finish() *Delta {
	f := &b.frag
	for i := range f.pl {
		f.pl[i].normalize()
	}
	f.pl = slices.DeleteFunc(f.pl, func(p payload) bool { return p.empty() })
	for i := range f.pl {
		if j := b.e.heads.find(f.pl[i].parent); j >= 0 {
			b.addHead(b.e.heads.heads[j])
		}
	}
	f.heads.heads = sortUnique(f.heads.heads, cmpHead)
	b.d.frag, b.d.Ctx = b.frag, normalizeDots(b.ctx)
	return b.d
}

// normalize sorts a fragment payload's parts and removes duplicates.
func (p *payload) normalize() {
	p.ttl = sortUnique(p.ttl, cmpTTL)
	p.set.e = sortUnique(p.set.e, cmpSetElem)
	p.list.items = sortUnique(p.list.items, cmpItem)
	for i := range p.hash.f {
		f := &p.hash.f[i]
		f.Reg.heads = sortUnique(f.Reg.heads, cmpHead)
		f.Ctr = sortUnique(f.Ctr, cmpFieldCounter)
		for j := range f.Ctr {
			f.Ctr[j].C.c = slices.DeleteFunc(f.Ctr[j].C.c, func(c Contribution) bool { return c.P == 0 && c.N == 0 })
		}
		f.pruneCounters()
	}
	p.counter.c = slices.DeleteFunc(p.counter.c, func(c Contribution) bool { return c.P == 0 && c.N == 0 })
}

// sortUnique sorts s by cmp and removes elements equal under cmp (keeping
// the first). Fragments are small: a stable insertion sort on the slice
// itself avoids copying elements to the heap for every comparison.
func sortUnique[T any](s []T, cmp func(a, b *T) int) []T {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && cmp(&s[j-1], &s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
	w := 0
	for i := range s {
		if w > 0 && cmp(&s[w-1], &s[i]) == 0 {
			continue
		}
		if w != i {
			s[w] = s[i]
		}
		w++
	}
	clear(s[w:])
	return s[:w]
}
