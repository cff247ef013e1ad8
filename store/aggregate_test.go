package store

import (
	"context"
	"errors"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
)

func TestAggregates(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, crdt.LastWriteWins, newTestClock(), newTestClock())
	key := "agg/temp-1/60/1708300000"
	part := func(n uint64, sum, lo, hi float64) crdt.Partial {
		return crdt.Partial{Count: n, Sum: sum, Min: lo, Max: hi, FirstTS: 1, LastTS: 2}
	}
	check(t, p.a.AggregateMerge(ctx, key, part(2, 45, 22, 23)))
	check(t, p.a.AggregateMerge(ctx, key, part(1, 21, 21, 21))) // a late partial adds
	check(t, p.b.AggregateMerge(ctx, key, part(3, 60, 19, 21)))
	p.exchange(t)
	p.exchange(t) // duplicated delivery never double counts
	assertConverged(t, p.a, p.b)
	for _, s := range []*Store{p.a, p.b} {
		got := must[crdt.Partial](t)(s.Aggregate(ctx, key))
		if got.Count != 6 || got.Sum != 126 || got.Min != 19 || got.Max != 23 {
			t.Fatalf("%s: %+v", s.NodeID(), got)
		}
	}
	own, ok, err := p.a.AggregatePartial(ctx, key, p.a.Actor())
	check(t, err)
	if !ok || own.Count != 3 || own.Version != 2 {
		t.Fatalf("own partial %+v", own)
	}
	if err := p.a.AggregateAdd(ctx, key, crdt.Partial{Version: 1, Count: 1, Min: 1, Max: 1, Sum: 1}); !errors.Is(err, crdt.ErrStale) {
		t.Fatalf("stale version: %v", err)
	}
	if err := p.a.AggregateMerge(ctx, key, crdt.Partial{}); !errors.Is(err, crdt.ErrInvalid) {
		t.Fatalf("empty partial: %v", err)
	}
	check(t, p.a.Set(ctx, "str", []byte("v")))
	if err := p.a.AggregateMerge(ctx, "str", part(1, 1, 1, 1)); !errors.Is(err, ErrWrongType) {
		t.Fatalf("aggregate on a string: %v", err)
	}
	if _, err := p.a.Aggregate(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if typ := must[string](t)(p.a.Type(ctx, key)); typ != "aggregate" {
		t.Fatalf("TYPE %s", typ)
	}
}
