package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

// Errors of the data model, re-exported so callers need not import crdt.
var (
	// ErrWrongType: the key holds another kind of value (Redis WRONGTYPE).
	ErrWrongType = crdt.ErrWrongType
	// ErrNotInteger: INCR-like operation on a value that is not an integer.
	ErrNotInteger = crdt.ErrNotInteger
	// ErrOverflow: an increment would overflow int64.
	ErrOverflow = crdt.ErrOverflow
)

// FieldValue is one field of a hash and its value.
type FieldValue = crdt.FieldValue

// SetOptions are SET's options.
type SetOptions struct {
	// TTL, if positive, expires the key after it (EX/PX).
	TTL time.Duration
	// ExpireAt, if not zero, expires the key at that time (EXAT/PXAT). A
	// time in the past leaves the key set but already expired.
	ExpireAt time.Time
	// KeepTTL keeps the key's current expiry (KEEPTTL); otherwise SET
	// clears it.
	KeepTTL bool
	// NX sets only if the key does not exist; XX only if it does.
	NX, XX bool
}

func (o *SetOptions) validate() error {
	n := 0
	if o.TTL != 0 {
		n++
		if o.TTL < 0 {
			return fmt.Errorf("%w: %v", ErrBadTTL, o.TTL)
		}
	}
	if !o.ExpireAt.IsZero() {
		n++
	}
	if o.KeepTTL {
		n++
	}
	if n > 1 {
		return fmt.Errorf("%w: TTL, ExpireAt and KeepTTL are exclusive", ErrBadTTL)
	}
	if o.NX && o.XX {
		return fmt.Errorf("store: NX and XX are exclusive")
	}
	return nil
}

// Set sets key to the string value, clearing any expiry.
func (s *Store) Set(ctx context.Context, key string, value []byte) error {
	_, err := s.SetWith(ctx, key, value, SetOptions{})
	return err
}

// SetWith sets key to the string value with options. It reports false (and
// writes nothing) when NX or XX prevented the write.
func (s *Store) SetWith(ctx context.Context, key string, value []byte, o SetOptions) (bool, error) {
	r, err := s.set(ctx, key, value, o, false)
	return err == nil && r.done, err
}

// SetGet is SET with GET: it sets key as SetWith does and returns the value
// it held before (existed false if it had none), read in the same atomic
// write. A key holding a collection is left alone: ErrWrongType.
func (s *Store) SetGet(ctx context.Context, key string, value []byte, o SetOptions) (old []byte, existed bool, err error) {
	r, err := s.set(ctx, key, value, o, true)
	if err != nil {
		return nil, false, err
	}
	return r.old, r.had, nil
}

func (s *Store) set(ctx context.Context, key string, value []byte, o SetOptions, get bool) (*setReq, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := s.checkValue(value); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	r := &setReq{value: value, o: o, get: get}
	r.writeReq = writeReq{key: key, grows: true, creates: true, adds: len(value) + entryOverhead, op: r}
	return r, s.write(ctx, &r.writeReq)
}

// setReq is a SET: the hottest write, built without a closure.
type setReq struct {
	writeReq
	value []byte
	o     SetOptions
	at    int64 // expiry from o (Unix ms), 0 for none
	done  bool

	get bool   // SET ... GET: read the old value first
	old []byte // the old value (get)
	had bool   // the key existed (get)
}

func (r *setReq) build(w *keyWriter) error {
	o := &r.o
	if r.get && w.entry().Kind(w.now) != crdt.KindNone {
		v, err := w.entry().Bytes() // a counter in decimal; WRONGTYPE for collections
		if err != nil {
			return err
		}
		r.old, r.had = append([]byte{}, v...), true
	}
	if o.NX || o.XX {
		exists := w.entry().Kind(w.now) != crdt.KindNone
		if (o.NX && exists) || (o.XX && !exists) {
			return nil
		}
	}
	switch {
	case o.TTL > 0:
		var err error
		if r.at, err = expireAtFromTTL(w.now, o.TTL); err != nil {
			return err
		}
	case !o.ExpireAt.IsZero():
		if r.at = o.ExpireAt.UnixMilli(); r.at <= 0 {
			r.at = 1 // already expired
		}
	}
	r.done = true
	return w.mutate(r.set)
}

func (r *setReq) set(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
	return e.Set(m, r.value, r.o.KeepTTL, r.at)
}

// entryOverhead bounds the bytes one element adds to an entry beyond its
// value (dot, stamp, framing).
const entryOverhead = 64

// Get returns the value of key: a string, or a counter in decimal. It
// returns ErrNotFound if the key does not exist and ErrWrongType for
// collections.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		if e.Kind(now) == crdt.KindNone {
			return ErrNotFound
		}
		v, err := e.Bytes() // a counter in decimal; WRONGTYPE for collections
		if err != nil {
			return err
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// IncrBy adds n to the integer at key (absent counts as 0) and returns the
// new value. Under CrdtMerge concurrent increments on different replicas
// all count.
func (s *Store) IncrBy(ctx context.Context, key string, n int64) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var v int64
	err := s.write(ctx, &writeReq{key: key, grows: true, creates: true, adds: entryOverhead,
		build: func(w *keyWriter) error {
			if err := w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
				return e.IncrBy(m, n)
			}); err != nil {
				return err
			}
			var err error
			v, err = w.entry().Int()
			return err
		}})
	return v, err
}
