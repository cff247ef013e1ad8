package store

import (
	"context"

	"github.com/ferrite-edge/ferrite/crdt"
)

// LPush pushes values to the head of the list at key (LPUSH k a b c leaves
// c b a at the head) and returns the new length.
func (s *Store) LPush(ctx context.Context, key string, values ...[]byte) (int64, error) {
	return s.push(ctx, key, true, values)
}

// RPush pushes values to the tail of the list at key and returns the new
// length.
func (s *Store) RPush(ctx context.Context, key string, values ...[]byte) (int64, error) {
	return s.push(ctx, key, false, values)
}

func (s *Store) push(ctx context.Context, key string, head bool, values [][]byte) (int64, error) {
	if len(values) == 0 {
		return 0, ErrSyntax
	}
	adds := 0
	for _, v := range values {
		if err := s.checkValue(v); err != nil {
			return 0, err
		}
		adds += len(v) + entryOverhead
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var n int64
	err := s.write(ctx, &writeReq{key: key, grows: true, creates: true, adds: adds,
		build: func(w *keyWriter) error {
			if err := w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
				if head {
					return e.LPush(m, values...)
				}
				return e.RPush(m, values...)
			}); err != nil {
				return err
			}
			l, err := w.entry().Len()
			n = int64(l)
			return err
		}})
	return n, err
}

// LRange returns the items of the list at key from start to stop inclusive;
// negative indexes count from the end (-1 is the last item), as in Redis.
func (s *Store) LRange(ctx context.Context, key string, start, stop int64) ([][]byte, error) {
	var out [][]byte
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return nil
		case crdt.KindList:
		default:
			return ErrWrongType
		}
		items, err := e.Range(start, stop)
		if err != nil {
			return err
		}
		for _, v := range items {
			out = append(out, append([]byte{}, v...))
		}
		return nil
	})
	return out, err
}

// LLen returns the length of the list at key (0 if absent).
func (s *Store) LLen(ctx context.Context, key string) (int64, error) {
	var n int64
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return nil
		case crdt.KindList:
		default:
			return ErrWrongType
		}
		l, err := e.Len()
		n = int64(l)
		return err
	})
	return n, err
}

// LTrim keeps only the items of the list at key from start to stop
// inclusive (Redis indexes). Items pushed concurrently on other replicas
// survive the trim.
func (s *Store) LTrim(ctx context.Context, key string, start, stop int64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.write(ctx, &writeReq{key: key, build: func(w *keyWriter) error {
		e := w.entry()
		switch e.Kind(w.now) {
		case crdt.KindNone:
			return nil
		case crdt.KindList:
		default:
			return ErrWrongType
		}
		return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
			return e.LTrim(m, start, stop)
		})
	}})
}
