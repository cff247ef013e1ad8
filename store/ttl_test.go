package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

func TestTTLInvisibleAtOnceAndSwept(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	s := openTest(t, withClock(clock), func(o *Options) { o.SweepBatch = 3 })
	for i := range 10 {
		_, err := s.SetWith(ctx, fmt.Sprint("t", i), []byte("v"), SetOptions{TTL: time.Duration(i+1) * time.Second})
		check(t, err)
	}
	check(t, s.Set(ctx, "forever", []byte("v")))
	clock.advance(5 * time.Second) // t0..t4 expired
	if n := must[int](t)(s.Exists(ctx, "t0", "t4", "t5", "forever")); n != 2 {
		t.Fatalf("%d visible, want t5 and forever", n)
	}
	if _, err := s.Get(ctx, "t3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired key visible: %v", err)
	}
	// Bounded work per sweep.
	if n := must[int](t)(s.sweepExpiredForTest(ctx)); n != 3 {
		t.Fatalf("first sweep deleted %d", n)
	}
	if n := must[int](t)(s.sweepExpiredForTest(ctx)); n != 2 {
		t.Fatalf("second sweep deleted %d", n)
	}
	if n := must[int](t)(s.sweepExpiredForTest(ctx)); n != 0 {
		t.Fatalf("third sweep deleted %d", n)
	}
	if n := must[int64](t)(s.DBSize(ctx)); n != 6 {
		t.Fatalf("DBSIZE %d", n)
	}
	// Expiry replicates: the sweeper's deletes are ops.
	check(t, s.SyncWAL(ctx))
	ops, _, err := s.OpsSince(ctx, OpsQuery{After: 11})
	check(t, err)
	if len(ops) != 5 {
		t.Fatalf("%d delete ops", len(ops))
	}
}

func (s *Store) sweepExpiredForTest(ctx context.Context) (int, error) {
	return s.SweepExpired(ctx, s.opts.SweepBatch)
}

func TestTTLExtendedBeforeSweep(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	s := openTest(t, withClock(clock))
	_, err := s.SetWith(ctx, "k", []byte("v"), SetOptions{TTL: time.Second})
	check(t, err)
	must[bool](t)(s.Expire(ctx, "k", time.Hour))
	clock.advance(2 * time.Second)
	if n := must[int](t)(s.SweepExpired(ctx, 10)); n != 0 {
		t.Fatalf("swept a key whose TTL was extended")
	}
	if ttl := must[time.Duration](t)(s.TTL(ctx, "k")); ttl != time.Hour-2*time.Second {
		t.Fatalf("TTL %v", ttl)
	}
	// Its old index entry is gone: an hour later it is swept once.
	clock.advance(time.Hour)
	if n := must[int](t)(s.SweepExpired(ctx, 10)); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if n := must[int](t)(s.SweepExpired(ctx, 10)); n != 0 {
		t.Fatalf("swept %d again", n)
	}
}

func TestTTLBackgroundSweeper(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.SweepInterval = 10 * time.Millisecond })
	_, err := s.SetWith(ctx, "k", []byte("v"), SetOptions{TTL: time.Millisecond})
	check(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for must[int64](t)(s.DBSize(ctx)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("background sweeper never deleted the expired key")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func TestExpiryReplicates(t *testing.T) {
	ctx := context.Background()
	ca, cb := newTestClock(), newTestClock()
	p := newPair(t, crdt.CrdtMerge, ca, cb)
	_, err := p.a.SetWith(ctx, "k", []byte("v"), SetOptions{TTL: time.Second})
	check(t, err)
	p.exchange(t)
	if ttl := must[time.Duration](t)(p.b.TTL(ctx, "k")); ttl != time.Second {
		t.Fatalf("TTL did not replicate: %v", ttl)
	}
	ca.advance(2 * time.Second)
	cb.advance(2 * time.Second)
	must[int](t)(p.a.SweepExpired(ctx, 10))
	must[int](t)(p.b.SweepExpired(ctx, 10)) // both sweep: harmless
	p.exchange(t)
	assertConverged(t, p.a, p.b)
	if n := must[int64](t)(p.b.DBSize(ctx)); n != 0 {
		t.Fatalf("DBSIZE %d", n)
	}
}

// KeysWithPrefix lists the live keys under a literal prefix, expired and
// deleted ones excluded.
func TestKeysWithPrefix(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	s := openTest(t, withClock(clock))
	for _, k := range []string{"agg/a/1m/1", "agg/a/1m/2", "agg/a/1m/3", "agg/a/1mx", "agg/a/1", "agg/b/1m/1", "zzz"} {
		check(t, s.Set(ctx, k, []byte("v")))
	}
	_, err := s.SetWith(ctx, "agg/a/1m/4", []byte("v"), SetOptions{TTL: time.Second})
	check(t, err)
	must[int](t)(s.Del(ctx, "agg/a/1m/2"))
	clock.advance(2 * time.Second)
	if got := must[[]string](t)(s.KeysWithPrefix(ctx, "agg/a/1m/", 0)); !slices.Equal(got, []string{"agg/a/1m/1", "agg/a/1m/3"}) {
		t.Fatalf("KeysWithPrefix = %q", got)
	}
	if got := must[[]string](t)(s.KeysWithPrefix(ctx, "agg/", 2)); !slices.Equal(got, []string{"agg/a/1", "agg/a/1m/1"}) {
		t.Fatalf("KeysWithPrefix limit 2 = %q", got)
	}
	if got := must[[]string](t)(s.KeysWithPrefix(ctx, "\xff", 0)); len(got) != 0 {
		t.Fatalf("KeysWithPrefix(0xff) = %q", got)
	}
}
