package crdt

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// PNCounter is a state-based counter of int64: each origin node keeps a pair
// (P, N) of monotonically growing uint64 totals of its increments and
// decrements; merge is the pointwise maximum, the value is ΣP − ΣN. A
// duplicated or reordered delta changes nothing, and concurrent increments
// all count. An increment that would take the value (or an origin's total)
// out of range fails with ErrOverflow: a counter never wraps.
//
// Inside an Entry there is one PNCounter per counter incarnation (head). The
// zero value is a counter at 0.
type PNCounter struct {
	c []Contribution // sorted by Origin; never (0, 0)
}

// Contribution is one origin's share of a PNCounter.
type Contribution struct {
	Origin string
	P, N   uint64
}

func cmpContribution(a, b *Contribution) int { return strings.Compare(a.Origin, b.Origin) }

func joinContribution(a, b Contribution) Contribution {
	return Contribution{Origin: a.Origin, P: max(a.P, b.P), N: max(a.N, b.N)}
}

// Contributions returns the per-origin totals sorted by origin (aliases c).
func (c *PNCounter) Contributions() []Contribution { return c.c }

// Value returns ΣP − ΣN, or ErrOverflow if it does not fit in an int64
// (possible only after merging concurrent increments from several origins).
func (c *PNCounter) Value() (int64, error) {
	var acc wide
	for _, x := range c.c {
		acc.add(x.P)
		acc.sub(x.N)
	}
	return acc.int64()
}

// Add returns the delta of adding n (which may be negative) on behalf of
// origin: a counter holding origin's new totals. The result may be merged
// into c with Merge, or shipped to other replicas.
func (c *PNCounter) Add(origin string, n int64) (PNCounter, error) {
	cur, err := c.Value()
	if err != nil {
		return PNCounter{}, err
	}
	if _, err := addInt(cur, n); err != nil {
		return PNCounter{}, err
	}
	return c.addTo(origin, n)
}

// addTo returns origin's new totals after adding n, checking only that the
// totals do not overflow (the caller checks the value's range).
func (c *PNCounter) addTo(origin string, n int64) (PNCounter, error) {
	x := Contribution{Origin: origin}
	if i, ok := c.find(origin); ok {
		x = c.c[i]
	}
	var carry uint64
	if n >= 0 {
		x.P, carry = bits.Add64(x.P, uint64(n), 0)
	} else {
		x.N, carry = bits.Add64(x.N, negAbs(n), 0)
	}
	if carry != 0 {
		return PNCounter{}, ErrOverflow
	}
	if x.P == 0 && x.N == 0 {
		return PNCounter{}, nil
	}
	return PNCounter{c: []Contribution{x}}, nil
}

func (c *PNCounter) find(origin string) (int, bool) {
	return slices.BinarySearchFunc(c.c, origin, func(x Contribution, o string) int { return strings.Compare(x.Origin, o) })
}

// Merge joins o into c (pointwise maximum).
func (c *PNCounter) Merge(o *PNCounter) {
	c.c = mergeKeyed(c.c, o.c, cmpContribution, joinContribution, nil)
}

// Clone returns a copy of c.
func (c *PNCounter) Clone() PNCounter { return PNCounter{c: slices.Clone(c.c)} }

// negAbs returns |n| for a negative n as a uint64 (exact for MinInt64).
func negAbs(n int64) uint64 { return uint64(-(n + 1)) + 1 }

// wide is a 128-bit two's complement accumulator, so summing many uint64
// totals can never overflow silently.
type wide struct{ hi, lo uint64 }

func (w *wide) add(v uint64) {
	var c uint64
	w.lo, c = bits.Add64(w.lo, v, 0)
	w.hi += c
}

func (w *wide) sub(v uint64) {
	var b uint64
	w.lo, b = bits.Sub64(w.lo, v, 0)
	w.hi -= b
}

func (w wide) int64() (int64, error) {
	// Fits iff hi is the sign extension of lo.
	if (w.hi == 0 && w.lo <= math.MaxInt64) || (w.hi == math.MaxUint64 && w.lo > math.MaxInt64) {
		return int64(w.lo), nil
	}
	return 0, ErrOverflow
}

// Converting a value into a counter.
//
// INCRBY on a string "100" (or HINCRBY on a string field) turns it into a
// counter starting at 100. Two replicas that do so concurrently each create
// a counter; the key's value is the sum of the counters of its concurrent
// heads, so if each counter held the start value as its origin's share,
// the result would count the 100 twice. Instead the start value is
// contributed under a base origin that names the converted write, and the
// sum counts one base: the greatest base origin among the incarnation's
// counters. Replicas that convert the same write contribute the same base;
// replicas that convert different concurrent writes (each saw only its
// own, or the same value twice) still count one start value, that of the
// latest write (by HLC, then dot), as last-writer-wins would pick.

// baseOrigin returns the origin under which the value of write h is
// contributed when h is converted into a counter: NUL, the write's HLC
// and dot counter in fixed-width hex (so that string order is time
// order), "@" and the dot's node. Node ids cannot contain a NUL byte (the
// config refuses it and MQTT topic names, which carry them, exclude it),
// so a base origin never collides with a node's share.
func baseOrigin(h *Head) string {
	return fmt.Sprintf("\x00%016x%016x@%s", uint64(h.Stamp.TS), h.Dot.Counter, h.Dot.Node)
}

func isBaseOrigin(origin string) bool { return origin != "" && origin[0] == 0 }

// convertedCounter returns the counter created by origin with value base+n,
// where base is the integer value of write src (nil when nothing is
// converted: base must be 0). The caller checked that base+n fits.
func convertedCounter(origin string, src *Head, base, n int64) PNCounter {
	if src == nil || base == 0 {
		return counterFrom(origin, base+n)
	}
	b := counterFrom(baseOrigin(src), base)
	own := counterFrom(origin, n)
	b.c = append(b.c, own.c...) // base origins sort first
	return b
}

// counterSum sums the counters of concurrent heads, counting one base
// origin: the greatest (see baseOrigin).
type counterSum struct {
	acc  wide
	base Contribution
}

func (s *counterSum) add(c *PNCounter) {
	for _, x := range c.c {
		if isBaseOrigin(x.Origin) {
			if x.Origin > s.base.Origin {
				s.base = x
			}
			continue
		}
		s.acc.add(x.P)
		s.acc.sub(x.N)
	}
}

func (s *counterSum) int64() (int64, error) {
	acc := s.acc
	acc.add(s.base.P)
	acc.sub(s.base.N)
	return acc.int64()
}
