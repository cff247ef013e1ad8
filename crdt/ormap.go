package crdt

import (
	"slices"
	"strings"
)

// ORMap is a map of named fields (a Redis hash). Each field is a slot of its
// own: an LWWRegister of field heads (String, Counter or Deleted) plus, for a
// counter field written under CrdtMerge, a PNCounter per counter head.
// HSET/HDEL overwrite one field (HDEL writes a Deleted head, so a delete
// concurrent with a write is resolved by the strategy, not by arrival
// order); HINCRBY on a counter field adds to it, so concurrent increments
// all count. Fields are independent: concurrent writes to different fields
// never conflict.
//
// Inside an Entry there is one ORMap per hash incarnation. The zero value is
// an empty map.
type ORMap struct {
	f []mapField // sorted by Name; every field has at least one head
}

type mapField struct {
	Name string
	Reg  LWWRegister
	Ctr  []fieldCounter // sorted by Head; each Head is a Counter head in Reg
}

// fieldCounter is the counter of one element-carrying Counter field head.
type fieldCounter struct {
	Head Dot
	C    PNCounter
}

func cmpFieldCounter(a, b *fieldCounter) int { return a.Head.Compare(b.Head) }

// joinFieldCounter merges b into a; a is owned by the caller.
func joinFieldCounter(a, b fieldCounter) fieldCounter {
	a.C.Merge(&b.C)
	return a
}

func adoptFieldCounter(c fieldCounter) fieldCounter {
	c.C = c.C.Clone()
	return c
}

func (m *ORMap) find(name string) (int, bool) {
	return slices.BinarySearchFunc(m.f, name, func(f mapField, n string) int { return strings.Compare(f.Name, n) })
}

// field returns the field named name, or nil.
func (m *ORMap) field(name string) *mapField {
	if i, ok := m.find(name); ok {
		return &m.f[i]
	}
	return nil
}

// fieldAt returns the field named name, adding an empty one if needed.
func (m *ORMap) fieldAt(name string) *mapField {
	i, ok := m.find(name)
	if !ok {
		m.f = slices.Insert(m.f, i, mapField{Name: name})
	}
	return &m.f[i]
}

// Merge joins o into m; ctx and octx are the causal contexts of m and o.
func (m *ORMap) Merge(o *ORMap, ctx, octx DotSet) {
	var none mapField
	m.f = joinNested(m.f, o.f,
		func(a, b *mapField) int { return strings.Compare(a.Name, b.Name) },
		func(dst, src *mapField) {
			if src == nil {
				src = &none
			}
			dst.join(src, ctx, octx)
		},
		func(src *mapField) mapField {
			f := mapField{Name: src.Name}
			f.join(src, ctx, octx)
			return f
		},
		func(f *mapField) bool { return f.Reg.len() == 0 })
}

func (f *mapField) join(o *mapField, ctx, octx DotSet) {
	f.Reg.Merge(&o.Reg, ctx, octx)
	f.Ctr = mergeKeyed(f.Ctr, o.Ctr, cmpFieldCounter, joinFieldCounter, adoptFieldCounter)
	f.pruneCounters()
}

// pruneCounters drops counters whose head is gone and empty counters.
func (f *mapField) pruneCounters() {
	f.Ctr = slices.DeleteFunc(f.Ctr, func(c fieldCounter) bool {
		i := f.Reg.find(c.Head)
		return i < 0 || f.Reg.heads[i].Kind != KindCounter || !f.Reg.heads[i].carriesElements() || len(c.C.c) == 0
	})
}

// counterOf returns the counter of field head d (nil if it has none).
func (f *mapField) counterOf(d Dot) *PNCounter {
	i, ok := slices.BinarySearchFunc(f.Ctr, d, func(c fieldCounter, d Dot) int { return c.Head.Compare(d) })
	if !ok {
		return nil
	}
	return &f.Ctr[i].C
}

// resolve returns the visible value of the field under s: its kind
// (KindNone if absent or deleted) and value (a counter as decimal).
func (f *mapField) resolve(s Strategy) (Kind, []byte, error) {
	w := f.Reg.winner(s)
	if w < 0 {
		return KindNone, nil, nil
	}
	h := &f.Reg.heads[w]
	switch {
	case h.Kind == KindDeleted:
		return KindNone, nil, nil
	case !h.carriesElements():
		return h.Kind, h.Value, nil
	}
	v, err := f.counterValue(h)
	if err != nil {
		return KindCounter, nil, err
	}
	return KindCounter, formatInt(v), nil
}

// counterValue sums the counters of every head in winner w's incarnation.
func (f *mapField) counterValue(w *Head) (int64, error) {
	var sum counterSum
	for i := range f.Reg.heads {
		h := &f.Reg.heads[i]
		if !sameIncarnation(w, h) {
			continue
		}
		if c := f.counterOf(h.Dot); c != nil {
			sum.add(c)
		}
	}
	return sum.int64()
}

// Get returns the value of field under s.
func (m *ORMap) Get(field string, s Strategy) ([]byte, bool, error) {
	f := m.field(field)
	if f == nil {
		return nil, false, nil
	}
	k, v, err := f.resolve(s)
	return v, k != KindNone, err
}

// All returns the visible fields under s, sorted by name.
func (m *ORMap) All(s Strategy) ([]FieldValue, error) {
	var out []FieldValue
	for i := range m.f {
		k, v, err := m.f[i].resolve(s)
		if err != nil {
			return nil, err
		}
		if k != KindNone {
			out = append(out, FieldValue{Field: m.f[i].Name, Value: v})
		}
	}
	return out, nil
}

// any reports whether some field is visible under s.
func (m *ORMap) any(s Strategy) bool {
	for i := range m.f {
		if w := m.f[i].Reg.winner(s); w >= 0 && m.f[i].Reg.heads[w].Kind != KindDeleted {
			return true
		}
	}
	return false
}

// Len returns the number of visible fields under s.
func (m *ORMap) Len(s Strategy) int {
	n := 0
	for i := range m.f {
		if w := m.f[i].Reg.winner(s); w >= 0 && m.f[i].Reg.heads[w].Kind != KindDeleted {
			n++
		}
	}
	return n
}

// Set returns the delta of HSET field value: a new String head for the field
// covering the field heads it observed (siblings written by the same
// mutation are carried along), and the dots it covers.
func (m *ORMap) Set(dot Dot, st Stamp, field string, value []byte) (ORMap, []Dot) {
	return m.overwrite(dot, st, field, KindString, value)
}

// Delete returns the delta of HDEL field: a Deleted head for the field.
func (m *ORMap) Delete(dot Dot, st Stamp, field string) (ORMap, []Dot) {
	return m.overwrite(dot, st, field, KindDeleted, nil)
}

func (m *ORMap) overwrite(dot Dot, st Stamp, field string, kind Kind, value []byte) (ORMap, []Dot) {
	var d ORMap
	covers := []Dot{dot}
	if f := m.field(field); f != nil {
		for i := range f.Reg.heads {
			covers = append(covers, f.Reg.heads[i].Dot)
		}
	}
	covers = normalizeDots(covers)
	// Carry the other fields' heads that share a covered dot.
	for i := range m.f {
		if m.f[i].Name == field {
			continue
		}
		for _, h := range m.f[i].Reg.heads {
			if dotList(covers).Contains(h.Dot) {
				df := d.fieldAt(m.f[i].Name)
				df.Reg.heads = append(df.Reg.heads, h)
				if c := m.f[i].counterOf(h.Dot); c != nil {
					df.Ctr = append(df.Ctr, fieldCounter{Head: h.Dot, C: c.Clone()})
				}
			}
		}
	}
	df := d.fieldAt(field)
	df.Reg.heads = []Head{{Dot: dot, Stamp: st, Kind: kind, Value: cloneBytes(value)}}
	return d, covers
}

// IncrBy returns the delta of HINCRBY field n by origin under strategy s
// (the strategy decides which head is the field's current value). If the
// field is an element-carrying counter, the delta adds to it (referencing
// its head); otherwise it overwrites the field with a new counter head whose
// counter starts at the old value plus n. Errors: ErrNotInteger,
// ErrWrongType-free (fields hold only strings and counters), ErrOverflow.
func (m *ORMap) IncrBy(dot Dot, st Stamp, s Strategy, field string, n int64) (ORMap, []Dot, error) {
	f := m.field(field)
	var cur int64
	var win *Head
	var src *Head // the write converted into a counter
	if f != nil {
		k, v, err := f.resolve(s)
		if err != nil {
			return ORMap{}, nil, err
		}
		if k != KindNone {
			x, ok := parseInt(v)
			if !ok {
				return ORMap{}, nil, ErrNotInteger
			}
			cur = x
			src = &f.Reg.heads[f.Reg.winner(s)]
		}
		if w := f.Reg.winner(s); w >= 0 && f.Reg.heads[w].Kind == KindCounter && f.Reg.heads[w].carriesElements() {
			win = &f.Reg.heads[w]
		}
	}
	if _, err := addInt(cur, n); err != nil {
		return ORMap{}, nil, err
	}
	if win != nil {
		var c PNCounter
		if p := f.counterOf(win.Dot); p != nil {
			c = *p
		}
		dc, err := c.addTo(dot.Node, n)
		if err != nil {
			return ORMap{}, nil, err
		}
		var d ORMap
		df := d.fieldAt(field)
		df.Reg.heads = []Head{*win}
		if len(dc.c) > 0 {
			df.Ctr = []fieldCounter{{Head: win.Dot, C: dc}}
		}
		return d, []Dot{dot}, nil
	}
	d, covers := m.overwrite(dot, st, field, KindCounter, nil)
	if c := convertedCounter(dot.Node, src, cur, n); len(c.c) > 0 {
		df := d.fieldAt(field)
		df.Ctr = []fieldCounter{{Head: dot, C: c}}
	}
	return d, covers, nil
}

// counterFrom returns a counter whose value is v, contributed by origin.
func counterFrom(origin string, v int64) PNCounter {
	switch {
	case v > 0:
		return PNCounter{c: []Contribution{{Origin: origin, P: uint64(v)}}}
	case v < 0:
		return PNCounter{c: []Contribution{{Origin: origin, N: negAbs(v)}}}
	}
	return PNCounter{}
}

// Clone returns a deep copy of m (values are shared: immutable).
func (m *ORMap) Clone() ORMap {
	out := ORMap{f: slices.Clone(m.f)}
	for i := range out.f {
		out.f[i].Reg = out.f[i].Reg.Clone()
		out.f[i].Ctr = slices.Clone(out.f[i].Ctr)
		for j := range out.f[i].Ctr {
			out.f[i].Ctr[j].C = out.f[i].Ctr[j].C.Clone()
		}
	}
	return out
}
