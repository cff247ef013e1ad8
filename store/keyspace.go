package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Del deletes keys and returns how many existed.
func (s *Store) Del(ctx context.Context, keys ...string) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	reqs := make([]*writeReq, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue // DEL k k counts k once
		}
		seen[k] = true
		reqs = append(reqs, &writeReq{key: k, build: func(w *keyWriter) error {
			if w.entry().Kind(w.now) == crdt.KindNone {
				return nil
			}
			n++
			return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) { return e.Delete(m) })
		}})
	}
	if err := s.write(ctx, reqs...); err != nil {
		return 0, err
	}
	return n, nil
}

// Exists returns how many of keys exist (a key named twice counts twice,
// as in Redis).
func (s *Store) Exists(ctx context.Context, keys ...string) (int, error) {
	n := 0
	for _, k := range keys {
		err := s.read(ctx, k, func(e *crdt.Entry, now int64) error {
			if e.Kind(now) != crdt.KindNone {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Expire sets key to expire after ttl and reports whether the key exists.
// A non-positive ttl deletes the key (as Redis does).
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.expire(ctx, key, func(now int64) (int64, error) {
		if ttl <= 0 {
			return now, nil
		}
		return expireAtFromTTL(now, ttl)
	})
}

// ExpireAt sets key to expire at t and reports whether the key exists. A
// time not after now deletes the key.
func (s *Store) ExpireAt(ctx context.Context, key string, t time.Time) (bool, error) {
	return s.expire(ctx, key, func(int64) (int64, error) { return t.UnixMilli(), nil })
}

// Persist removes key's expiry and reports whether it had one.
func (s *Store) Persist(ctx context.Context, key string) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	done := false
	err := s.write(ctx, &writeReq{key: key, build: func(w *keyWriter) error {
		e := w.entry()
		if e.Kind(w.now) == crdt.KindNone || e.ExpireAt() == 0 {
			return nil
		}
		done = true
		return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) { return e.Expire(m, 0) })
	}})
	return done && err == nil, err
}

func (s *Store) expire(ctx context.Context, key string, at func(now int64) (int64, error)) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	done := false
	err := s.write(ctx, &writeReq{key: key, build: func(w *keyWriter) error {
		if w.entry().Kind(w.now) == crdt.KindNone {
			return nil
		}
		t, err := at(w.now)
		if err != nil {
			return err
		}
		done = true
		if t <= w.now {
			return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) { return e.Delete(m) })
		}
		return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) { return e.Expire(m, t) })
	}})
	return done && err == nil, err
}

// TTL returns the time left before key expires, NoExpiry if it has no
// expiry, or ErrNotFound.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, error) {
	var d time.Duration
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		if e.Kind(now) == crdt.KindNone {
			return ErrNotFound
		}
		at := e.ExpireAt()
		if at == 0 {
			d = NoExpiry
			return nil
		}
		d = time.Duration(at-now) * time.Millisecond
		return nil
	})
	return d, err
}

// Type returns the Redis type name of key's value: "none", "string" (also
// for counters), "hash", "list", "set" or "aggregate".
func (s *Store) Type(ctx context.Context, key string) (string, error) {
	var t string
	err := s.read(ctx, key, func(e *crdt.Entry, now int64) error {
		t = typeName(e.Kind(now))
		return nil
	})
	return t, err
}

func typeName(k crdt.Kind) string {
	switch k {
	case crdt.KindString, crdt.KindCounter:
		return "string"
	case crdt.KindHash:
		return "hash"
	case crdt.KindList:
		return "list"
	case crdt.KindSet:
		return "set"
	case crdt.KindAggregate:
		return "aggregate"
	}
	return "none"
}

// Keys returns the existing keys matching the glob pattern (Redis syntax:
// * ? [abc] [^a] [a-z] \x), in key order. Like Redis KEYS it walks the
// whole keyspace: prefer Scan on large stores.
func (s *Store) Keys(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	cursor := ""
	for {
		keys, next, err := s.Scan(ctx, cursor, pattern, 1024)
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
		if next == "0" {
			return out, nil
		}
		cursor = next
	}
}

// Scan examines up to count keys (default 10) from cursor ("" or "0" to
// start) and returns the existing ones matching pattern ("" matches all)
// and the cursor to continue from, "0" when the scan is complete. Keys
// present for the whole scan are returned exactly once; the cursor is the
// hex of the next key, so it survives restarts and concurrent writes.
func (s *Store) Scan(ctx context.Context, cursor, pattern string, count int) ([]string, string, error) {
	return s.ScanType(ctx, cursor, pattern, "", count)
}

// ScanType is Scan returning only keys of type typ (as TYPE names it:
// string, hash, list, set, aggregate; "" for any), like SCAN ... TYPE.
func (s *Store) ScanType(ctx context.Context, cursor, pattern, typ string, count int) ([]string, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if count <= 0 {
		count = 10
	}
	k, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	start := append([]byte{prefixData}, k...)
	g, err := compileGlob(pattern)
	if err != nil {
		return nil, "", err
	}
	if err := s.enter(); err != nil {
		return nil, "", err
	}
	defer s.leave()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: []byte{prefixData + 1}})
	if err != nil {
		return nil, "", err
	}
	defer it.Close()
	now := s.opts.Clock()
	var out []string
	examined := 0
	for it.First(); it.Valid(); it.Next() {
		if examined == count {
			return out, hex.EncodeToString(it.Key()[1:]), nil
		}
		examined++
		key := it.Key()[1:]
		if !g.match(key) {
			continue
		}
		k, err := s.recordKind(string(key), it, now)
		if err != nil {
			return nil, "", err
		}
		if k != crdt.KindNone && (typ == "" || typeName(k) == typ) {
			out = append(out, string(key))
		}
	}
	if err := it.Error(); err != nil {
		return nil, "", err
	}
	return out, "0", nil
}

// KeysWithPrefix returns the existing keys starting with prefix, in key
// order, at most limit (<= 0: all). Unlike Scan with a pattern it reads
// only that part of the keyspace.
func (s *Store) KeysWithPrefix(ctx context.Context, prefix string, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	lower := dataKey(nil, prefix)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	now := s.opts.Clock()
	var out []string
	for it.First(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
		key := string(it.Key()[1:])
		k, err := s.recordKind(key, it, now)
		if err != nil {
			return nil, err
		}
		if k != crdt.KindNone {
			out = append(out, key)
		}
	}
	return out, it.Error()
}

// parseCursor decodes a Scan cursor into the key to resume from.
func parseCursor(cursor string) ([]byte, error) {
	if cursor == "" || cursor == "0" {
		return nil, nil
	}
	k, err := hex.DecodeString(cursor)
	if err != nil || len(k) == 0 {
		return nil, fmt.Errorf("%w: invalid cursor", ErrSyntax)
	}
	return k, nil
}

// recordKind returns the kind of the key at the iterator at now (KindNone:
// it does not exist), preferring the hot cache over decoding the record.
func (s *Store) recordKind(key string, it *pebble.Iterator, now int64) (crdt.Kind, error) {
	k := crdt.KindNone
	if s.cache.inspect(key, func(c *cached) { k = c.e.Kind(now) }) {
		return k, nil
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return k, err
	}
	c, err := s.decodeRecord(v)
	if err != nil {
		return k, fmt.Errorf("key %q: %w", key, err)
	}
	return c.e.Kind(now), nil
}
