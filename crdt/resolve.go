package crdt

// Resolution of an Entry's heads: the winner under a strategy, the heads of
// its incarnation (whose elements are visible), and the losers (conflicts).

// winnerUnder returns e's winning head under s, or nil if e has no heads.
func (e *Entry) winnerUnder(s Strategy) *Head {
	if w := e.heads.winner(s); w >= 0 {
		return &e.heads.heads[w]
	}
	return nil
}

// eachIncPayload calls fn with the payload of every head in w's
// incarnation: w alone for a whole-value head, every element-carrying head
// of w's kind otherwise.
func (e *Entry) eachIncPayload(w *Head, fn func(p *payload)) {
	if !w.carriesElements() {
		if p := e.payloadOf(w.Dot); p != nil {
			fn(p)
		}
		return
	}
	for i := range e.heads.heads {
		if h := &e.heads.heads[i]; sameIncarnation(w, h) {
			if p := e.payloadOf(h.Dot); p != nil {
				fn(p)
			}
		}
	}
}

// inInc reports whether the head with dot parent is in w's incarnation.
func (e *Entry) inInc(w *Head, parent Dot) bool {
	i := e.heads.find(parent)
	return i >= 0 && sameIncarnation(w, &e.heads.heads[i])
}

// incPayloads returns the payloads of w's incarnation.
func (e *Entry) incPayloads(w *Head) []*payload {
	var ps []*payload
	e.eachIncPayload(w, func(p *payload) { ps = append(ps, p) })
	return ps
}

// The inc* functions return the union of w's incarnation's elements of one
// kind: the payload's own block when there is one (no copy; read only), a
// merged copy when concurrent creations left several.

func (e *Entry) incSet(w *Head) *ORSet {
	ps := e.incPayloads(w)
	switch len(ps) {
	case 0:
		return &ORSet{}
	case 1:
		return &ps[0].set
	}
	u := ps[0].set.Clone()
	for _, p := range ps[1:] {
		u.Merge(&p.set, noDots{}, noDots{})
	}
	return &u
}

func (e *Entry) incList(w *Head) *List {
	ps := e.incPayloads(w)
	switch len(ps) {
	case 0:
		return &List{}
	case 1:
		return &ps[0].list
	}
	u := ps[0].list.Clone()
	for _, p := range ps[1:] {
		u.Merge(&p.list, noDots{}, noDots{})
	}
	return &u
}

func (e *Entry) incHash(w *Head) *ORMap {
	ps := e.incPayloads(w)
	switch len(ps) {
	case 0:
		return &ORMap{}
	case 1:
		return &ps[0].hash
	}
	u := ps[0].hash.Clone()
	for _, p := range ps[1:] {
		u.Merge(&p.hash, noDots{}, noDots{})
	}
	return &u
}

func (e *Entry) incAgg(w *Head) *Aggregate {
	ps := e.incPayloads(w)
	switch len(ps) {
	case 0:
		return &Aggregate{}
	case 1:
		return &ps[0].agg
	}
	u := ps[0].agg.Clone()
	for _, p := range ps[1:] {
		u.Merge(&p.agg)
	}
	return &u
}

// incCounter sums the contributions of w's incarnation.
func (e *Entry) incCounter(w *Head) (int64, error) {
	var sum counterSum
	e.eachIncPayload(w, func(p *payload) { sum.add(&p.counter) })
	return sum.int64()
}

// incTTL returns the winning TTL write of w's incarnation under s.
func (e *Entry) incTTL(w *Head, s Strategy) (ttlElem, bool) {
	var best ttlElem
	found := false
	e.eachIncPayload(w, func(p *payload) {
		for _, t := range p.ttl {
			if !found || ttlBeats(s, &t, &best) {
				best, found = t, true
			}
		}
	})
	return best, found
}

func ttlBeats(s Strategy, a, b *ttlElem) bool {
	if c := s.Compare(a.Stamp, b.Stamp); c != 0 {
		return c > 0
	}
	return a.Dot.Compare(b.Dot) > 0
}

// lossKey identifies a discarded head: its slot and its dot.
type lossKey struct {
	hashField bool
	field     string
	loser     Dot
}

// eachLoss calls fn for every discarded head under s: key-level losers,
// and field-level losers of the visible hash.
func (e *Entry) eachLoss(s Strategy, fn func(hashField bool, field string, w, l *Head)) {
	wi := e.heads.winner(s)
	if wi < 0 {
		return
	}
	w := &e.heads.heads[wi]
	e.heads.eachLoser(wi, func(l *Head) { fn(false, "", w, l) })
	if w.Kind != KindHash || !w.carriesElements() {
		return
	}
	h := e.incHash(w)
	for i := range h.f {
		f := &h.f[i]
		if f.Reg.len() < 2 {
			continue
		}
		fw := f.Reg.winner(s)
		f.Reg.eachLoser(fw, func(l *Head) { fn(true, f.Name, &f.Reg.heads[fw], l) })
	}
}

// losses returns the keys of the heads discarded under s.
func (e *Entry) losses(s Strategy, into []lossKey) []lossKey {
	e.eachLoss(s, func(hf bool, field string, _, l *Head) {
		into = append(into, lossKey{hashField: hf, field: field, loser: l.Dot})
	})
	return into
}

// newConflicts returns a Conflict for every head discarded under s that was
// not already discarded before the join.
func (e *Entry) newConflicts(before []lossKey, s Strategy) []Conflict {
	var out []Conflict
	e.eachLoss(s, func(hf bool, field string, w, l *Head) {
		k := lossKey{hashField: hf, field: field, loser: l.Dot}
		for _, b := range before {
			if b == k {
				return
			}
		}
		out = append(out, Conflict{HashField: hf, Field: field, Winner: e.rendered(hf, field, w, s), Loser: e.rendered(hf, field, l, s), Strategy: s})
	})
	return out
}

// maxConflictValue bounds the value rendered into a conflict record.
const maxConflictValue = 8 << 10

// rendered returns a copy of head h (of the key, or of hash field field)
// whose value is filled in when h carries elements: a counter in decimal,
// a set, list or hash in its whole-value encoding, so that a conflict
// record shows what won and what was discarded (DisplayValue reads both
// forms). A value larger than maxConflictValue stays empty.
func (e *Entry) rendered(hashField bool, field string, h *Head, s Strategy) Head {
	out := *h
	if !h.carriesElements() {
		return out
	}
	var v []byte
	switch {
	case hashField:
		if h.Kind != KindCounter {
			return out
		}
		wi := e.heads.winner(s)
		if wi < 0 {
			return out
		}
		if f := e.incHash(&e.heads.heads[wi]).field(field); f != nil {
			if n, err := f.counterValue(h); err == nil {
				v = formatInt(n)
			}
		}
	case h.Kind == KindCounter:
		if n, err := e.incCounter(h); err == nil {
			v = formatInt(n)
		}
	case h.Kind == KindSet:
		v = encodeSetValue(e.incSet(h).Members())
	case h.Kind == KindList:
		v = encodeListValue(e.incList(h).Range(0, -1))
	case h.Kind == KindHash:
		if fvs, err := e.incHash(h).All(s); err == nil {
			v = encodeHashValue(fvs)
		}
	}
	if len(v) > 0 && len(v) <= maxConflictValue {
		out.Value = v
	}
	return out
}
