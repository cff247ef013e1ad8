package crdt

import (
	"fmt"
	"slices"
	"strings"
)

// HSet is HSET key field value.
func (e *Entry) HSet(m Mut, field string, value []byte) (*Delta, error) {
	return e.HSetMulti(m, []FieldValue{{Field: field, Value: value}})
}

// HSetMulti is HSET key field value [field value ...] as one mutation (a
// repeated field takes its last value). Each field is an overwrite of that
// field: concurrent HSETs of one field are resolved by the strategy (and
// reported as a conflict), of different fields both apply.
func (e *Entry) HSetMulti(m Mut, fields []FieldValue) (*Delta, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: HSET without fields", ErrInvalid)
	}
	fvs := sortFields(fields)
	for i := range fvs {
		fvs[i].Value = cloneBytes(fvs[i].Value)
	}
	c := e.current(&m)
	if err := c.check(KindHash); err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	if c.merging(&m, KindHash) {
		b.removeFields(&c, func(name string) bool {
			_, ok := slices.BinarySearchFunc(fvs, name, cmpFieldName)
			return ok
		})
		b.cover(m.Dot)
		p := b.payload(c.w.Dot)
		for _, fv := range fvs {
			f := p.hash.fieldAt(fv.Field)
			f.Reg.heads = append(f.Reg.heads, Head{Dot: m.Dot, Stamp: m.Stamp, Kind: KindString, Value: fv.Value})
		}
		return b.finish(), nil
	}
	old, err := e.visibleFields(&c, &m)
	if err != nil {
		return nil, err
	}
	b.writeHash(mergeFieldValues(old, fvs), nil, c.ttl)
	return b.finish(), nil
}

// HDel is HDEL key fields...; it returns nil if no field is present. Each
// deleted field gets a Deleted head, so an HDEL concurrent with an HSET of
// the field is resolved by the strategy. A hash whose fields are all
// deleted no longer exists.
func (e *Entry) HDel(m Mut, fields ...string) (*Delta, error) {
	c := e.current(&m)
	if err := c.check(KindHash); err != nil || c.kind == KindNone {
		return nil, err
	}
	old, err := e.visibleFields(&c, &m)
	if err != nil {
		return nil, err
	}
	gone := make(map[string]bool, len(fields))
	for _, f := range fields {
		if _, ok := slices.BinarySearchFunc(old, f, cmpFieldName); ok {
			gone[f] = true
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	b := newBuilder(e, m)
	if c.merging(&m, KindHash) {
		b.removeFields(&c, func(name string) bool { return gone[name] })
		b.cover(m.Dot)
		p := b.payload(c.w.Dot)
		for name := range gone {
			f := p.hash.fieldAt(name)
			f.Reg.heads = append(f.Reg.heads, Head{Dot: m.Dot, Stamp: m.Stamp, Kind: KindDeleted, Value: []byte{}})
		}
		return b.finish(), nil
	}
	b.writeHash(slices.DeleteFunc(old, func(f FieldValue) bool { return gone[f.Field] }), nil, c.ttl)
	return b.finish(), nil
}

// HIncrBy is HINCRBY key field n. The field must be absent, a counter, or a
// canonical integer string (ErrNotInteger); the result must fit in int64
// (ErrOverflow). Under CrdtMerge a counter field merges like a PNCounter.
func (e *Entry) HIncrBy(m Mut, field string, n int64) (*Delta, error) {
	c := e.current(&m)
	if err := c.check(KindHash); err != nil {
		return nil, err
	}
	if c.merging(&m, KindHash) {
		return e.hincrMerge(&c, m, field, n)
	}
	old, err := e.visibleFields(&c, &m)
	if err != nil {
		return nil, err
	}
	var cur int64
	var conv *Head // the whole-value hash whose field becomes a counter
	if i, ok := slices.BinarySearchFunc(old, field, cmpFieldName); ok {
		v, ok := parseInt(old[i].Value)
		if !ok {
			return nil, ErrNotInteger
		}
		cur, conv = v, c.w
	}
	next, err := addInt(cur, n)
	if err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	if !m.Strategy.Merges() {
		b.writeHash(mergeFieldValues(old, []FieldValue{{Field: field, Value: formatInt(next)}}), nil, c.ttl)
	} else {
		b.writeHash(old, &counterInit{field: field, src: conv, base: cur, n: n}, c.ttl)
	}
	return b.finish(), nil
}

// hincrMerge is HINCRBY on an element-carrying hash under CrdtMerge.
func (e *Entry) hincrMerge(c *current, m Mut, field string, n int64) (*Delta, error) {
	u := e.incHash(c.w)
	f := u.field(field)
	var cur int64
	var fw *Head
	var conv *Head // the field write converted into a counter
	if f != nil {
		k, v, err := f.resolve(m.Strategy)
		if err != nil {
			return nil, err
		}
		if k != KindNone {
			x, ok := parseInt(v)
			if !ok {
				return nil, ErrNotInteger
			}
			cur = x
			conv = &f.Reg.heads[f.Reg.winner(m.Strategy)]
		}
		if w := f.Reg.winner(m.Strategy); w >= 0 && f.Reg.heads[w].Kind == KindCounter && f.Reg.heads[w].carriesElements() {
			fw = &f.Reg.heads[w]
		}
	}
	if _, err := addInt(cur, n); err != nil {
		return nil, err
	}
	b := newBuilder(e, m)
	if fw == nil {
		b.removeFields(c, func(name string) bool { return name == field })
		b.cover(m.Dot)
		nf := b.payload(c.w.Dot).hash.fieldAt(field)
		nf.Reg.heads = append(nf.Reg.heads, Head{Dot: m.Dot, Stamp: m.Stamp, Kind: KindCounter, Value: []byte{}})
		if ctr := convertedCounter(m.Dot.Node, conv, cur, n); len(ctr.c) > 0 {
			nf.Ctr = append(nf.Ctr, fieldCounter{Head: m.Dot, C: ctr})
		}
		return b.finish(), nil
	}
	if n == 0 {
		return nil, nil
	}
	// Add to the winning counter head's own counter, in the payload that
	// holds that head (one of the incarnation's).
	var src *payload
	var pc PNCounter
	e.eachIncPayload(c.w, func(p *payload) {
		if sf := p.hash.field(field); sf != nil && sf.Reg.find(fw.Dot) >= 0 {
			src = p
			if x := sf.counterOf(fw.Dot); x != nil {
				pc = *x
			}
		}
	})
	dc, err := pc.addTo(m.Dot.Node, n)
	if err != nil {
		return nil, err
	}
	b.cover(m.Dot)
	nf := b.payload(src.parent).hash.fieldAt(field)
	nf.Reg.heads = append(nf.Reg.heads, *fw) // reference
	nf.Ctr = append(nf.Ctr, fieldCounter{Head: fw.Dot, C: dc})
	return b.finish(), nil
}

// removeFields makes the delta remove every head of the named fields in the
// current incarnation.
func (b *builder) removeFields(c *current, named func(string) bool) {
	b.remove(func(r *elemRef) bool {
		return r.class == classField && named(r.name) && b.e.inInc(c.w, r.parent)
	})
}

func (e *Entry) visibleFields(c *current, m *Mut) ([]FieldValue, error) {
	if c.kind == KindNone {
		return nil, nil
	}
	return e.hashOf(c.w, m.Strategy)
}

// counterInit is a counter field to create with a value.
// counterInit is a counter field written with a whole hash: base (the
// value of the field in write src, nil if none) plus n.
type counterInit struct {
	field   string
	src     *Head
	base, n int64
}

// writeHash overwrites the key with the hash fvs (sorted), in the
// representation of the mutation's strategy. Under CrdtMerge, ctr (if not
// nil) is written as a counter field (replacing a field of that name in
// fvs).
func (b *builder) writeHash(fvs []FieldValue, ctr *counterInit, ttl int64) {
	switch {
	case len(fvs) == 0 && ctr == nil:
		b.overwrite(KindDeleted, nil, 0)
	case !b.m.Strategy.Merges():
		b.overwrite(KindHash, encodeHashValue(fvs), ttl)
	default:
		b.overwrite(KindHash, nil, ttl)
		p := b.payload(b.m.Dot)
		for _, fv := range fvs {
			if ctr != nil && fv.Field == ctr.field {
				continue
			}
			f := p.hash.fieldAt(fv.Field)
			f.Reg.heads = append(f.Reg.heads, Head{Dot: b.m.Dot, Stamp: b.m.Stamp, Kind: KindString, Value: fv.Value})
		}
		if ctr != nil {
			f := p.hash.fieldAt(ctr.field)
			f.Reg.heads = append(f.Reg.heads, Head{Dot: b.m.Dot, Stamp: b.m.Stamp, Kind: KindCounter, Value: []byte{}})
			if c := convertedCounter(b.m.Dot.Node, ctr.src, ctr.base, ctr.n); len(c.c) > 0 {
				f.Ctr = append(f.Ctr, fieldCounter{Head: b.m.Dot, C: c})
			}
		}
	}
}

func cmpFieldName(f FieldValue, name string) int { return strings.Compare(f.Field, name) }

// mergeFieldValues returns old (sorted) with the fields of upd (sorted)
// set.
func mergeFieldValues(old, upd []FieldValue) []FieldValue {
	out := make([]FieldValue, 0, len(old)+len(upd))
	i, j := 0, 0
	for i < len(old) || j < len(upd) {
		switch {
		case j == len(upd) || (i < len(old) && old[i].Field < upd[j].Field):
			out = append(out, old[i])
			i++
		case i == len(old) || upd[j].Field < old[i].Field:
			out = append(out, upd[j])
			j++
		default:
			out = append(out, upd[j])
			i, j = i+1, j+1
		}
	}
	return out
}
