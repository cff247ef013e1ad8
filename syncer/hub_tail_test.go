package syncer

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// TestOpTailReadsAsTheStore: whatever the query, a read the tail covers
// returns the ops and the next cursor the store's OpsSince returns.
func TestOpTailReadsAsTheStore(t *testing.T) {
	ctx := context.Background()
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub := openStore(t, t.TempDir(), "hub", crdt.RoleHub, res, nil)
	defer hub.Close()
	var tail opTail
	tail.reset(hub.DurableSeq(), 1<<30)
	// Batches from three edges, as the hub logs them.
	for i := range 3 {
		e := openStore(t, t.TempDir(), fmt.Sprintf("edge-%d", i), crdt.RoleEdge, res, nil)
		for k := range 40 {
			check(t, e.Set(ctx, fmt.Sprintf("k%d", k%7), make([]byte, 10*k)))
		}
		ops, _, err := e.OpsSince(ctx, store.OpsQuery{Limit: 1000})
		check(t, err)
		check(t, e.Close())
		for len(ops) > 0 {
			n := min(len(ops), 9)
			_, err := hub.ApplyRemote(ctx, ops[:n])
			check(t, err)
			ops = ops[n:]
			check(t, tail.fill(ctx, hub))
		}
	}
	last := hub.DurableSeq()
	for after := uint64(0); after < last; after += 3 {
		for _, limit := range []int{1, 5, 1000} {
			for _, maxBytes := range []int{1, 300, 1 << 20} {
				for _, skip := range []string{"", "edge-1"} {
					q := store.OpsQuery{After: after, Limit: limit, MaxBytes: maxBytes}
					if skip != "" {
						q.Filter = func(op *store.Op) bool { return store.ActorNode(op.Dot.Node) != skip }
					}
					want, wantNext, err := hub.OpsSince(ctx, q)
					check(t, err)
					got, next, ok := tail.read(q)
					if !ok || next != wantNext || !reflect.DeepEqual(got, want) {
						t.Fatalf("%+v: tail %d ops next %d (%v), store %d ops next %d", q, len(got), next, ok, len(want), wantNext)
					}
				}
			}
		}
	}
	// A small tail keeps the newest ops; older reads go to the store.
	tail.reset(0, 2000)
	check(t, tail.fill(ctx, hub))
	if _, _, ok := tail.read(store.OpsQuery{After: 0}); ok {
		t.Fatal("a tail of 2000 bytes covers the whole log")
	}
	if _, next, ok := tail.read(store.OpsQuery{After: last - 1}); !ok || next != last {
		t.Fatalf("the newest op: covered %v, next %d (want %d)", ok, next, last)
	}
	if _, _, ok := tail.read(store.OpsQuery{After: last}); ok {
		t.Fatal("a read past the tail is covered")
	}
}
