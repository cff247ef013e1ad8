package crdt

import (
	"fmt"
	"slices"
)

// Collection mutators. Each has three shapes:
//   - LastWriteWins family: compute the whole new value and overwrite the
//     key with it (an emptied collection becomes a Deleted head);
//   - CrdtMerge on an element-carrying incarnation: add or remove elements
//     under the winning head, so concurrent updates merge;
//   - CrdtMerge on a missing key, or on a whole-value head (written while
//     the key's strategy was another one): overwrite with a new
//     element-carrying head holding the resulting collection.
// A collection operation on a key of another kind is ErrWrongType.

func (c *current) check(k Kind) error {
	if c.kind != KindNone && c.kind != k {
		return ErrWrongType
	}
	return nil
}

// merging reports whether the mutation updates the elements of the current
// incarnation (rather than overwriting the key).
func (c *current) merging(m *Mut, k Kind) bool {
	return m.Strategy.Merges() && c.kind == k && c.w.carriesElements()
}

// SAdd is SADD key members...; it returns nil if every member is present.
func (e *Entry) SAdd(m Mut, members ...string) (*Delta, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: SADD without members", ErrInvalid)
	}
	c := e.current(&m)
	if err := c.check(KindSet); err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	if c.merging(&m, KindSet) {
		// Every member gets the new dot, present or not: adding a member
		// again is what makes it survive a concurrent SREM, which removes
		// only the dots it observed (add-wins). Its old dots are dropped
		// where that is free: a dot that tags nothing else. A dot shared
		// with other members (one SADD of many) stays, or the delta would
		// have to carry all of them; a member thus holds at most that one
		// shared dot and its latest own.
		u := e.incSet(c.w)
		named := make(map[string]bool, len(members))
		present := false
		for _, s := range members {
			named[s] = true
			present = present || u.Contains(s)
		}
		if present { // a re-add: scan for the old dots (new members need none)
			tags := make(map[Dot]int) // the named members' dots: how many things each tags
			e.eachElem(func(r *elemRef) {
				if r.class == classMember && named[r.name] {
					tags[r.dot] = 0
				}
			})
			e.eachElem(func(r *elemRef) {
				if n, ok := tags[r.dot]; ok {
					tags[r.dot] = n + 1
				}
			})
			b.remove(func(r *elemRef) bool {
				return r.class == classMember && named[r.name] && tags[r.dot] == 1 && e.inInc(c.w, r.parent)
			})
		}
		b.cover(m.Dot)
		p := b.payload(c.w.Dot)
		for s := range named {
			p.set.e = append(p.set.e, setElem{Member: s, Dot: m.Dot})
		}
		return b.finish(), nil
	}
	old, err := e.visibleMembers(&c, &m)
	if err != nil {
		return nil, err
	}
	all := unionSorted(old, members)
	if c.kind == KindSet && len(all) == len(old) {
		return nil, nil
	}
	b.writeSet(all, c.ttl)
	return b.finish(), nil
}

// SRem is SREM key members...; it returns nil if no member is present.
func (e *Entry) SRem(m Mut, members ...string) (*Delta, error) {
	c := e.current(&m)
	if err := c.check(KindSet); err != nil || c.kind == KindNone {
		return nil, err
	}
	old, err := e.visibleMembers(&c, &m)
	if err != nil {
		return nil, err
	}
	gone := make(map[string]bool, len(members))
	for _, s := range members {
		if _, ok := slices.BinarySearch(old, s); ok {
			gone[s] = true
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	b := newBuilder(e, m)
	if c.merging(&m, KindSet) {
		b.remove(func(r *elemRef) bool {
			return r.class == classMember && gone[r.name] && e.inInc(c.w, r.parent)
		})
		b.cover(m.Dot)
		return b.finish(), nil
	}
	b.writeSet(slices.DeleteFunc(old, func(s string) bool { return gone[s] }), c.ttl)
	return b.finish(), nil
}

func (e *Entry) visibleMembers(c *current, m *Mut) ([]string, error) {
	if c.kind == KindNone {
		return nil, nil
	}
	return e.membersOf(c.w, m.Strategy)
}

// writeSet overwrites the key with the set all (sorted), in the
// representation of the mutation's strategy.
func (b *builder) writeSet(all []string, ttl int64) {
	switch {
	case len(all) == 0:
		b.overwrite(KindDeleted, nil, 0)
	case !b.m.Strategy.Merges():
		b.overwrite(KindSet, encodeSetValue(all), ttl)
	default:
		b.overwrite(KindSet, nil, ttl)
		p := b.payload(b.m.Dot)
		for _, s := range all {
			p.set.e = append(p.set.e, setElem{Member: s, Dot: b.m.Dot})
		}
	}
}

// unionSorted returns the sorted union of a sorted slice and more.
func unionSorted(sorted []string, more []string) []string {
	out := append(slices.Clone(sorted), more...)
	slices.Sort(out)
	return slices.Compact(out)
}

// LPush is LPUSH key values...: the values are pushed to the head one
// after the other (so the last ends up first).
func (e *Entry) LPush(m Mut, values ...[]byte) (*Delta, error) {
	return e.push(m, SideHead, values)
}

// RPush is RPUSH key values...: the values are appended to the tail.
func (e *Entry) RPush(m Mut, values ...[]byte) (*Delta, error) {
	return e.push(m, SideTail, values)
}

func (e *Entry) push(m Mut, side Side, values [][]byte) (*Delta, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("%w: push without values", ErrInvalid)
	}
	c := e.current(&m)
	if err := c.check(KindList); err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	if c.merging(&m, KindList) {
		b.cover(m.Dot)
		b.payload(c.w.Dot).list.items = newItems(m.Dot, m.Stamp, side, 0, values)
		return b.finish(), nil
	}
	var old [][]byte
	if c.kind == KindList {
		var err error
		if old, err = e.listOf(c.w, m.Strategy); err != nil {
			return nil, err
		}
	}
	if !m.Strategy.Merges() {
		all := make([][]byte, 0, len(old)+len(values))
		if side == SideHead {
			for i := len(values) - 1; i >= 0; i-- {
				all = append(all, values[i])
			}
			all = append(all, old...)
		} else {
			all = append(append(all, old...), values...)
		}
		b.overwrite(KindList, encodeListValue(all), c.ttl)
		return b.finish(), nil
	}
	b.overwrite(KindList, nil, c.ttl)
	b.payload(m.Dot).list.items = append(newItems(m.Dot, m.Stamp, SideTail, 0, old),
		newItems(m.Dot, m.Stamp, side, uint32(len(old)), values)...)
	return b.finish(), nil
}

// LTrim is LTRIM key start stop (Redis index rules). It returns nil if
// nothing is removed. Under CrdtMerge it removes the items it observed
// outside the range; items pushed concurrently are kept.
func (e *Entry) LTrim(m Mut, start, stop int64) (*Delta, error) {
	c := e.current(&m)
	if err := c.check(KindList); err != nil || c.kind == KindNone {
		return nil, err
	}
	b := newBuilder(e, m)
	if c.merging(&m, KindList) {
		l := e.incList(c.w)
		lo, hi := redisRange(start, stop, l.Len())
		if lo == 0 && hi == l.Len() {
			return nil, nil
		}
		type itemID struct {
			dot Dot
			seq uint32
		}
		gone := make(map[itemID]bool, l.Len()-(hi-lo))
		for i, it := range l.items {
			if i < lo || i >= hi {
				gone[itemID{it.Dot, it.Seq}] = true
			}
		}
		b.remove(func(r *elemRef) bool {
			return r.class == classItem && gone[itemID{r.dot, r.seq}] && e.inInc(c.w, r.parent)
		})
		b.cover(m.Dot)
		return b.finish(), nil
	}
	old, err := e.listOf(c.w, m.Strategy)
	if err != nil {
		return nil, err
	}
	lo, hi := redisRange(start, stop, len(old))
	if lo == 0 && hi == len(old) {
		return nil, nil
	}
	kept := old[lo:hi]
	switch {
	case len(kept) == 0:
		b.overwrite(KindDeleted, nil, 0)
	case !m.Strategy.Merges():
		b.overwrite(KindList, encodeListValue(kept), c.ttl)
	default:
		b.overwrite(KindList, nil, c.ttl)
		b.payload(m.Dot).list.items = newItems(m.Dot, m.Stamp, SideTail, 0, kept)
	}
	return b.finish(), nil
}

// AggregateAdd replaces the origin's (Dot.Node's) partial of an aggregate
// key with p, its whole summary so far (see Aggregate.Add for Version).
// Aggregates merge per origin under every strategy.
func (e *Entry) AggregateAdd(m Mut, p Partial) (*Delta, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := e.current(&m)
	if err := c.check(KindAggregate); err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	if c.kind == KindAggregate {
		da, err := e.incAgg(c.w).Add(m.Dot.Node, p)
		if err != nil {
			return nil, err
		}
		b.cover(m.Dot)
		b.payload(c.w.Dot).agg = da
		return b.finish(), nil
	}
	var none Aggregate
	da, err := none.Add(m.Dot.Node, p)
	if err != nil {
		return nil, err
	}
	b.overwrite(KindAggregate, nil, 0)
	b.payload(m.Dot).agg = da
	return b.finish(), nil
}
