package store

import (
	"context"
	"strconv"

	"github.com/ferrite-edge/ferrite/crdt"
)

// HSet sets fields of the hash at key and returns how many were new. A
// field given twice takes its last value.
func (s *Store) HSet(ctx context.Context, key string, fields ...FieldValue) (int, error) {
	if len(fields) == 0 {
		return 0, ErrSyntax
	}
	adds := 0
	for _, f := range fields {
		if err := s.checkValue(f.Value); err != nil {
			return 0, err
		}
		if err := s.checkValue([]byte(f.Field)); err != nil {
			return 0, err
		}
		adds += len(f.Field) + len(f.Value) + entryOverhead
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	added := 0
	err := s.write(ctx, &writeReq{key: key, grows: true, creates: true, adds: adds,
		build: func(w *keyWriter) error {
			e := w.entry()
			if k := e.Kind(w.now); k != crdt.KindNone && k != crdt.KindHash {
				return ErrWrongType
			}
			seen := make(map[string]bool, len(fields))
			for _, f := range fields {
				if seen[f.Field] {
					continue
				}
				seen[f.Field] = true
				if e.Kind(w.now) != crdt.KindHash {
					added++
				} else if _, ok, _ := e.HGet(f.Field); !ok {
					added++
				}
			}
			return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
				return e.HSetMulti(m, fields)
			})
		}})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// HGet returns the value of field in the hash at key, or ErrNotFound.
func (s *Store) HGet(ctx context.Context, key, field string) ([]byte, error) {
	var out []byte
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return ErrNotFound
		case crdt.KindHash:
		default:
			return ErrWrongType
		}
		v, ok, err := e.HGet(field)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// HGetAll returns the fields of the hash at key sorted by name (empty if
// the key does not exist).
func (s *Store) HGetAll(ctx context.Context, key string) ([]FieldValue, error) {
	var out []FieldValue
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return nil
		case crdt.KindHash:
		default:
			return ErrWrongType
		}
		all, err := e.HGetAll()
		if err != nil {
			return err
		}
		for _, f := range all {
			out = append(out, FieldValue{Field: f.Field, Value: append([]byte{}, f.Value...)})
		}
		return nil
	})
	return out, err
}

// HLen returns the number of fields of the hash at key.
func (s *Store) HLen(ctx context.Context, key string) (int, error) {
	fields, err := s.HGetAll(ctx, key)
	return len(fields), err
}

// HDel deletes fields from the hash at key and returns how many existed.
func (s *Store) HDel(ctx context.Context, key string, fields ...string) (int, error) {
	if len(fields) == 0 {
		return 0, ErrSyntax
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	err := s.write(ctx, &writeReq{key: key, build: func(w *keyWriter) error {
		e := w.entry()
		switch e.Kind(w.now) {
		case crdt.KindNone:
			return nil
		case crdt.KindHash:
		default:
			return ErrWrongType
		}
		var present []string
		seen := make(map[string]bool, len(fields))
		for _, f := range fields {
			if _, ok, _ := e.HGet(f); ok && !seen[f] {
				present = append(present, f)
				seen[f] = true
			}
		}
		if len(present) == 0 {
			return nil
		}
		n = len(present)
		return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
			return e.HDel(m, present...)
		})
	}})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// HIncrBy adds n to the integer field of the hash at key and returns the
// new value. Under CrdtMerge concurrent increments all count.
func (s *Store) HIncrBy(ctx context.Context, key, field string, n int64) (int64, error) {
	if err := s.checkValue([]byte(field)); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var v int64
	err := s.write(ctx, &writeReq{key: key, grows: true, creates: true, adds: len(field) + entryOverhead,
		build: func(w *keyWriter) error {
			if err := w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
				return e.HIncrBy(m, field, n)
			}); err != nil {
				return err
			}
			b, _, err := w.entry().HGet(field)
			if err != nil {
				return err
			}
			if v, err = strconv.ParseInt(string(b), 10, 64); err != nil {
				return ErrNotInteger
			}
			return nil
		}})
	return v, err
}
