package syncer

import (
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// The down stream's filter: the hub does not send an edge the ops whose
// dots it had at its Hello (its context). That context names every edge
// of the fleet (the edge received their writes), so a session that kept
// it would hold O(edges) for its whole life and the hub O(edges²): about
// 650 KiB per session with 10,000 edges. It is only needed for the ops the
// hub had logged when the Hello came: an op logged later can be in it only
// if it is the edge's own (any actor of its node; the edge gets others'
// ops through this hub only, which logs an op once). Once the edge has
// acknowledged past that point, so that no rewind goes back before it,
// the session keeps only its own node's dots.

// downFilter holds the dots the edge had at Hello that the hub must not
// send it.
type downFilter struct {
	dots  crdt.DotSet // nil: none
	upto  uint64      // the hub's last seq at Hello
	small bool        // dots holds only the edge's own node's dots
}

// reset starts a session's filter from the edge's Hello context.
func (f *downFilter) reset(c *crdt.Context, lastSeq uint64) {
	*f = downFilter{upto: lastSeq}
	if c != nil {
		f.dots = c
	}
}

// contains reports whether the edge had d at Hello.
func (f *downFilter) contains(d crdt.Dot) bool { return f.dots != nil && f.dots.Contains(d) }

// acked tells the filter the edge's acknowledged cursor: past upto, the
// filter keeps only node's dots.
func (f *downFilter) acked(cursor uint64, node string) {
	if f.small || cursor < f.upto {
		return
	}
	f.small = true
	c, ok := f.dots.(*crdt.Context)
	if !ok {
		return
	}
	own := ownDots{vv: crdt.VersionVector{}}
	for a, n := range c.VersionVector() {
		if store.ActorNode(a) == node {
			own.vv[a] = n
		}
	}
	for _, d := range c.Cloud() {
		if store.ActorNode(d.Node) == node {
			if own.cloud == nil {
				own.cloud = map[crdt.Dot]struct{}{}
			}
			own.cloud[d] = struct{}{}
		}
	}
	f.dots = own
}

// ownDots is the part of a context that names one node's actors.
type ownDots struct {
	vv    crdt.VersionVector
	cloud map[crdt.Dot]struct{}
}

func (o ownDots) Contains(d crdt.Dot) bool {
	if o.vv.Covers(d) {
		return true
	}
	_, ok := o.cloud[d]
	return ok
}
