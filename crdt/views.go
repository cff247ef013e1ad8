package crdt

import (
	"slices"
	"strings"
)

// Views read the visible value of a key under the strategy of the last join
// (Entry.Strategy). Kind and ExpireAt account for expiry; the other views do
// not: call Kind(now) first, and treat KindNone as "no such key". Views
// never modify the entry; returned byte slices alias it and must not be
// modified.

// Winner returns the winning head, if any.
func (e *Entry) Winner() (Head, bool) {
	if w := e.winnerUnder(e.strategy); w != nil {
		return *w, true
	}
	return Head{}, false
}

// Kind returns the visible kind of the key at time now (Unix ms):
// KindNone if it was never written, is deleted, has expired, or is an
// emptied collection.
func (e *Entry) Kind(now int64) Kind {
	k := e.visibleKind()
	if k == KindNone {
		return KindNone
	}
	if at := e.ExpireAt(); at != 0 && now >= at {
		return KindNone
	}
	return k
}

// Exists reports whether the key is visible at time now.
func (e *Entry) Exists(now int64) bool { return e.Kind(now) != KindNone }

// visibleKind is Kind without expiry.
func (e *Entry) visibleKind() Kind {
	return e.kindOf(e.winnerUnder(e.strategy), e.strategy)
}

// kindOf returns the visible kind under s of a key whose winner is w
// (ignoring expiry).
func (e *Entry) kindOf(w *Head, s Strategy) Kind {
	switch {
	case w == nil || w.Kind == KindDeleted:
		return KindNone
	case !w.carriesElements():
		return w.Kind
	}
	switch w.Kind {
	case KindSet, KindList:
		empty := true
		e.eachIncPayload(w, func(p *payload) {
			empty = empty && len(p.set.e) == 0 && len(p.list.items) == 0
		})
		if empty {
			return KindNone
		}
	case KindHash:
		// Fields of concurrent incarnations resolve jointly.
		if !e.incHash(w).any(s) {
			return KindNone
		}
	}
	return w.Kind
}

// ExpireAt returns the key's expiry time in Unix ms, or 0 if it has none.
func (e *Entry) ExpireAt() int64 {
	w := e.winnerUnder(e.strategy)
	if w == nil || w.Kind == KindDeleted {
		return 0
	}
	t, _ := e.incTTL(w, e.strategy)
	return t.At
}

// Bytes returns the value of a string or counter key (a counter as
// decimal), nil for a missing key, ErrWrongType for other kinds.
func (e *Entry) Bytes() ([]byte, error) {
	w := e.winnerUnder(e.strategy)
	switch e.kindOf(w, e.strategy) {
	case KindNone:
		return nil, nil
	case KindString:
		return w.Value, nil
	case KindCounter:
		if !w.carriesElements() {
			return w.Value, nil
		}
		v, err := e.incCounter(w)
		if err != nil {
			return nil, err
		}
		return formatInt(v), nil
	}
	return nil, ErrWrongType
}

// Int returns the value of a counter or integer string key (0 for a
// missing key). Errors: ErrNotInteger, ErrWrongType, ErrOverflow (merged
// concurrent increments exceed int64).
func (e *Entry) Int() (int64, error) {
	return e.intOf(e.winnerUnder(e.strategy), e.strategy)
}

func (e *Entry) intOf(w *Head, s Strategy) (int64, error) {
	switch e.kindOf(w, s) {
	case KindNone:
		return 0, nil
	case KindString, KindCounter:
		if w.carriesElements() {
			return e.incCounter(w)
		}
		v, ok := parseInt(w.Value)
		if !ok {
			return 0, ErrNotInteger
		}
		return v, nil
	}
	return 0, ErrWrongType
}

// HGet returns the value of a hash field (a counter field as decimal).
func (e *Entry) HGet(field string) ([]byte, bool, error) {
	w := e.winnerUnder(e.strategy)
	switch e.kindOf(w, e.strategy) {
	case KindNone:
		return nil, false, nil
	case KindHash:
	default:
		return nil, false, ErrWrongType
	}
	if !w.carriesElements() {
		fvs, err := decodeHashValue(w.Value)
		if err != nil {
			return nil, false, err
		}
		i, ok := slices.BinarySearchFunc(fvs, field, func(f FieldValue, n string) int { return strings.Compare(f.Field, n) })
		if !ok {
			return nil, false, nil
		}
		return fvs[i].Value, true, nil
	}
	h := e.incHash(w)
	return h.Get(field, e.strategy)
}

// HGetAll returns every field of a hash, sorted by name.
func (e *Entry) HGetAll() ([]FieldValue, error) {
	w := e.winnerUnder(e.strategy)
	return e.hashOf(w, e.strategy)
}

func (e *Entry) hashOf(w *Head, s Strategy) ([]FieldValue, error) {
	switch e.kindOf(w, s) {
	case KindNone:
		return nil, nil
	case KindHash:
	default:
		return nil, ErrWrongType
	}
	if !w.carriesElements() {
		return decodeHashValue(w.Value)
	}
	return e.incHash(w).All(s)
}

// Range returns list items start..stop inclusive (LRANGE index rules).
func (e *Entry) Range(start, stop int64) ([][]byte, error) {
	items, err := e.listOf(e.winnerUnder(e.strategy), e.strategy)
	if err != nil {
		return nil, err
	}
	lo, hi := redisRange(start, stop, len(items))
	return items[lo:hi:hi], nil
}

// listOf returns every list value in order.
func (e *Entry) listOf(w *Head, s Strategy) ([][]byte, error) {
	switch e.kindOf(w, s) {
	case KindNone:
		return nil, nil
	case KindList:
	default:
		return nil, ErrWrongType
	}
	if !w.carriesElements() {
		return decodeListValue(w.Value)
	}
	l := e.incList(w)
	return l.Range(0, -1), nil
}

// Members returns the members of a set in ascending order.
func (e *Entry) Members() ([]string, error) {
	return e.membersOf(e.winnerUnder(e.strategy), e.strategy)
}

func (e *Entry) membersOf(w *Head, s Strategy) ([]string, error) {
	switch e.kindOf(w, s) {
	case KindNone:
		return nil, nil
	case KindSet:
	default:
		return nil, ErrWrongType
	}
	if !w.carriesElements() {
		return decodeSetValue(w.Value)
	}
	return e.incSet(w).Members(), nil
}

// IsMember reports whether m is a member of the set.
func (e *Entry) IsMember(m string) (bool, error) {
	w := e.winnerUnder(e.strategy)
	switch e.kindOf(w, e.strategy) {
	case KindNone:
		return false, nil
	case KindSet:
	default:
		return false, ErrWrongType
	}
	if !w.carriesElements() {
		ms, err := decodeSetValue(w.Value)
		if err != nil {
			return false, err
		}
		_, ok := slices.BinarySearch(ms, m)
		return ok, nil
	}
	found := false
	e.eachIncPayload(w, func(p *payload) { found = found || p.set.Contains(m) })
	return found, nil
}

// Len returns the number of items of a list, members of a set or fields of
// a hash (0 for a missing key; ErrWrongType for other kinds).
func (e *Entry) Len() (int, error) {
	w := e.winnerUnder(e.strategy)
	switch k := e.kindOf(w, e.strategy); {
	case k == KindNone:
		return 0, nil
	case !w.carriesElements():
		switch k {
		case KindList:
			v, err := decodeListValue(w.Value)
			return len(v), err
		case KindSet:
			v, err := decodeSetValue(w.Value)
			return len(v), err
		case KindHash:
			v, err := decodeHashValue(w.Value)
			return len(v), err
		}
	case k == KindList:
		return e.incList(w).Len(), nil
	case k == KindSet:
		return e.incSet(w).Len(), nil
	case k == KindHash:
		return e.incHash(w).Len(e.strategy), nil
	}
	return 0, ErrWrongType
}

// Aggregate returns the combined summary of an aggregate key (every
// origin's latest partial).
func (e *Entry) Aggregate() (Partial, error) {
	w := e.winnerUnder(e.strategy)
	switch e.kindOf(w, e.strategy) {
	case KindNone:
		return Partial{}, nil
	case KindAggregate:
		return e.incAgg(w).Total(), nil
	}
	return Partial{}, ErrWrongType
}

// OriginPartial returns origin's own partial of an aggregate key (for the
// origin to extend it and write the next Version).
func (e *Entry) OriginPartial(origin string) (Partial, bool, error) {
	w := e.winnerUnder(e.strategy)
	switch e.kindOf(w, e.strategy) {
	case KindNone:
		return Partial{}, false, nil
	case KindAggregate:
		p, ok := e.incAgg(w).Partial(origin)
		return p, ok, nil
	}
	return Partial{}, false, ErrWrongType
}
