package syncer

import (
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Op and state-entry lists are the bulk of the traffic, so they are
// encoded compactly: node ids once per message in a table (in order of
// first use), counters and HLC stamps as zigzag deltas from the previous
// op, keys as (length shared with the previous key, suffix). Everything
// is canonical: a decoder accepts exactly what the encoder produces, so
// decode→encode gives back the input (the fuzz target checks it).

const (
	opRoleHub    = 1 << 0 // Stamp.Role is RoleHub
	opStampNode  = 1 << 1 // Stamp.Node differs from Dot.Node: its index follows
	knownOpFlags = opRoleHub | opStampNode
)

// nodeTable interns node ids in order of first use. An edge's batch names
// few nodes (its origins and stampers): a linear search beats a map and
// allocates nothing beyond the slice. A hub's relay batch can name every
// edge of the fleet: beyond smallNodeTable names, a map, or encoding
// would be quadratic in the fleet's size.
type nodeTable struct {
	names []string
	index map[string]int // with more than smallNodeTable names
}

const smallNodeTable = 8

func (t *nodeTable) indexOf(n string) int {
	if t.index != nil {
		if i, ok := t.index[n]; ok {
			return i
		}
		return -1
	}
	for i, m := range t.names {
		if m == n {
			return i
		}
	}
	return -1
}

func (t *nodeTable) add(n string) {
	if t.indexOf(n) >= 0 {
		return
	}
	t.names = append(t.names, n)
	switch {
	case t.index != nil:
		t.index[n] = len(t.names) - 1
	case len(t.names) > smallNodeTable:
		t.index = make(map[string]int, 2*len(t.names))
		for i, m := range t.names {
			t.index[m] = i
		}
	}
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func appendKey(b []byte, prev, key string) []byte {
	p := commonPrefix(prev, key)
	b = appendUvarint(b, uint64(p))
	return appendString(b, key[p:])
}

func (r *reader) key(prev string) string {
	p := r.uvarint()
	if r.err == nil && p > uint64(len(prev)) {
		r.fail("key shares %d bytes with a %d-byte key", p, len(prev))
		return ""
	}
	suffix := r.bytes(maxKey, "key")
	if r.err != nil {
		return ""
	}
	if int(p)+len(suffix) > maxKey {
		r.fail("key of %d bytes over the limit", int(p)+len(suffix))
		return ""
	}
	key := prev[:p] + string(suffix)
	// Canonical: the shared length is maximal.
	if int(p) < len(prev) && int(p) < len(key) && key[p] == prev[p] {
		r.fail("key prefix not maximal")
	}
	return key
}

// DeltaSync body: session, after, upto, node table (count, names), op
// count, then per op: flags, dot node index, [stamp node index], counter
// (zigzag delta), HLC (zigzag delta), key, delta.
func (m *DeltaSync) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Session)
	b = appendUvarint(b, m.After)
	b = appendUvarint(b, m.Upto)
	var t nodeTable
	for i := range m.Ops {
		t.add(m.Ops[i].Dot.Node)
		t.add(m.Ops[i].Stamp.Node)
	}
	b = appendUvarint(b, uint64(len(t.names)))
	for _, n := range t.names {
		b = appendString(b, n)
	}
	b = appendUvarint(b, uint64(len(m.Ops)))
	var prevCounter uint64
	var prevTS crdt.Timestamp
	prevKey := ""
	for i := range m.Ops {
		op := &m.Ops[i]
		var flags byte
		if op.Stamp.Role == crdt.RoleHub {
			flags |= opRoleHub
		}
		if op.Stamp.Node != op.Dot.Node {
			flags |= opStampNode
		}
		b = append(b, flags)
		b = appendUvarint(b, uint64(t.indexOf(op.Dot.Node)))
		if flags&opStampNode != 0 {
			b = appendUvarint(b, uint64(t.indexOf(op.Stamp.Node)))
		}
		b = appendVarint(b, int64(op.Dot.Counter-prevCounter))
		b = appendVarint(b, int64(op.Stamp.TS-prevTS))
		b = appendKey(b, prevKey, op.Key)
		b = appendBytes(b, op.Delta)
		prevCounter, prevTS, prevKey = op.Dot.Counter, op.Stamp.TS, op.Key
	}
	return b
}

func (m *DeltaSync) decodeBody(r *reader) {
	m.Session = r.uvarint()
	m.After = r.uvarint()
	m.Upto = r.uvarint()
	if r.err == nil && m.Upto < m.After {
		r.fail("range (%d, %d] is backwards", m.After, m.Upto)
	}
	names := r.nodeTable()
	n := r.count(6, "op")
	if r.err != nil {
		return
	}
	if n > 0 {
		if m.Upto == m.After {
			r.fail("ops in an empty range")
			return
		}
		m.Ops = make([]store.Op, 0, n)
	}
	used := 0 // node table entries used so far (first use must be in order)
	nodeAt := func() string {
		i := r.uvarint()
		if r.err != nil {
			return ""
		}
		if i > uint64(used) || i >= uint64(len(names)) {
			r.fail("node index %d out of order", i)
			return ""
		}
		if i == uint64(used) {
			used++
		}
		return names[i]
	}
	var prevCounter uint64
	var prevTS crdt.Timestamp
	prevKey := ""
	for range n {
		var op store.Op
		flags := r.flags(knownOpFlags, "op")
		op.Dot.Node = nodeAt()
		op.Stamp.Node = op.Dot.Node
		if flags&opStampNode != 0 {
			op.Stamp.Node = nodeAt()
			if r.err == nil && op.Stamp.Node == op.Dot.Node {
				r.fail("stamp node flag set for the dot's own node")
			}
		}
		if flags&opRoleHub != 0 {
			op.Stamp.Role = crdt.RoleHub
		}
		op.Dot.Counter = prevCounter + uint64(r.varint())
		op.Stamp.TS = prevTS + crdt.Timestamp(r.varint())
		op.Key = r.key(prevKey)
		op.Delta = r.bytes(MaxMessageSize, "delta")
		if r.err != nil {
			return
		}
		if op.Dot.Counter == 0 {
			r.fail("op without a dot counter")
			return
		}
		if len(op.Delta) == 0 {
			r.fail("op without a delta")
			return
		}
		m.Ops = append(m.Ops, op)
		prevCounter, prevTS, prevKey = op.Dot.Counter, op.Stamp.TS, op.Key
	}
	if r.err == nil && used != len(names) {
		r.fail("%d unused node table entries", len(names)-used)
	}
}

func (r *reader) nodeTable() []string {
	n := r.count(2, "node")
	if r.err != nil || n == 0 {
		return nil
	}
	names := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for range n {
		s := r.actor("node")
		if r.err != nil {
			return nil
		}
		if seen[s] {
			r.fail("node %q listed twice", s)
			return nil
		}
		seen[s] = true
		names = append(names, s)
	}
	return names
}

// FullSync body: session, snapshot, chunk, flags (bit 0 Last), snap seq,
// entry count, entries (key, encoded crdt.Entry), and on the last chunk:
// chunk count, key count, context.
func (m *FullSync) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Session)
	b = appendUvarint(b, m.Snapshot)
	b = appendUvarint(b, m.Chunk)
	b = appendBool(b, m.Last)
	b = appendUvarint(b, m.SnapSeq)
	b = appendUvarint(b, uint64(len(m.Entries)))
	prev := ""
	for i := range m.Entries {
		b = appendKey(b, prev, m.Entries[i].Key)
		b = appendBytes(b, m.Entries[i].Entry)
		prev = m.Entries[i].Key
	}
	if m.Last {
		b = appendUvarint(b, m.Chunks)
		b = appendUvarint(b, m.Keys)
		b = appendContext(b, m.Context)
	}
	return b
}

func (m *FullSync) decodeBody(r *reader) {
	m.Session = r.uvarint()
	m.Snapshot = r.uvarint()
	if r.err == nil && m.Snapshot == 0 {
		r.fail("snapshot id 0")
	}
	m.Chunk = r.uvarint()
	m.Last = r.flags(1, "fullsync")&1 != 0
	m.SnapSeq = r.uvarint()
	n := r.count(3, "entry")
	if n > 0 {
		m.Entries = make([]store.StateEntry, 0, n)
	}
	prev := ""
	for range n {
		var e store.StateEntry
		e.Key = r.key(prev)
		e.Entry = r.bytes(MaxMessageSize, "entry")
		if r.err != nil {
			return
		}
		if len(e.Entry) == 0 {
			r.fail("empty entry for key %q", e.Key)
			return
		}
		m.Entries = append(m.Entries, e)
		prev = e.Key
	}
	if m.Last {
		m.Chunks = r.uvarint()
		if r.err == nil && m.Chunks != m.Chunk+1 {
			r.fail("last chunk %d of %d chunks", m.Chunk, m.Chunks)
		}
		m.Keys = r.uvarint()
		m.Context = r.context("context")
	}
}
