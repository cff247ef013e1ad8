package crdt

// Standalone encodings of the building blocks. Each is the format byte, a
// type tag (so one block's encoding is never mistaken for another's), the
// node table, and the block's body exactly as it appears inside an Entry
// (see encode.go). Decoders are as strict as DecodeEntry.

const (
	tagRegister  = 'R'
	tagCounter   = 'C'
	tagSet       = 'S'
	tagList      = 'L'
	tagMap       = 'M'
	tagAggregate = 'A'
)

func appendBlock(b []byte, tag byte, nodes func(func(string)), body func([]byte, *nodeTable) []byte) []byte {
	var t nodeTable
	nodes(t.add)
	t.seal()
	b = append(b, formatV1, tag)
	b = t.appendTable(b)
	return body(b, &t)
}

func decodeBlock(b []byte, tag byte, what string, body func(*entryDecoder)) error {
	d := entryDecoder{decoder: newOwnedDecoder(b)}
	d.version(what)
	if t := d.byte(); d.err == nil && t != tag {
		d.failf("%s: wrong type tag %q", what, t)
	}
	d.table()
	if d.err == nil {
		body(&d)
	}
	d.checkUsed()
	return d.finish()
}

func headNodes(hs []Head, fn func(string)) {
	for _, h := range hs {
		fn(h.Dot.Node)
		fn(h.Stamp.Node)
	}
}

// AppendBinary appends the canonical encoding of r.
func (r *LWWRegister) AppendBinary(b []byte) []byte {
	return appendBlock(b, tagRegister, func(fn func(string)) { headNodes(r.heads, fn) },
		func(b []byte, t *nodeTable) []byte { return t.appendHeads(b, r.heads) })
}

// DecodeLWWRegister decodes the encoding made by LWWRegister.AppendBinary.
func DecodeLWWRegister(b []byte) (*LWWRegister, error) {
	r := &LWWRegister{}
	if err := decodeBlock(b, tagRegister, "register", func(d *entryDecoder) { r.heads = d.heads(false, false) }); err != nil {
		return nil, err
	}
	return r, nil
}

// AppendBinary appends the canonical encoding of c.
func (c *PNCounter) AppendBinary(b []byte) []byte {
	return appendBlock(b, tagCounter, func(fn func(string)) {
		for _, x := range c.c {
			fn(x.Origin)
		}
	}, func(b []byte, t *nodeTable) []byte { return t.appendContributions(b, c.c) })
}

// DecodePNCounter decodes the encoding made by PNCounter.AppendBinary.
func DecodePNCounter(b []byte) (*PNCounter, error) {
	c := &PNCounter{}
	if err := decodeBlock(b, tagCounter, "counter", func(d *entryDecoder) { c.c = d.contributions(0) }); err != nil {
		return nil, err
	}
	return c, nil
}

// AppendBinary appends the canonical encoding of s.
func (s *ORSet) AppendBinary(b []byte) []byte {
	return appendBlock(b, tagSet, func(fn func(string)) {
		for _, m := range s.e {
			fn(m.Dot.Node)
		}
	}, func(b []byte, t *nodeTable) []byte { return t.appendSet(b, s) })
}

// DecodeORSet decodes the encoding made by ORSet.AppendBinary.
func DecodeORSet(b []byte) (*ORSet, error) {
	s := &ORSet{}
	if err := decodeBlock(b, tagSet, "set", func(d *entryDecoder) { d.set(s) }); err != nil {
		return nil, err
	}
	return s, nil
}

// AppendBinary appends the canonical encoding of l.
func (l *List) AppendBinary(b []byte) []byte {
	return appendBlock(b, tagList, func(fn func(string)) {
		for _, it := range l.items {
			fn(it.Dot.Node)
			fn(it.Stamp.Node)
		}
	}, func(b []byte, t *nodeTable) []byte { return t.appendList(b, l) })
}

// DecodeList decodes the encoding made by List.AppendBinary.
func DecodeList(b []byte) (*List, error) {
	l := &List{}
	if err := decodeBlock(b, tagList, "list", func(d *entryDecoder) { d.list(l) }); err != nil {
		return nil, err
	}
	return l, nil
}

// AppendBinary appends the canonical encoding of m.
func (m *ORMap) AppendBinary(b []byte) []byte {
	return appendBlock(b, tagMap, func(fn func(string)) {
		for _, f := range m.f {
			headNodes(f.Reg.heads, fn)
			for _, fc := range f.Ctr {
				for _, x := range fc.C.c {
					fn(x.Origin)
				}
			}
		}
	}, func(b []byte, t *nodeTable) []byte { return t.appendMap(b, m) })
}

// DecodeORMap decodes the encoding made by ORMap.AppendBinary.
func DecodeORMap(b []byte) (*ORMap, error) {
	m := &ORMap{}
	if err := decodeBlock(b, tagMap, "map", func(d *entryDecoder) { d.orMap(m) }); err != nil {
		return nil, err
	}
	return m, nil
}

// AppendBinary appends the canonical encoding of a.
func (a *Aggregate) AppendBinary(b []byte) []byte {
	return appendBlock(b, tagAggregate, func(fn func(string)) {
		for _, x := range a.p {
			fn(x.Origin)
		}
	}, func(b []byte, t *nodeTable) []byte { return t.appendAggregate(b, a) })
}

// DecodeAggregate decodes the encoding made by Aggregate.AppendBinary.
func DecodeAggregate(b []byte) (*Aggregate, error) {
	a := &Aggregate{}
	if err := decodeBlock(b, tagAggregate, "aggregate", func(d *entryDecoder) { d.aggregate(a) }); err != nil {
		return nil, err
	}
	return a, nil
}
