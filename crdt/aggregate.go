package crdt

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Partial summarises readings: how many, their sum, extremes, and the time
// of the first and last (Unix milliseconds). In an Aggregate each origin's
// partial is the origin's whole summary so far, and Version orders an
// origin's successive partials (higher replaces lower).
type Partial struct {
	Version uint64
	Count   uint64
	Sum     float64
	Min     float64
	Max     float64
	FirstTS int64
	LastTS  int64
}

// Mean returns Sum/Count (0 for an empty partial).
func (p Partial) Mean() float64 {
	if p.Count == 0 {
		return 0
	}
	return p.Sum / float64(p.Count)
}

// Combine returns the summary of the readings of p and o together (Version
// is 0: a combination is not any origin's partial).
func (p Partial) Combine(o Partial) Partial {
	switch {
	case o.Count == 0:
		p.Version = 0
		return p
	case p.Count == 0:
		o.Version = 0
		return o
	}
	return Partial{
		Count:   p.Count + o.Count,
		Sum:     p.Sum + o.Sum,
		Min:     math.Min(p.Min, o.Min),
		Max:     math.Max(p.Max, o.Max),
		FirstTS: min(p.FirstTS, o.FirstTS),
		LastTS:  max(p.LastTS, o.LastTS),
	}
}

// Validate reports a partial an aggregate cannot hold: no readings,
// non-finite numbers, Min > Max or FirstTS > LastTS.
func (p Partial) Validate() error {
	switch {
	case p.Count == 0:
		return fmt.Errorf("%w: aggregate partial with no readings", ErrInvalid)
	case !finite(p.Sum) || !finite(p.Min) || !finite(p.Max):
		return fmt.Errorf("%w: aggregate partial with a non-finite number", ErrInvalid)
	case p.Min > p.Max:
		return fmt.Errorf("%w: aggregate partial with min %g > max %g", ErrInvalid, p.Min, p.Max)
	case p.FirstTS > p.LastTS:
		return fmt.Errorf("%w: aggregate partial with first %d after last %d", ErrInvalid, p.FirstTS, p.LastTS)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Aggregate is a mergeable summary of sensor readings (a time bucket): one
// Partial per origin node, each only ever replaced by a higher Version of
// itself. The total is the combination of the origins' latest partials, so
// a duplicated or reordered delta never counts a reading twice, and two
// gateways reporting into one bucket add up.
//
// Inside an Entry there is one Aggregate per aggregate incarnation; across
// concurrent incarnations each origin's highest version counts once. The
// zero value is an empty aggregate.
type Aggregate struct {
	p []OriginPartial // sorted by Origin
}

// OriginPartial is one origin's partial in an Aggregate.
type OriginPartial struct {
	Origin string
	Partial
}

func cmpOriginPartial(a, b *OriginPartial) int { return strings.Compare(a.Origin, b.Origin) }

// joinOriginPartial keeps the higher version; equal versions (which a
// correct origin never reuses) are ordered by content so the join stays
// deterministic.
func joinOriginPartial(a, b OriginPartial) OriginPartial {
	if b.Version > a.Version || (b.Version == a.Version && comparePartial(b.Partial, a.Partial) > 0) {
		return b
	}
	return a
}

func comparePartial(a, b Partial) int {
	return cmp.Or(
		cmp.Compare(a.Version, b.Version),
		cmp.Compare(a.Count, b.Count),
		cmp.Compare(math.Float64bits(a.Sum), math.Float64bits(b.Sum)),
		cmp.Compare(math.Float64bits(a.Min), math.Float64bits(b.Min)),
		cmp.Compare(math.Float64bits(a.Max), math.Float64bits(b.Max)),
		cmp.Compare(a.FirstTS, b.FirstTS),
		cmp.Compare(a.LastTS, b.LastTS),
	)
}

// Partials returns the origins' partials sorted by origin (aliases a).
func (a *Aggregate) Partials() []OriginPartial { return a.p }

// Partial returns origin's current partial.
func (a *Aggregate) Partial(origin string) (Partial, bool) {
	i, ok := slices.BinarySearchFunc(a.p, origin, func(p OriginPartial, o string) int { return strings.Compare(p.Origin, o) })
	if !ok {
		return Partial{}, false
	}
	return a.p[i].Partial, true
}

// Total combines every origin's partial.
func (a *Aggregate) Total() Partial {
	var t Partial
	for _, p := range a.p {
		t = t.Combine(p.Partial)
	}
	return t
}

// Add returns the delta that replaces origin's partial with p. p is the
// origin's whole summary; its Version must exceed the current one
// (ErrStale), and a zero Version means "the current one plus one".
func (a *Aggregate) Add(origin string, p Partial) (Aggregate, error) {
	if err := p.Validate(); err != nil {
		return Aggregate{}, err
	}
	cur, _ := a.Partial(origin)
	switch {
	case p.Version == 0:
		if cur.Version == math.MaxUint64 {
			return Aggregate{}, ErrOverflow
		}
		p.Version = cur.Version + 1
	case p.Version <= cur.Version:
		return Aggregate{}, fmt.Errorf("%w: version %d, have %d", ErrStale, p.Version, cur.Version)
	}
	return Aggregate{p: []OriginPartial{{Origin: origin, Partial: p}}}, nil
}

// Merge joins o into a.
func (a *Aggregate) Merge(o *Aggregate) {
	a.p = mergeKeyed(a.p, o.p, cmpOriginPartial, joinOriginPartial, nil)
}

// Clone returns a copy of a.
func (a *Aggregate) Clone() Aggregate { return Aggregate{p: slices.Clone(a.p)} }
