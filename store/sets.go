package store

import (
	"context"

	"github.com/ferrite-edge/ferrite/crdt"
)

// SAdd adds members to the set at key and returns how many were new.
func (s *Store) SAdd(ctx context.Context, key string, members ...string) (int, error) {
	if len(members) == 0 {
		return 0, ErrSyntax
	}
	adds := 0
	for _, m := range members {
		if err := s.checkValue([]byte(m)); err != nil {
			return 0, err
		}
		adds += len(m) + entryOverhead
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	err := s.write(ctx, &writeReq{key: key, grows: true, creates: true, adds: adds,
		build: func(w *keyWriter) error {
			e := w.entry()
			switch e.Kind(w.now) {
			case crdt.KindNone, crdt.KindSet:
			default:
				return ErrWrongType
			}
			isSet := e.Kind(w.now) == crdt.KindSet
			seen := make(map[string]bool, len(members))
			for _, m := range members {
				if !seen[m] {
					if in, _ := e.IsMember(m); !isSet || !in {
						n++
					}
				}
				seen[m] = true
			}
			return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
				return e.SAdd(m, members...)
			})
		}})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SRem removes members from the set at key and returns how many were
// present.
func (s *Store) SRem(ctx context.Context, key string, members ...string) (int, error) {
	if len(members) == 0 {
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
		case crdt.KindSet:
		default:
			return ErrWrongType
		}
		var present []string
		seen := make(map[string]bool, len(members))
		for _, m := range members {
			if in, _ := e.IsMember(m); !seen[m] && in {
				present = append(present, m)
			}
			seen[m] = true
		}
		if len(present) == 0 {
			return nil
		}
		n = len(present)
		return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
			return e.SRem(m, present...)
		})
	}})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SMembers returns the members of the set at key, sorted.
func (s *Store) SMembers(ctx context.Context, key string) ([]string, error) {
	var out []string
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return nil
		case crdt.KindSet:
		default:
			return ErrWrongType
		}
		var err error
		out, err = e.Members()
		return err
	})
	return out, err
}

// SIsMember reports whether member is in the set at key.
func (s *Store) SIsMember(ctx context.Context, key, member string) (bool, error) {
	var ok bool
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		switch e.Kind(now) {
		case crdt.KindNone:
			return nil
		case crdt.KindSet:
		default:
			return ErrWrongType
		}
		var err error
		ok, err = e.IsMember(member)
		return err
	})
	return ok, err
}

// SCard returns the number of members of the set at key.
func (s *Store) SCard(ctx context.Context, key string) (int, error) {
	m, err := s.SMembers(ctx, key)
	return len(m), err
}
