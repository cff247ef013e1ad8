package crdt

import (
	"slices"
	"strings"
)

// ORSet is an add-wins observed-remove set of strings. Each addition tags the
// member with the dot of the mutation that added it; a removal covers exactly
// the dots it observed. An addition concurrent with a removal carries a dot
// the removal never saw, so the member stays (add wins). Removed dots are
// remembered only in the replica's Context (a compact version vector), so
// the set keeps no tombstones.
//
// One mutation may add several members under one dot. A removal of some of
// them therefore re-asserts the siblings that stay (its delta carries them),
// so that covering the dot removes exactly what was removed.
//
// Inside an Entry there is one ORSet per set incarnation. The zero value is
// an empty set.
type ORSet struct {
	e []setElem // sorted by (Member, Dot)
}

type setElem struct {
	Member string
	Dot    Dot
}

func cmpSetElem(a, b *setElem) int {
	if c := strings.Compare(a.Member, b.Member); c != 0 {
		return c
	}
	return a.Dot.Compare(b.Dot)
}

func setElemDot(e *setElem) Dot { return e.Dot }

// Add returns the delta of adding members under dot, and the dots it covers
// ({dot}).
func (s *ORSet) Add(dot Dot, members ...string) (ORSet, []Dot) {
	var d ORSet
	for _, m := range members {
		d.e = append(d.e, setElem{Member: m, Dot: dot})
	}
	slices.SortFunc(d.e, func(a, b setElem) int { return cmpSetElem(&a, &b) })
	d.e = slices.CompactFunc(d.e, func(a, b setElem) bool { return cmpSetElem(&a, &b) == 0 })
	return d, []Dot{dot}
}

// Remove returns the delta of removing members: it covers every dot of
// theirs this replica has seen, and carries the surviving members tagged
// with one of those dots.
func (s *ORSet) Remove(members ...string) (ORSet, []Dot) {
	gone := make(map[string]bool, len(members))
	for _, m := range members {
		gone[m] = true
	}
	var covers []Dot
	for i := range s.e {
		if gone[s.e[i].Member] {
			covers = append(covers, s.e[i].Dot)
		}
	}
	covers = normalizeDots(covers)
	var d ORSet
	for i := range s.e {
		if !gone[s.e[i].Member] && dotList(covers).Contains(s.e[i].Dot) {
			d.e = append(d.e, s.e[i])
		}
	}
	return d, covers
}

// Merge joins o into s; ctx and octx are the causal contexts of s and o.
func (s *ORSet) Merge(o *ORSet, ctx, octx DotSet) {
	s.e = joinDotted(s.e, o.e, cmpSetElem, setElemDot, ctx, octx)
}

// Contains reports whether m is a member.
func (s *ORSet) Contains(m string) bool {
	i, _ := slices.BinarySearchFunc(s.e, m, func(e setElem, m string) int { return strings.Compare(e.Member, m) })
	return i < len(s.e) && s.e[i].Member == m
}

// Members returns the members in ascending order.
func (s *ORSet) Members() []string {
	var out []string
	for i := range s.e {
		if i == 0 || s.e[i].Member != s.e[i-1].Member {
			out = append(out, s.e[i].Member)
		}
	}
	return out
}

// Len returns the number of members.
func (s *ORSet) Len() int {
	n := 0
	for i := range s.e {
		if i == 0 || s.e[i].Member != s.e[i-1].Member {
			n++
		}
	}
	return n
}

// Clone returns a copy of s.
func (s *ORSet) Clone() ORSet { return ORSet{e: slices.Clone(s.e)} }
