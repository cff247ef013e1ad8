package crdt

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Dot names one local mutation: the node that made it and that node's
// mutation counter (1, 2, 3, ... per node). Every dot is unique in the whole
// system, so a dot can stand for the data its mutation created.
type Dot struct {
	Node    string
	Counter uint64
}

// IsZero reports whether d is the zero Dot (no mutation).
func (d Dot) IsZero() bool { return d.Counter == 0 && d.Node == "" }

// String formats the dot as "node:counter".
func (d Dot) String() string { return d.Node + ":" + strconv.FormatUint(d.Counter, 10) }

// Compare orders dots by node, then counter.
func (d Dot) Compare(o Dot) int {
	if c := strings.Compare(d.Node, o.Node); c != 0 {
		return c
	}
	return cmp.Compare(d.Counter, o.Counter)
}

// Ordering is the result of comparing two version vectors.
type Ordering int8

// Orderings. Equal is not Concurrent: two replicas that saw the same
// mutations are equal, not in conflict.
const (
	Equal      Ordering = iota // both saw exactly the same mutations
	Before                     // the receiver saw a strict subset of the other's mutations
	After                      // the receiver saw a strict superset
	Concurrent                 // each saw a mutation the other did not
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// VersionVector maps a node id to the highest counter of that node's
// mutations seen contiguously (1..n). A missing node means 0. The zero value
// (nil) is an empty vector; mutating methods have pointer receivers so they
// work on it.
type VersionVector map[string]uint64

// Get returns the counter for node (0 if absent).
func (v VersionVector) Get(node string) uint64 { return v[node] }

// Set records counter for node; a zero counter removes the node.
func (v *VersionVector) Set(node string, counter uint64) {
	if counter == 0 {
		delete(*v, node)
		return
	}
	if *v == nil {
		*v = make(VersionVector)
	}
	(*v)[node] = counter
}

// Covers reports whether the vector includes dot d.
func (v VersionVector) Covers(d Dot) bool { return d.Counter != 0 && v[d.Node] >= d.Counter }

// Compare returns how v relates to o: Before if every counter of v is <= the
// one of o and at least one is smaller, After for the reverse, Equal, or
// Concurrent when each has a counter greater than the other's.
func (v VersionVector) Compare(o VersionVector) Ordering {
	less, greater := false, false
	for n, c := range v {
		switch oc := o[n]; {
		case c < oc:
			less = true
		case c > oc:
			greater = true
		}
	}
	for n, oc := range o {
		if _, ok := v[n]; !ok && oc > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Merge raises v to the pointwise maximum of v and o.
func (v *VersionVector) Merge(o VersionVector) {
	for n, c := range o {
		if c > (*v)[n] {
			v.Set(n, c)
		}
	}
}

// Clone returns a copy of v (nil for an empty vector).
func (v VersionVector) Clone() VersionVector {
	if len(v) == 0 {
		return nil
	}
	return maps.Clone(v)
}

// Nodes returns the node ids of v in ascending order.
func (v VersionVector) Nodes() []string {
	return slices.Sorted(maps.Keys(v))
}

// AppendBinary appends the canonical encoding of v: the format byte, the
// number of nodes, then (node, counter) sorted by node; zero counters are
// omitted.
func (v VersionVector) AppendBinary(b []byte) []byte {
	b = append(b, formatV1)
	nodes := make([]string, 0, len(v))
	for n, c := range v {
		if c != 0 {
			nodes = append(nodes, n)
		}
	}
	slices.Sort(nodes)
	b = appendUvarint(b, uint64(len(nodes)))
	for _, n := range nodes {
		b = appendString(b, n)
		b = appendUvarint(b, v[n])
	}
	return b
}

// DecodeVersionVector decodes the encoding made by VersionVector.AppendBinary.
func DecodeVersionVector(b []byte) (VersionVector, error) {
	d := decoder{b: b}
	d.version("version vector")
	v := decodeVVBody(&d)
	if err := d.finish(); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeVVBody(d *decoder) VersionVector {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	v := make(VersionVector, n)
	prev := ""
	for i := range n {
		node := d.string()
		c := d.uvarint()
		if d.err != nil {
			return nil
		}
		if i > 0 && node <= prev {
			d.failf("version vector nodes not sorted")
			return nil
		}
		if c == 0 {
			d.failf("zero counter in version vector")
			return nil
		}
		v[node] = c
		prev = node
	}
	return v
}
