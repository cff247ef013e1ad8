package store

import (
	"context"

	"github.com/ferrite-edge/ferrite/crdt"
)

// Aggregate keys hold one summary (count, sum, min, max, first and last
// time) per origin node; replicas merge them per origin whatever the key's
// strategy, so a re-delivered delta never double counts. Ingest writes
// closed sensor buckets here.

// AggregateMerge adds p, the summary of some readings, into this node's
// partial of the aggregate at key (creating it), durably. Merging two
// summaries of the same interval adds both.
func (s *Store) AggregateMerge(ctx context.Context, key string, p crdt.Partial) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return s.aggregateWrite(ctx, key, func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
		cur, _, err := e.OriginPartial(m.Dot.Node)
		if err != nil {
			return nil, err
		}
		next := cur.Combine(p)
		next.Version = 0 // the current version plus one
		return e.AggregateAdd(m, next)
	})
}

// AggregateAdd replaces this node's partial of the aggregate at key with
// p, its whole summary so far. p.Version must exceed the current one
// (crdt.ErrStale); 0 means the current one plus one.
func (s *Store) AggregateAdd(ctx context.Context, key string, p crdt.Partial) error {
	return s.aggregateWrite(ctx, key, func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
		return e.AggregateAdd(m, p)
	})
}

func (s *Store) aggregateWrite(ctx context.Context, key string, fn func(*crdt.Entry, crdt.Mut) (*crdt.Delta, error)) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.write(ctx, &writeReq{key: key, grows: true, creates: true, adds: 2 * entryOverhead,
		build: func(w *keyWriter) error {
			switch w.entry().Kind(w.now) {
			case crdt.KindNone, crdt.KindAggregate:
			default:
				return ErrWrongType
			}
			return w.mutate(fn)
		}})
}

// Aggregate returns the summary of the aggregate at key over every origin,
// or ErrNotFound.
func (s *Store) Aggregate(ctx context.Context, key string) (crdt.Partial, error) {
	var p crdt.Partial
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return ErrNotFound
		case crdt.KindAggregate:
		default:
			return ErrWrongType
		}
		var err error
		p, err = e.Aggregate()
		return err
	})
	return p, err
}

// AggregatePartial returns origin's own partial of the aggregate at key.
func (s *Store) AggregatePartial(ctx context.Context, key, origin string) (crdt.Partial, bool, error) {
	var p crdt.Partial
	var ok bool
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return nil
		case crdt.KindAggregate:
		default:
			return ErrWrongType
		}
		var err error
		p, ok, err = e.OriginPartial(origin)
		return err
	})
	return p, ok, err
}
