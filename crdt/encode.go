package crdt

import (
	"encoding/binary"
	"slices"
)

// Binary format (version 1) of an Entry:
//
//	entry   = 0x01 strategy nodes body
//	delta   = 0x01 nodes body ctx
//	nodes   = count { string }            node ids, strictly ascending, all used
//	body    = count { head } count { payload }
//	head    = stamped value               heads strictly ascending by dot
//	stamped = dot ts:u64be flags [stampNode]
//	          flags: bits 0-3 kind (or list side), bit 4 role, bit 5 stamp
//	          node differs from dot node (then stampNode follows)
//	dot     = node:uvarint counter:uvarint
//	payload = headIndex ttls parts        head indexes strictly ascending
//	ttls    = count { stamped at:varint }
//	parts   = according to the head's kind, if it carries elements:
//	          counter: count { origin P N }
//	          set:     count { member count { dot } }
//	          list:    count { stamped seq value }
//	          hash:    count { field count { head } count { headIndex count { origin P N } } }
//	          aggregate: count { origin version count sum:f64 min:f64 max:f64 first:varint last:varint }
//	ctx     = count { node count first:uvarint { gap:uvarint } }
//
// Strings and values are uvarint-length-prefixed. Node ids appear once, in
// the table; a dot costs a table index (1 byte) and its counter.

const (
	flagKindMask  = 0x0f
	flagRole      = 0x10
	flagOtherNode = 0x20
)

// nodeTable interns node ids for one encoding. Most values name one or
// two nodes: the first names live in buf, so encoding them does not
// allocate (a slice into buf stored in the table itself would make every
// table escape to the heap, hence the count and the overflow slice).
type nodeTable struct {
	buf  [4]string
	n    int      // names in buf, while more is nil
	more []string // all names, once buf is full
}

// list returns the table's names.
func (t *nodeTable) list() []string {
	if t.more != nil {
		return t.more
	}
	return t.buf[:t.n]
}

// add records n. Values name few nodes, usually repeatedly, so a short
// table is kept free of repeats as it grows.
func (t *nodeTable) add(n string) {
	names := t.list()
	if len(names) <= 16 {
		for _, x := range names {
			if x == n {
				return
			}
		}
	}
	switch {
	case t.more != nil:
		t.more = append(t.more, n)
	case t.n < len(t.buf):
		t.buf[t.n] = n
		t.n++
	default:
		t.more = append(append(make([]string, 0, 2*len(t.buf)), t.buf[:]...), n)
	}
}

func (t *nodeTable) seal() {
	if t.more != nil {
		slices.Sort(t.more)
		t.more = slices.Compact(t.more)
		return
	}
	names := t.buf[:t.n]
	slices.Sort(names)
	t.n = len(slices.Compact(names))
}

func (t *nodeTable) index(n string) uint64 {
	i, _ := slices.BinarySearch(t.list(), n)
	return uint64(i)
}

// eachNode calls fn with every node id e refers to.
func (e *Entry) eachNode(fn func(string)) {
	for _, h := range e.heads.heads {
		fn(h.Dot.Node)
		fn(h.Stamp.Node)
	}
	for i := range e.pl {
		p := &e.pl[i]
		for _, t := range p.ttl {
			fn(t.Dot.Node)
			fn(t.Stamp.Node)
		}
		for _, c := range p.counter.c {
			fn(c.Origin)
		}
		for _, m := range p.set.e {
			fn(m.Dot.Node)
		}
		for _, it := range p.list.items {
			fn(it.Dot.Node)
			fn(it.Stamp.Node)
		}
		for _, f := range p.hash.f {
			for _, h := range f.Reg.heads {
				fn(h.Dot.Node)
				fn(h.Stamp.Node)
			}
			for _, fc := range f.Ctr {
				for _, c := range fc.C.c {
					fn(c.Origin)
				}
			}
		}
		for _, a := range p.agg.p {
			fn(a.Origin)
		}
	}
}

// AppendBinary appends the canonical encoding of e.
func (e *Entry) AppendBinary(b []byte) []byte {
	var t nodeTable
	e.eachNode(t.add)
	t.seal()
	b = append(b, formatV1, byte(e.strategy))
	b = t.appendTable(b)
	return e.appendBody(b, &t)
}

// AppendBinary appends the canonical encoding of d.
func (d *Delta) AppendBinary(b []byte) []byte {
	var t nodeTable
	d.frag.eachNode(t.add)
	for _, c := range d.Ctx {
		t.add(c.Node)
	}
	t.seal()
	b = append(b, formatV1)
	b = t.appendTable(b)
	b = d.frag.appendBody(b, &t)
	b = appendUvarint(b, uint64(countNodes(d.Ctx)))
	for i := 0; i < len(d.Ctx); {
		j := i
		for j < len(d.Ctx) && d.Ctx[j].Node == d.Ctx[i].Node {
			j++
		}
		b = appendUvarint(b, t.index(d.Ctx[i].Node))
		b = appendCounters(b, d.Ctx[i:j])
		i = j
	}
	return b
}

func (t *nodeTable) appendTable(b []byte) []byte {
	names := t.list()
	b = appendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = appendString(b, n)
	}
	return b
}

func (t *nodeTable) appendDot(b []byte, d Dot) []byte {
	b = appendUvarint(b, t.index(d.Node))
	return appendUvarint(b, d.Counter)
}

func (t *nodeTable) appendStamped(b []byte, d Dot, st Stamp, low byte) []byte {
	b = t.appendDot(b, d)
	b = binary.BigEndian.AppendUint64(b, uint64(st.TS))
	flags := low
	if st.Role == RoleHub {
		flags |= flagRole
	}
	if st.Node != d.Node {
		flags |= flagOtherNode
	}
	b = append(b, flags)
	if st.Node != d.Node {
		b = appendUvarint(b, t.index(st.Node))
	}
	return b
}

func (t *nodeTable) appendHead(b []byte, h *Head) []byte {
	b = t.appendStamped(b, h.Dot, h.Stamp, byte(h.Kind))
	return appendBytes(b, h.Value)
}

func (t *nodeTable) appendContributions(b []byte, cs []Contribution) []byte {
	b = appendUvarint(b, uint64(len(cs)))
	for _, c := range cs {
		b = appendUvarint(b, t.index(c.Origin))
		b = appendUvarint(b, c.P)
		b = appendUvarint(b, c.N)
	}
	return b
}

func (e *Entry) appendBody(b []byte, t *nodeTable) []byte {
	b = t.appendHeads(b, e.heads.heads)
	b = appendUvarint(b, uint64(len(e.pl)))
	for i := range e.pl {
		p := &e.pl[i]
		hi := e.heads.find(p.parent)
		b = appendUvarint(b, uint64(hi))
		b = appendUvarint(b, uint64(len(p.ttl)))
		for _, x := range p.ttl {
			b = t.appendStamped(b, x.Dot, x.Stamp, 0)
			b = appendVarint(b, x.At)
		}
		if h := &e.heads.heads[hi]; h.carriesElements() {
			b = p.appendParts(b, t, h.Kind)
		}
	}
	return b
}

func (p *payload) appendParts(b []byte, t *nodeTable, k Kind) []byte {
	switch k {
	case KindCounter:
		b = t.appendContributions(b, p.counter.c)
	case KindSet:
		b = t.appendSet(b, &p.set)
	case KindList:
		b = t.appendList(b, &p.list)
	case KindHash:
		b = t.appendMap(b, &p.hash)
	case KindAggregate:
		b = t.appendAggregate(b, &p.agg)
	}
	return b
}

func (t *nodeTable) appendSet(b []byte, s *ORSet) []byte {
	b = appendUvarint(b, uint64(s.Len()))
	for i := 0; i < len(s.e); {
		j := i
		for j < len(s.e) && s.e[j].Member == s.e[i].Member {
			j++
		}
		b = appendString(b, s.e[i].Member)
		b = appendUvarint(b, uint64(j-i))
		for _, m := range s.e[i:j] {
			b = t.appendDot(b, m.Dot)
		}
		i = j
	}
	return b
}

func (t *nodeTable) appendList(b []byte, l *List) []byte {
	b = appendUvarint(b, uint64(len(l.items)))
	for _, it := range l.items {
		b = t.appendStamped(b, it.Dot, it.Stamp, byte(it.Side))
		b = appendUvarint(b, uint64(it.Seq))
		b = appendBytes(b, it.Value)
	}
	return b
}

func (t *nodeTable) appendMap(b []byte, m *ORMap) []byte {
	b = appendUvarint(b, uint64(len(m.f)))
	for i := range m.f {
		f := &m.f[i]
		b = appendString(b, f.Name)
		b = t.appendHeads(b, f.Reg.heads)
		b = appendUvarint(b, uint64(len(f.Ctr)))
		for _, fc := range f.Ctr {
			b = appendUvarint(b, uint64(f.Reg.find(fc.Head)))
			b = t.appendContributions(b, fc.C.c)
		}
	}
	return b
}

func (t *nodeTable) appendHeads(b []byte, hs []Head) []byte {
	b = appendUvarint(b, uint64(len(hs)))
	for i := range hs {
		b = t.appendHead(b, &hs[i])
	}
	return b
}

func (t *nodeTable) appendAggregate(b []byte, a *Aggregate) []byte {
	b = appendUvarint(b, uint64(len(a.p)))
	for _, x := range a.p {
		b = appendUvarint(b, t.index(x.Origin))
		b = appendUvarint(b, x.Version)
		b = appendUvarint(b, x.Count)
		b = appendFloat(b, x.Sum)
		b = appendFloat(b, x.Min)
		b = appendFloat(b, x.Max)
		b = appendVarint(b, x.FirstTS)
		b = appendVarint(b, x.LastTS)
	}
	return b
}
