package crdt

import (
	"slices"
)

// dotList is a sorted, duplicate-free list of dots: the dots a Delta covers.
type dotList []Dot

// Contains reports whether l includes d. Deltas cover few dots, so short
// lists are scanned (cheapest test first); long ones binary-searched.
func (l dotList) Contains(d Dot) bool {
	if len(l) <= 8 {
		for i := range l {
			if l[i].Counter == d.Counter && l[i].Node == d.Node {
				return true
			}
		}
		return false
	}
	_, ok := slices.BinarySearchFunc(l, d, Dot.Compare)
	return ok
}

// normalizeDots sorts ds and removes duplicates and zero dots.
func normalizeDots(ds []Dot) []Dot {
	slices.SortFunc(ds, Dot.Compare)
	ds = slices.Compact(ds)
	for len(ds) > 0 && ds[0].Counter == 0 && ds[0].Node == "" {
		ds = ds[1:]
	}
	return ds
}

// joinDotted is the causal join of two dot stores held as slices sorted by
// cmp (an identity order consistent with equality of elements):
//
//   - an element of l survives if r holds it too, or rctx does not cover
//     its dot (r never saw it, so r's absence says nothing);
//   - an element of r is added if lctx does not cover its dot (l never saw
//     it; if l saw it and does not hold it, l removed it).
//
// l is modified in place and returned; r is only read and never aliased (its
// elements are copied; their immutable contents are shared).
func joinDotted[T any](l, r []T, cmp func(a, b *T) int, dotOf func(*T) Dot, lctx, rctx DotSet) []T {
	// Joins usually add an element or two (a register overwrite replaces
	// one head with one): collect them on the stack.
	var addBuf [2]T
	adds := addBuf[:0]
	w, j := 0, 0
	for i := range l {
		for j < len(r) && cmp(&r[j], &l[i]) < 0 {
			if !lctx.Contains(dotOf(&r[j])) {
				adds = append(adds, r[j])
			}
			j++
		}
		keep := j < len(r) && cmp(&r[j], &l[i]) == 0
		if keep {
			j++
		} else {
			keep = !rctx.Contains(dotOf(&l[i]))
		}
		if keep {
			if w != i {
				l[w] = l[i]
			}
			w++
		}
	}
	for ; j < len(r); j++ {
		if !lctx.Contains(dotOf(&r[j])) {
			adds = append(adds, r[j])
		}
	}
	clear(l[w:])
	l = l[:w]
	if len(adds) == 0 {
		return l
	}
	if len(l) == 0 {
		// Reuse l's storage (l is ours to modify), else copy adds off the
		// stack.
		if cap(l) >= len(adds) {
			return append(l, adds...)
		}
		return slices.Clone(adds)
	}
	// Merge the (sorted) additions in from the back.
	n := len(l)
	l = slices.Grow(l, len(adds))[:n+len(adds)]
	i, k := n-1, len(adds)-1
	for o := len(l) - 1; k >= 0; o-- {
		if i >= 0 && cmp(&l[i], &adds[k]) > 0 {
			l[o] = l[i]
			i--
		} else {
			l[o] = adds[k]
			k--
		}
	}
	return l
}

// mergeKeyed joins two slices sorted by key where elements with equal keys
// combine with join (a lattice join: max, higher version, ...). l is
// modified and returned. Elements taken from r alone go through adopt (nil
// for plain values) so that l never shares mutable storage with r.
func mergeKeyed[T any](l, r []T, cmp func(a, b *T) int, join func(a, b T) T, adopt func(T) T) []T {
	if len(r) == 0 {
		return l
	}
	var adds []T
	j := 0
	for i := range l {
		for j < len(r) && cmp(&r[j], &l[i]) < 0 {
			adds = append(adds, r[j])
			j++
		}
		if j < len(r) && cmp(&r[j], &l[i]) == 0 {
			l[i] = join(l[i], r[j])
			j++
		}
	}
	adds = append(adds, r[j:]...)
	if adopt != nil {
		for k := range adds {
			adds[k] = adopt(adds[k])
		}
	}
	if len(adds) == 0 {
		return l
	}
	out := make([]T, 0, len(l)+len(adds))
	i, k := 0, 0
	for i < len(l) || k < len(adds) {
		if k == len(adds) || (i < len(l) && cmp(&l[i], &adds[k]) < 0) {
			out = append(out, l[i])
			i++
		} else {
			out = append(out, adds[k])
			k++
		}
	}
	return out
}

// joinNested joins two slices of composite elements sorted by key (cmp):
// an element present on both sides is joined with join(dst, src); an
// element only in l is joined with an empty one (join(dst, nil)), which
// applies r's removals to it; an element only in r is adopted (a fresh
// element joined with it: l never shares storage with r). Elements left
// empty are dropped. l is modified in place and returned.
func joinNested[T any](l, r []T, cmp func(a, b *T) int, join func(dst, src *T), adopt func(src *T) T, empty func(*T) bool) []T {
	var adds []T
	w, j := 0, 0
	for i := range l {
		for j < len(r) && cmp(&r[j], &l[i]) < 0 {
			if a := adopt(&r[j]); !empty(&a) {
				adds = append(adds, a)
			}
			j++
		}
		if j < len(r) && cmp(&r[j], &l[i]) == 0 {
			join(&l[i], &r[j])
			j++
		} else {
			join(&l[i], nil)
		}
		if empty(&l[i]) {
			continue
		}
		if w != i {
			l[w] = l[i]
		}
		w++
	}
	for ; j < len(r); j++ {
		if a := adopt(&r[j]); !empty(&a) {
			adds = append(adds, a)
		}
	}
	clear(l[w:])
	l = l[:w]
	if len(adds) == 0 {
		return l
	}
	n := len(l)
	l = slices.Grow(l, len(adds))[:n+len(adds)]
	i, k := n-1, len(adds)-1
	for o := len(l) - 1; k >= 0; o-- {
		if i >= 0 && cmp(&l[i], &adds[k]) > 0 {
			l[o] = l[i]
			i--
		} else {
			l[o] = adds[k]
			k--
		}
	}
	return l
}
