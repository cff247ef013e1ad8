package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// TTL.
//
// A key's expiry is part of its CRDT entry (an LWW register tagged with its
// head), so EXPIRE/PERSIST replicate like any write. Reads pass the current
// time to the entry's views, so an expired key is invisible at once. The
// index t<be64 expireAt><key> lists keys by expiry; the sweeper walks it
// from the start up to now, at most Options.SweepBatch keys per tick, and
// deletes each expired key with a normal local DEL, which replicates (a
// key several replicas sweep gets concurrent deletes: Deleted vs Deleted is
// not a conflict).

// NoExpiry is returned by TTL for a key without an expiry.
const NoExpiry time.Duration = -1

// sweepExpired deletes up to limit expired keys. The caller holds
// s.enter().
func (s *Store) sweepExpired(ctx context.Context, limit int) (int, error) {
	now := s.opts.Clock()
	if now < 0 {
		return 0, nil
	}
	due, err := s.dueTTL(now, limit)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	reqs := make([]*writeReq, 0, len(due))
	deleted := 0
	for _, d := range due {
		reqs = append(reqs, &writeReq{
			key:      d.key,
			staleTTL: d.at,
			build: func(w *keyWriter) error {
				at := w.entry().ExpireAt()
				if at == 0 || at > w.now {
					return nil // persisted or extended since it was indexed
				}
				deleted++
				return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) {
					return e.DeleteExpired(m)
				})
			},
		})
	}
	if err := s.write(ctx, reqs...); err != nil {
		return 0, err
	}
	s.metrics.expired.Add(float64(deleted))
	return deleted, nil
}

type ttlItem struct {
	at  int64
	key string
}

// dueTTL lists up to limit index items with expireAt <= now.
func (s *Store) dueTTL(now int64, limit int) ([]ttlItem, error) {
	hi := ttlKey(nil, now+1, "")
	if now == math.MaxInt64 {
		hi = []byte{prefixTTL + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTTL}, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []ttlItem
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		at, key, ok := parseTTLKey(it.Key())
		if !ok {
			return nil, fmt.Errorf("%w: ttl key %x", ErrCorrupt, it.Key())
		}
		out = append(out, ttlItem{at: at, key: key})
	}
	return out, it.Error()
}

// SweepExpired deletes up to limit expired keys now (the background
// sweeper does this every Options.SweepInterval) and returns how many it
// deleted.
func (s *Store) SweepExpired(ctx context.Context, limit int) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if limit <= 0 {
		return 0, errors.New("store: sweep limit must be positive")
	}
	return s.sweepExpired(ctx, limit)
}

// expireAtFromTTL converts a relative TTL to an absolute unix-ms time.
func expireAtFromTTL(now int64, ttl time.Duration) (int64, error) {
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1
	}
	if ms <= 0 {
		return 0, fmt.Errorf("%w: %v", ErrBadTTL, ttl)
	}
	if now > math.MaxInt64-ms {
		return 0, fmt.Errorf("%w: %v overflows", ErrBadTTL, ttl)
	}
	return now + ms, nil
}
