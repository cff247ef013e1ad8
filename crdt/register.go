package crdt

import "slices"

// LWWRegister is a multi-value register of heads: every write replaces the
// heads it observed, so concurrent writes leave several heads, and a
// strategy picks the winner deterministically on every replica. The losers
// are kept (not pruned) until a later write observes them: that is what lets
// the store report them as conflicts, and what keeps every replica
// converging even when CloudWins or EdgeWins rank a causally later write
// below an earlier one.
//
// A key's heads and each hash field's heads are LWWRegisters. The zero value
// is an empty register.
type LWWRegister struct {
	heads []Head // sorted by Dot
}

func cmpHead(a, b *Head) int    { return a.Dot.Compare(b.Dot) }
func headDot(h *Head) Dot       { return h.Dot }
func (r *LWWRegister) len() int { return len(r.heads) }

// Heads returns the register's heads sorted by dot. The result aliases the
// register; do not modify it.
func (r *LWWRegister) Heads() []Head { return r.heads }

// Write returns the delta of writing value: a register holding the new head,
// and the dots it covers (the new dot and every head it observed, which it
// removes).
func (r *LWWRegister) Write(dot Dot, st Stamp, kind Kind, value []byte) (LWWRegister, []Dot) {
	covers := make([]Dot, 0, len(r.heads)+1)
	for i := range r.heads {
		covers = append(covers, r.heads[i].Dot)
	}
	covers = append(covers, dot)
	h := Head{Dot: dot, Stamp: st, Kind: kind, Value: cloneBytes(value)}
	return LWWRegister{heads: []Head{h}}, normalizeDots(covers)
}

// Merge joins o into r. ctx is the context of r's replica; octx the context
// of o (a replica's Context, or the dots a delta covers).
func (r *LWWRegister) Merge(o *LWWRegister, ctx, octx DotSet) {
	r.heads = joinDotted(r.heads, o.heads, cmpHead, headDot, ctx, octx)
}

// Clone returns a copy of r (head values are shared: they are immutable).
func (r *LWWRegister) Clone() LWWRegister { return LWWRegister{heads: slices.Clone(r.heads)} }

// find returns the index of the head with dot d, or -1.
func (r *LWWRegister) find(d Dot) int {
	i, ok := slices.BinarySearchFunc(r.heads, d, func(h Head, d Dot) int { return h.Dot.Compare(d) })
	if !ok {
		return -1
	}
	return i
}

// winner returns the index of the greatest head under s (ties, which only
// corrupt input can produce, broken by dot), or -1 if r is empty.
func (r *LWWRegister) winner(s Strategy) int {
	w := -1
	for i := range r.heads {
		if w < 0 || beats(s, &r.heads[i], &r.heads[w]) {
			w = i
		}
	}
	return w
}

func beats(s Strategy, a, b *Head) bool {
	if c := s.Compare(a.Stamp, b.Stamp); c != 0 {
		return c > 0
	}
	return a.Dot.Compare(b.Dot) > 0
}

// sameIncarnation reports whether h belongs to the incarnation of winner w:
// h is w, or both carry elements of the same kind (concurrent creations of
// one collection or counter, whose elements combine).
func sameIncarnation(w, h *Head) bool {
	return w.Dot == h.Dot || (w.carriesElements() && h.carriesElements() && w.Kind == h.Kind)
}

// Resolve returns the winning head under s and the heads that lost to it
// and were discarded (a conflict each). Heads of the winner's incarnation
// and heads equal in value to the winner are neither. ok is false if r is
// empty.
func (r *LWWRegister) Resolve(s Strategy) (winner Head, losers []Head, ok bool) {
	w := r.winner(s)
	if w < 0 {
		return Head{}, nil, false
	}
	r.eachLoser(w, func(h *Head) { losers = append(losers, *h) })
	return r.heads[w], losers, true
}

// eachLoser calls fn for every head that is discarded in favour of head w.
// Deleted versus Deleted, and identical values, are not conflicts.
func (r *LWWRegister) eachLoser(w int, fn func(*Head)) {
	win := &r.heads[w]
	for i := range r.heads {
		h := &r.heads[i]
		if i == w || sameIncarnation(win, h) || sameWrite(win, h) {
			continue
		}
		fn(h)
	}
}
