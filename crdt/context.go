package crdt

import (
	"slices"
	"strings"
)

// DotSet is anything that can say whether it includes a dot: a replica's
// *Context, or the dots a Delta covers.
type DotSet interface {
	Contains(Dot) bool
}

// Context is a causal context: the set of every dot a replica has seen,
// whether the data it created is still alive or was since removed. It is
// stored compactly as a version vector (every node's contiguous prefix
// 1..n) plus a "cloud" of dots seen beyond that prefix (a gap exists when
// mutations arrive out of order or some were lost). Adding the missing dots
// compacts the cloud back into the vector.
//
// A dot that is in the Context but tags nothing in a replica's state is
// known to be removed; this is how removals replicate without tombstones.
// The zero value is an empty context ready to use. A Context is not safe for
// concurrent use.
type Context struct {
	vv    VersionVector
	cloud map[Dot]struct{}
}

// NewContext returns an empty context.
func NewContext() *Context { return &Context{} }

// Contains reports whether the context includes d.
func (c *Context) Contains(d Dot) bool {
	if c.vv.Covers(d) {
		return true
	}
	_, ok := c.cloud[d]
	return ok
}

// Add records d as seen.
func (c *Context) Add(d Dot) {
	if d.Counter == 0 || c.vv.Covers(d) {
		return
	}
	if d.Counter == c.vv[d.Node]+1 {
		c.vv.Set(d.Node, d.Counter)
		c.absorb(d.Node)
		return
	}
	if c.cloud == nil {
		c.cloud = make(map[Dot]struct{})
	}
	c.cloud[d] = struct{}{}
}

// AddDots records every dot of ds (for example a Delta's Ctx) as seen.
func (c *Context) AddDots(ds []Dot) {
	for _, d := range ds {
		c.Add(d)
	}
}

// absorb moves the cloud dots that continue node's contiguous prefix into
// the vector.
func (c *Context) absorb(node string) {
	if len(c.cloud) == 0 {
		return
	}
	n := c.vv[node]
	for {
		next := Dot{Node: node, Counter: n + 1}
		if _, ok := c.cloud[next]; !ok {
			break
		}
		delete(c.cloud, next)
		n++
	}
	c.vv.Set(node, n)
}

// Merge adds every dot of o to c.
func (c *Context) Merge(o *Context) {
	c.vv.Merge(o.vv)
	for d := range o.cloud {
		if !c.vv.Covers(d) {
			if c.cloud == nil {
				c.cloud = make(map[Dot]struct{}, len(o.cloud))
			}
			c.cloud[d] = struct{}{}
		}
	}
	c.compact()
}

// compact drops cloud dots covered by the vector and absorbs the ones that
// became contiguous.
func (c *Context) compact() {
	var touched []string
	for d := range c.cloud {
		switch v := c.vv[d.Node]; {
		case d.Counter <= v:
			delete(c.cloud, d)
		case d.Counter == v+1:
			touched = append(touched, d.Node)
		}
	}
	for _, n := range touched {
		c.absorb(n)
	}
}

// VersionVector returns a copy of the contiguous part of the context: for
// each node, the highest n such that dots 1..n were all seen.
func (c *Context) VersionVector() VersionVector { return c.vv.Clone() }

// Contiguous returns the highest n such that node's dots 1..n were all
// seen (VersionVector()[node], without the copy).
func (c *Context) Contiguous(node string) uint64 { return c.vv[node] }

// Max returns the highest counter of node seen, contiguous or not.
func (c *Context) Max(node string) uint64 {
	m := c.vv[node]
	for d := range c.cloud {
		if d.Node == node && d.Counter > m {
			m = d.Counter
		}
	}
	return m
}

// Cloud returns the dots seen beyond the contiguous prefix, sorted.
func (c *Context) Cloud() []Dot {
	out := make([]Dot, 0, len(c.cloud))
	for d := range c.cloud {
		out = append(out, d)
	}
	slices.SortFunc(out, Dot.Compare)
	return out
}

// Clone returns a deep copy of c.
func (c *Context) Clone() *Context {
	n := &Context{vv: c.vv.Clone()}
	if len(c.cloud) > 0 {
		n.cloud = make(map[Dot]struct{}, len(c.cloud))
		for d := range c.cloud {
			n.cloud[d] = struct{}{}
		}
	}
	return n
}

// Equal reports whether c and o contain the same dots.
func (c *Context) Equal(o *Context) bool {
	if c.vv.Compare(o.vv) != Equal || len(c.cloud) != len(o.cloud) {
		return false
	}
	for d := range c.cloud {
		if _, ok := o.cloud[d]; !ok {
			return false
		}
	}
	return true
}

// String formats the context for debugging: "{a:3 b:5} + [b:7 c:2]".
func (c *Context) String() string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, n := range c.vv.Nodes() {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(Dot{Node: n, Counter: c.vv[n]}.String())
	}
	sb.WriteByte('}')
	if len(c.cloud) > 0 {
		sb.WriteString(" + [")
		for i, d := range c.Cloud() {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(d.String())
		}
		sb.WriteByte(']')
	}
	return sb.String()
}

// AppendBinary appends the canonical encoding of c: the format byte, the
// version vector body, then the cloud grouped by node (node, count,
// ascending counters as gaps).
func (c *Context) AppendBinary(b []byte) []byte {
	b = c.vv.AppendBinary(b) // includes the format byte
	cloud := c.Cloud()
	b = appendUvarint(b, uint64(countNodes(cloud)))
	for i := 0; i < len(cloud); {
		j := i
		for j < len(cloud) && cloud[j].Node == cloud[i].Node {
			j++
		}
		b = appendString(b, cloud[i].Node)
		b = appendCounters(b, cloud[i:j])
		i = j
	}
	return b
}

// DecodeContext decodes the encoding made by Context.AppendBinary.
func DecodeContext(b []byte) (*Context, error) {
	d := decoder{b: b}
	d.version("context")
	c := &Context{vv: decodeVVBody(&d)}
	groups := d.count(3)
	prev := ""
	for i := range groups {
		node := d.string()
		if d.err != nil {
			break
		}
		if i > 0 && node <= prev {
			d.failf("context cloud nodes not sorted")
			break
		}
		prev = node
		base := c.vv[node]
		decodeCounters(&d, func(n uint64) {
			// Canonical: cloud dots lie strictly beyond the prefix and
			// never continue it (that would have been absorbed).
			if n <= base+1 {
				d.failf("context cloud dot %s:%d not beyond prefix %d", node, n, base)
				return
			}
			if c.cloud == nil {
				c.cloud = make(map[Dot]struct{})
			}
			c.cloud[Dot{Node: node, Counter: n}] = struct{}{}
		})
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func countNodes(sorted []Dot) int {
	n := 0
	for i := range sorted {
		if i == 0 || sorted[i].Node != sorted[i-1].Node {
			n++
		}
	}
	return n
}

// appendCounters appends a non-empty run of one node's dots, sorted
// ascending: the count, the first counter, then the gaps to the next.
func appendCounters(b []byte, run []Dot) []byte {
	b = appendUvarint(b, uint64(len(run)))
	prev := uint64(0)
	for _, d := range run {
		b = appendUvarint(b, d.Counter-prev)
		prev = d.Counter
	}
	return b
}

// decodeCounters reads a run written by appendCounters and calls fn with
// each counter (strictly ascending, non-zero).
func decodeCounters(d *decoder, fn func(uint64)) {
	n := d.count(1)
	if d.err == nil && n == 0 {
		d.failf("empty dot run")
		return
	}
	prev := uint64(0)
	for range n {
		gap := d.uvarint()
		if d.err != nil {
			return
		}
		if gap == 0 || prev+gap < prev {
			d.failf("dot counters not ascending")
			return
		}
		prev += gap
		fn(prev)
		if d.err != nil {
			return
		}
	}
}
