package crdt

import (
	"cmp"
	"math"
)

// DecodeEntry decodes the encoding made by Entry.AppendBinary. It accepts
// only canonical encodings of valid entries and returns ErrCorrupt for
// anything else. The result does not alias b.
func DecodeEntry(b []byte) (*Entry, error) {
	d := entryDecoder{decoder: newOwnedDecoder(b)}
	d.version("entry")
	e := &Entry{strategy: Strategy(d.byte())}
	if d.err == nil && !e.strategy.Valid() {
		d.failf("unknown strategy %d", e.strategy)
	}
	d.table()
	d.body(e)
	d.checkUsed()
	if err := d.finish(); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeDelta decodes the encoding made by Delta.AppendBinary, with the
// same guarantees as DecodeEntry.
func DecodeDelta(b []byte) (*Delta, error) {
	d := entryDecoder{decoder: newOwnedDecoder(b)}
	d.version("delta")
	d.table()
	dl := &Delta{}
	d.body(&dl.frag)
	groups := d.count(3)
	prev := -1
	for range groups {
		i := d.nodeIndex()
		if d.err != nil {
			break
		}
		if i <= prev {
			d.failf("delta context nodes not sorted")
			break
		}
		prev = i
		decodeCounters(&d.decoder, func(n uint64) {
			dl.Ctx = append(dl.Ctx, Dot{Node: d.nodes[i], Counter: n})
		})
	}
	d.checkUsed()
	if err := d.finish(); err != nil {
		return nil, err
	}
	return dl, nil
}

type entryDecoder struct {
	decoder
	nodes []string
	used  []bool
}

func (d *entryDecoder) table() {
	n := d.count(1)
	d.nodes = make([]string, 0, n)
	for i := range n {
		s := d.string()
		if d.err != nil {
			return
		}
		if i > 0 && s <= d.nodes[i-1] {
			d.failf("node table not sorted")
			return
		}
		d.nodes = append(d.nodes, s)
	}
	d.used = make([]bool, len(d.nodes))
}

func (d *entryDecoder) checkUsed() {
	for i, u := range d.used {
		if !u && d.err == nil {
			d.failf("node %q in table but unused", d.nodes[i])
		}
	}
}

func (d *entryDecoder) nodeIndex() int {
	i := d.uvarint()
	if d.err != nil {
		return -1
	}
	if i >= uint64(len(d.nodes)) {
		d.failf("node index %d out of range", i)
		return -1
	}
	d.used[i] = true
	return int(i)
}

func (d *entryDecoder) node() string {
	if i := d.nodeIndex(); i >= 0 {
		return d.nodes[i]
	}
	return ""
}

func (d *entryDecoder) dot() Dot {
	dt := Dot{Node: d.node(), Counter: d.uvarint()}
	if d.err == nil && dt.Counter == 0 {
		d.failf("zero dot counter")
	}
	return dt
}

func (d *entryDecoder) stamped() (Dot, Stamp, byte) {
	dt := d.dot()
	st := Stamp{TS: Timestamp(d.u64()), Node: dt.Node}
	flags := d.byte()
	if flags&^(flagKindMask|flagRole|flagOtherNode) != 0 {
		d.failf("bad flags %#x", flags)
	}
	if flags&flagRole != 0 {
		st.Role = RoleHub
	}
	if flags&flagOtherNode != 0 {
		st.Node = d.node()
		if d.err == nil && st.Node == dt.Node {
			d.failf("stamp node flagged as different but equal")
		}
	}
	return dt, st, flags & flagKindMask
}

// head reads a key head (field false) or a hash field head (field true).
func (d *entryDecoder) head(field bool) Head {
	dt, st, low := d.stamped()
	h := Head{Dot: dt, Stamp: st, Kind: Kind(low), Value: d.bytes()}
	if d.err != nil {
		return h
	}
	switch {
	case !field && !h.Kind.validHead(), field && !h.Kind.validField():
		d.failf("bad head kind %d", low)
	case h.Kind == KindDeleted && len(h.Value) != 0:
		d.failf("deleted head with a value")
	case h.Kind.mergeable() && len(h.Value) > 0 && validateValue(h.Kind, h.Value) != nil:
		d.failf("bad %s value", h.Kind)
	case h.Kind == KindAggregate && field:
		d.failf("aggregate field")
	}
	return h
}

// heads reads a non-empty (if nonEmpty) list of heads sorted by dot.
func (d *entryDecoder) heads(field, nonEmpty bool) []Head {
	nh := d.count(12)
	if d.err == nil && nonEmpty && nh == 0 {
		d.failf("no heads")
	}
	heads := make([]Head, 0, nh)
	for i := range nh {
		h := d.head(field)
		if d.err != nil {
			return nil
		}
		if i > 0 && h.Dot.Compare(heads[i-1].Dot) <= 0 {
			d.failf("heads not sorted")
			return nil
		}
		heads = append(heads, h)
	}
	return heads
}

func (d *entryDecoder) body(e *Entry) {
	heads := d.heads(false, false)
	nh := len(heads)
	e.heads.heads = heads
	np := d.count(2)
	e.pl = make([]payload, 0, np)
	prev := -1
	for range np {
		hi := d.uvarint()
		if d.err != nil {
			return
		}
		if hi >= uint64(nh) || int(hi) <= prev {
			d.failf("payload head index %d invalid", hi)
			return
		}
		prev = int(hi)
		h := &heads[hi]
		p := payload{parent: h.Dot}
		d.ttls(&p)
		if h.carriesElements() {
			d.parts(&p, h.Kind)
		}
		if d.err == nil && p.empty() {
			d.failf("empty payload")
		}
		if d.err != nil {
			return
		}
		e.pl = append(e.pl, p)
	}
}

func (d *entryDecoder) ttls(p *payload) {
	n := d.count(12)
	if n > 0 {
		p.ttl = make([]ttlElem, 0, n)
	}
	for i := range n {
		dt, st, low := d.stamped()
		t := ttlElem{Dot: dt, Stamp: st, At: d.varint()}
		switch {
		case d.err != nil:
			return
		case low != 0 || t.At < 0:
			d.failf("bad ttl")
			return
		case i > 0 && cmpTTL(&t, &p.ttl[i-1]) <= 0:
			d.failf("ttls not sorted")
			return
		}
		p.ttl = append(p.ttl, t)
	}
}

func (d *entryDecoder) contributions(min int) []Contribution {
	n := d.count(3)
	if d.err == nil && n < min {
		d.failf("empty counter")
	}
	cs := make([]Contribution, 0, n)
	for i := range n {
		c := Contribution{Origin: d.node(), P: d.uvarint(), N: d.uvarint()}
		switch {
		case d.err != nil:
			return nil
		case c.P == 0 && c.N == 0:
			d.failf("zero contribution")
			return nil
		case i > 0 && c.Origin <= cs[i-1].Origin:
			d.failf("contributions not sorted")
			return nil
		}
		cs = append(cs, c)
	}
	return cs
}

func (d *entryDecoder) parts(p *payload, k Kind) {
	switch k {
	case KindCounter:
		p.counter.c = d.contributions(0)
	case KindSet:
		d.set(&p.set)
	case KindList:
		d.list(&p.list)
	case KindHash:
		d.orMap(&p.hash)
	case KindAggregate:
		d.aggregate(&p.agg)
	}
}

func (d *entryDecoder) set(s *ORSet) {
	n := d.count(4)
	s.e = make([]setElem, 0, n)
	prev := ""
	for i := range n {
		m := d.string()
		k := d.count(2)
		switch {
		case d.err != nil:
			return
		case k == 0:
			d.failf("set member without dots")
			return
		case i > 0 && m <= prev:
			d.failf("set members not sorted")
			return
		}
		prev = m
		for j := range k {
			el := setElem{Member: m, Dot: d.dot()}
			if d.err != nil {
				return
			}
			if j > 0 && el.Dot.Compare(s.e[len(s.e)-1].Dot) <= 0 {
				d.failf("set member dots not sorted")
				return
			}
			s.e = append(s.e, el)
		}
	}
}

func (d *entryDecoder) list(l *List) {
	n := d.count(13)
	l.items = make([]Item, 0, n)
	for i := range n {
		dt, st, low := d.stamped()
		seq := d.uvarint()
		it := Item{Dot: dt, Stamp: st, Side: Side(low), Value: d.bytes()}
		switch {
		case d.err != nil:
			return
		case low > uint8(SideTail) || seq > math.MaxUint32:
			d.failf("bad list item")
			return
		}
		it.Seq = uint32(seq)
		if i > 0 && cmpItem(&it, &l.items[i-1]) <= 0 {
			d.failf("list items not sorted")
			return
		}
		l.items = append(l.items, it)
	}
}

func (d *entryDecoder) orMap(m *ORMap) {
	n := d.count(3)
	m.f = make([]mapField, 0, n)
	for i := range n {
		f := mapField{Name: d.string()}
		if d.err == nil && i > 0 && f.Name <= m.f[i-1].Name {
			d.failf("hash fields not sorted")
		}
		f.Reg.heads = d.heads(true, true)
		nh := len(f.Reg.heads)
		nc := d.count(2)
		prev := -1
		for j := 0; j < nc && d.err == nil; j++ {
			hi := d.uvarint()
			if d.err != nil {
				return
			}
			if hi >= uint64(nh) || int(hi) <= prev ||
				f.Reg.heads[hi].Kind != KindCounter || !f.Reg.heads[hi].carriesElements() {
				d.failf("bad field counter head %d", hi)
				return
			}
			prev = int(hi)
			f.Ctr = append(f.Ctr, fieldCounter{Head: f.Reg.heads[hi].Dot, C: PNCounter{c: d.contributions(1)}})
		}
		if d.err != nil {
			return
		}
		m.f = append(m.f, f)
	}
}

func (d *entryDecoder) aggregate(a *Aggregate) {
	n := d.count(29)
	a.p = make([]OriginPartial, 0, n)
	for i := range n {
		x := OriginPartial{Origin: d.node()}
		x.Version = d.uvarint()
		x.Count = d.uvarint()
		x.Sum, x.Min, x.Max = d.float(), d.float(), d.float()
		x.FirstTS, x.LastTS = d.varint(), d.varint()
		switch {
		case d.err != nil:
			return
		case x.Version == 0 || x.Partial.Validate() != nil:
			d.failf("bad aggregate partial")
			return
		case i > 0 && cmp.Compare(x.Origin, a.p[i-1].Origin) <= 0:
			d.failf("aggregate origins not sorted")
			return
		}
		a.p = append(a.p, x)
	}
}
