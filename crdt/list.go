package crdt

import (
	"cmp"
	"slices"
)

// Side is the end of a list an item was pushed to.
type Side uint8

// Sides.
const (
	SideHead Side = 0 // LPUSH
	SideTail Side = 1 // RPUSH
)

func (s Side) String() string {
	if s == SideHead {
		return "head"
	}
	return "tail"
}

// Item is one list element: the push that created it (Dot, Stamp), its end,
// its index within that push (Seq), and its value. Items are immutable.
type Item struct {
	Dot   Dot
	Seq   uint32
	Stamp Stamp
	Side  Side
	Value []byte
}

// cmpItem is the list order, which is also the items' identity order:
// head-side items first, newest push first (Stamp, then Dot, then Seq
// descending), then tail-side items, oldest push first (ascending). On one
// replica LPUSH and RPUSH therefore behave exactly like Redis, and
// concurrent pushes interleave the same way on every replica.
func cmpItem(a, b *Item) int {
	if a.Side != b.Side {
		return cmp.Compare(a.Side, b.Side)
	}
	c := LastWriteWins.Compare(a.Stamp, b.Stamp)
	if c == 0 {
		c = a.Dot.Compare(b.Dot)
	}
	if c == 0 {
		c = cmp.Compare(a.Seq, b.Seq)
	}
	if a.Side == SideHead {
		return -c
	}
	return c
}

func itemDot(it *Item) Dot { return it.Dot }

// List is a sequence CRDT for LPUSH, RPUSH, LRANGE and LTRIM. Items are
// never moved or edited, only pushed and removed, so the list is a set of
// immutable items sorted by cmpItem. Concurrent pushes are all kept, in a
// deterministic order (by stamp). LTRIM removes the items it observed outside
// its range; items pushed concurrently survive, so a capped list can briefly
// exceed its bound until the next trim.
//
// Inside an Entry there is one List per list incarnation. The zero value is
// an empty list.
type List struct {
	items []Item // sorted by cmpItem
}

// Push returns the delta of pushing values, in order, to side under one
// mutation (dot, st), and the dots it covers ({dot}). LPUSH a b c yields
// c b a at the head, as in Redis.
func (l *List) Push(dot Dot, st Stamp, side Side, values ...[]byte) (List, []Dot) {
	return List{items: newItems(dot, st, side, 0, values)}, []Dot{dot}
}

func newItems(dot Dot, st Stamp, side Side, seq0 uint32, values [][]byte) []Item {
	items := make([]Item, len(values))
	for i, v := range values {
		items[i] = Item{Dot: dot, Seq: seq0 + uint32(i), Stamp: st, Side: side, Value: cloneBytes(v)}
	}
	slices.SortFunc(items, func(a, b Item) int { return cmpItem(&a, &b) })
	return items
}

// Trim returns the delta of LTRIM start stop (Redis index rules): it covers
// the dots of the items outside the range and carries the kept items that
// share one of those dots.
func (l *List) Trim(start, stop int64) (List, []Dot) {
	lo, hi := redisRange(start, stop, len(l.items))
	var covers []Dot
	for i := range l.items {
		if i < lo || i >= hi {
			covers = append(covers, l.items[i].Dot)
		}
	}
	covers = normalizeDots(covers)
	var d List
	for i := lo; i < hi; i++ {
		if dotList(covers).Contains(l.items[i].Dot) {
			d.items = append(d.items, l.items[i])
		}
	}
	return d, covers
}

// Merge joins o into l; ctx and octx are the causal contexts of l and o.
func (l *List) Merge(o *List, ctx, octx DotSet) {
	l.items = joinDotted(l.items, o.items, cmpItem, itemDot, ctx, octx)
}

// Len returns the number of items.
func (l *List) Len() int { return len(l.items) }

// Items returns the items in list order (aliases l).
func (l *List) Items() []Item { return l.items }

// Range returns the values from start to stop inclusive (LRANGE index
// rules: negative indexes count from the end, out-of-range is clamped).
func (l *List) Range(start, stop int64) [][]byte {
	lo, hi := redisRange(start, stop, len(l.items))
	out := make([][]byte, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, l.items[i].Value)
	}
	return out
}

// Clone returns a copy of l.
func (l *List) Clone() List { return List{items: slices.Clone(l.items)} }

// redisRange converts LRANGE/LTRIM indexes into a half-open [lo, hi) range
// of a list of n items (empty when lo >= hi).
func redisRange(start, stop int64, n int) (lo, hi int) {
	ln := int64(n)
	if start < 0 {
		start += ln
	}
	if stop < 0 {
		stop += ln
	}
	start = max(start, 0)
	if start > stop || start >= ln {
		return 0, 0
	}
	stop = min(stop, ln-1)
	return int(start), int(stop) + 1
}
