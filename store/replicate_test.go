package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// replica is a store in a replication test with its cursor into a peer's
// op log.
type pair struct {
	a, b         *Store
	aSeen, bSeen uint64 // last seq of a (b) already shipped to b (a)
}

func newPair(t *testing.T, strat crdt.Strategy, clockA, clockB *testClock) *pair {
	t.Helper()
	res := crdt.Resolver{Default: strat}
	a := openTest(t, withClock(clockA), func(o *Options) { o.NodeID, o.Resolver = "edge-1", res })
	b := openTest(t, withClock(clockB), func(o *Options) { o.NodeID, o.Role, o.Resolver = "hub", crdt.RoleHub, res })
	return &pair{a: a, b: b}
}

// ship sends every durable op of from after *cursor to to.
func ship(t *testing.T, from, to *Store, cursor *uint64) ApplyResult {
	t.Helper()
	ctx := context.Background()
	check(t, from.SyncWAL(ctx))
	var total ApplyResult
	for {
		ops, next, err := from.OpsSince(ctx, OpsQuery{After: *cursor, Limit: 7})
		check(t, err)
		*cursor = next
		if len(ops) == 0 {
			return total
		}
		res, err := to.ApplyRemote(ctx, ops)
		check(t, err)
		total.Applied += res.Applied
		total.Skipped += res.Skipped
		total.Rejected += res.Rejected
		total.Conflicts = append(total.Conflicts, res.Conflicts...)
	}
}

func (p *pair) exchange(t *testing.T) {
	t.Helper()
	ship(t, p.a, p.b, &p.aSeen)
	ship(t, p.b, p.a, &p.bSeen)
	// b relayed a's ops back to a and vice versa: all skipped.
	if r := ship(t, p.a, p.b, &p.aSeen); r.Applied != 0 {
		t.Fatalf("second exchange applied %d ops", r.Applied)
	}
}

// dump renders every key's visible value, for comparing replicas.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	ctx := context.Background()
	keys := must[[]string](t)(s.Keys(ctx, "*"))
	var sb strings.Builder
	for _, k := range keys {
		typ := must[string](t)(s.Type(ctx, k))
		fmt.Fprintf(&sb, "%s %s = ", k, typ)
		switch typ {
		case "string":
			fmt.Fprintf(&sb, "%q", must[[]byte](t)(s.Get(ctx, k)))
		case "hash":
			for _, f := range must[[]FieldValue](t)(s.HGetAll(ctx, k)) {
				fmt.Fprintf(&sb, "%s:%q ", f.Field, f.Value)
			}
		case "list":
			fmt.Fprintf(&sb, "%q", must[[][]byte](t)(s.LRange(ctx, k, 0, -1)))
		case "set":
			fmt.Fprintf(&sb, "%q", must[[]string](t)(s.SMembers(ctx, k)))
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// states returns every key's encoded entry.
func states(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	_, err := s.ExportState(context.Background(), func(k string, e []byte) error {
		out[k] = bytes.Clone(e)
		return nil
	})
	check(t, err)
	return out
}

func assertConverged(t *testing.T, a, b *Store) {
	t.Helper()
	da, db := dump(t, a), dump(t, b)
	if da != db {
		t.Fatalf("replicas differ:\n--- a\n%s--- b\n%s", da, db)
	}
	sa, sb := states(t, a), states(t, b)
	for k, v := range sa {
		if !bytes.Equal(v, sb[k]) {
			ea, _ := crdt.DecodeEntry(v)
			eb, _ := crdt.DecodeEntry(sb[k])
			t.Fatalf("entry %q differs:\n a: %v\n b: %v", k, ea.Heads(), eb.Heads())
		}
	}
	if len(sa) != len(sb) {
		t.Fatalf("a has %d entries, b %d", len(sa), len(sb))
	}
	if !a.Context().Equal(b.Context()) {
		t.Fatalf("contexts differ: %v vs %v", a.Context(), b.Context())
	}
	na, _ := a.DBSize(context.Background())
	nb, _ := b.DBSize(context.Background())
	if na != nb {
		t.Fatalf("DBSIZE %d vs %d", na, nb)
	}
}

// concurrentWorkload makes both replicas write the same keys without
// seeing each other.
func concurrentWorkload(t *testing.T, p *pair) {
	ctx := context.Background()
	a, b := p.a, p.b
	check(t, a.Set(ctx, "reg", []byte("from-a")))
	check(t, b.Set(ctx, "reg", []byte("from-b")))
	for range 2 {
		must[int64](t)(a.IncrBy(ctx, "ctr", 1))
	}
	for range 3 {
		must[int64](t)(b.IncrBy(ctx, "ctr", 1))
	}
	must[int](t)(a.SAdd(ctx, "set", "x", "y"))
	must[int](t)(b.SAdd(ctx, "set", "y", "z"))
	must[int](t)(a.HSet(ctx, "hash", FieldValue{Field: "fa", Value: []byte("1")}))
	must[int](t)(b.HSet(ctx, "hash", FieldValue{Field: "fb", Value: []byte("2")}))
	must[int64](t)(a.HIncrBy(ctx, "hash", "n", 10))
	must[int64](t)(b.HIncrBy(ctx, "hash", "n", 5))
	must[int64](t)(a.LPush(ctx, "list", []byte("a1"), []byte("a2")))
	must[int64](t)(b.RPush(ctx, "list", []byte("b1")))
	check(t, a.Set(ctx, "delwin", []byte("x")))
	p.exchange(t)
	must[int](t)(a.Del(ctx, "delwin"))
	check(t, b.Set(ctx, "delwin", []byte("y")))
	check(t, a.Set(ctx, "onlya", []byte("1")))
	must[bool](t)(b.Expire(ctx, "reg", time.Hour))
}

func TestReplicationConverges(t *testing.T) {
	for _, strat := range []crdt.Strategy{crdt.LastWriteWins, crdt.CrdtMerge, crdt.CloudWins, crdt.EdgeWins} {
		t.Run(strat.String(), func(t *testing.T) {
			ca, cb := newTestClock(), newTestClock()
			cb.advance(time.Millisecond) // b's writes are later
			p := newPair(t, strat, ca, cb)
			concurrentWorkload(t, p)
			p.exchange(t)
			assertConverged(t, p.a, p.b)
			ctx := context.Background()
			ctr := must[[]byte](t)(p.a.Get(ctx, "ctr"))
			members := must[[]string](t)(p.a.SMembers(ctx, "set"))
			n := must[[]byte](t)(p.a.HGet(ctx, "hash", "n"))
			switch strat {
			case crdt.CrdtMerge:
				if string(ctr) != "5" || !slices.Equal(members, []string{"x", "y", "z"}) || string(n) != "15" {
					t.Fatalf("merge lost updates: ctr=%s set=%v n=%s", ctr, members, n)
				}
			default:
				if string(ctr) != "2" && string(ctr) != "3" {
					t.Fatalf("ctr=%s", ctr)
				}
			}
			// Concurrent SETs of one key are a conflict under every
			// strategy, recorded on both replicas.
			for _, s := range []*Store{p.a, p.b} {
				cs := must[[]ConflictRecord](t)(s.Conflicts(ctx, 0))
				found := false
				for _, c := range cs {
					found = found || c.Key == "reg"
				}
				if !found {
					t.Fatalf("%s: no conflict recorded for reg: %v", s.NodeID(), cs)
				}
			}
			winner := must[[]byte](t)(p.a.Get(ctx, "reg"))
			want := "from-b" // later clock, or the hub under CloudWins
			if strat == crdt.EdgeWins {
				want = "from-a"
			}
			if string(winner) != want {
				t.Fatalf("reg = %q, want %q", winner, want)
			}
		})
	}
}

func TestApplyRemoteIdempotent(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, crdt.CrdtMerge, newTestClock(), newTestClock())
	for i := range 20 {
		must[int64](t)(p.a.IncrBy(ctx, "c", int64(i)))
	}
	check(t, p.a.SyncWAL(ctx))
	ops, _, err := p.a.OpsSince(ctx, OpsQuery{})
	check(t, err)
	r1 := must[ApplyResult](t)(p.b.ApplyRemote(ctx, ops))
	r2 := must[ApplyResult](t)(p.b.ApplyRemote(ctx, ops))
	// Reordered and duplicated delivery.
	rev := slices.Clone(ops)
	slices.Reverse(rev)
	r3 := must[ApplyResult](t)(p.b.ApplyRemote(ctx, rev))
	if r1.Applied != 20 || r2.Skipped != 20 || r3.Skipped != 20 {
		t.Fatalf("applied %d, then skipped %d and %d", r1.Applied, r2.Skipped, r3.Skipped)
	}
	if v := must[[]byte](t)(p.b.Get(ctx, "c")); string(v) != "190" {
		t.Fatalf("c = %s", v)
	}
	// Out of order delivery still converges.
	q := newPair(t, crdt.CrdtMerge, newTestClock(), newTestClock())
	for i := len(ops) - 1; i >= 0; i-- {
		must[ApplyResult](t)(q.b.ApplyRemote(ctx, ops[i:i+1]))
	}
	if v := must[[]byte](t)(q.b.Get(ctx, "c")); string(v) != "190" {
		t.Fatalf("reversed delivery: c = %s", v)
	}
}

// TestSeen: the contiguous and the highest counter of a node's dots,
// with a gap (an op applied before one it follows).
func TestSeen(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, crdt.CrdtMerge, newTestClock(), newTestClock())
	for i := range 5 {
		must[int64](t)(p.a.IncrBy(ctx, "c", int64(i)))
	}
	check(t, p.a.SyncWAL(ctx))
	ops, _, err := p.a.OpsSince(ctx, OpsQuery{})
	check(t, err)
	actor := p.a.Actor()
	for _, c := range []struct {
		apply         []Op
		contig, their uint64
	}{
		{nil, 0, 0},
		{ops[:2], 2, 2},
		{ops[3:4], 2, 4},
		{ops[2:3], 4, 4},
	} {
		must[ApplyResult](t)(p.b.ApplyRemote(ctx, c.apply))
		if n, m := p.b.Seen(actor); n != c.contig || m != c.their {
			t.Fatalf("Seen = %d, %d; want %d, %d", n, m, c.contig, c.their)
		}
	}
}

func TestApplyRemoteRejectsBadDelta(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	res := must[ApplyResult](t)(s.ApplyRemote(ctx, []Op{{Dot: crdt.Dot{Node: "x", Counter: 1}, Key: "k", Delta: []byte{1, 2, 3}}}))
	if res.Rejected != 1 || res.Applied != 0 {
		t.Fatalf("%+v", res)
	}
	if s.Context().Contains(crdt.Dot{Node: "x", Counter: 1}) {
		t.Fatal("a rejected op's dot was recorded as seen")
	}
}

func TestApplyRemoteClockSkew(t *testing.T) {
	ctx := context.Background()
	ca, cb := newTestClock(), newTestClock()
	ca.advance(time.Hour) // a's clock is an hour ahead
	p := newPair(t, crdt.LastWriteWins, ca, cb)
	check(t, p.a.Set(ctx, "k", []byte("v")))
	check(t, p.a.SyncWAL(ctx))
	ops, _, err := p.a.OpsSince(ctx, OpsQuery{})
	check(t, err)
	res := must[ApplyResult](t)(p.b.ApplyRemote(ctx, ops))
	if res.Skewed != 1 || res.Applied != 1 {
		t.Fatalf("%+v", res)
	}
	if got := p.b.Now().Physical(); got > cb.now()+1000 {
		t.Fatalf("b's clock was dragged to %d (wall %d)", got, cb.now())
	}
}

func TestFullStateMerge(t *testing.T) {
	ctx := context.Background()
	for _, strat := range []crdt.Strategy{crdt.LastWriteWins, crdt.CrdtMerge} {
		t.Run(strat.String(), func(t *testing.T) {
			ca, cb := newTestClock(), newTestClock()
			cb.advance(time.Millisecond)
			p := newPair(t, strat, ca, cb)
			check(t, p.a.Set(ctx, "gone", []byte("x")))
			p.exchange(t)
			// a deletes "gone" but the op is lost (a's queue overflowed);
			// both write concurrently.
			must[int](t)(p.a.Del(ctx, "gone"))
			concurrentWorkload(t, p)
			check(t, p.a.SyncWAL(ctx))
			check(t, p.a.PruneOps(ctx, p.a.LastSeq()))
			p.aSeen = p.a.LastSeq()
			fullSync(t, p.a, p.b)
			fullSync(t, p.b, p.a)
			assertConverged(t, p.a, p.b)
			if n := must[int](t)(p.b.Exists(ctx, "gone")); n != 0 {
				t.Fatal("a key deleted on a survived the full sync on b")
			}
			// Deltas after a full sync still flow.
			check(t, p.a.Set(ctx, "after", []byte("1")))
			p.exchange(t)
			assertConverged(t, p.a, p.b)
		})
	}
}

// fullSync sends from's whole state to to in chunks of 3.
func fullSync(t *testing.T, from, to *Store) {
	t.Helper()
	ctx := context.Background()
	var chunk []StateEntry
	var entries []StateEntry
	rctx, err := from.ExportState(ctx, func(k string, e []byte) error {
		entries = append(entries, StateEntry{Key: k, Entry: bytes.Clone(e)})
		return nil
	})
	check(t, err)
	after := ""
	for len(entries) > 0 {
		n := min(3, len(entries))
		chunk, entries = entries[:n], entries[n:]
		must[[]crdt.Conflict](t)(to.MergeState(ctx, rctx, after, chunk))
		after = chunk[len(chunk)-1].Key
	}
	must[[]crdt.Conflict](t)(to.FinishMergeState(ctx, rctx, after))
}

func TestConflictsTable(t *testing.T) {
	ctx := context.Background()
	ca, cb := newTestClock(), newTestClock()
	p := newPair(t, crdt.LastWriteWins, ca, cb)
	check(t, p.a.Set(ctx, "k", []byte("a")))
	check(t, p.b.Set(ctx, "k", []byte("b")))
	p.exchange(t)
	if n := p.a.ConflictCount(); n != 1 {
		t.Fatalf("%d conflicts", n)
	}
	cs := must[[]ConflictRecord](t)(p.a.Conflicts(ctx, 0))
	if len(cs) != 1 || cs[0].Key != "k" || cs[0].DetectedAt != ca.now() {
		t.Fatalf("%+v", cs)
	}
	// A re-reported conflict is not stored twice.
	check(t, p.a.RecordConflicts(ctx, []crdt.Conflict{cs[0].Conflict}))
	if n := p.a.ConflictCount(); n != 1 {
		t.Fatalf("%d conflicts after re-report", n)
	}
	ok := must[bool](t)(p.a.ClearConflict(ctx, cs[0].ID()))
	if !ok || p.a.ConflictCount() != 0 {
		t.Fatal("ClearConflict")
	}
	// A late report of a conflict just cleared (the hub's ConflictReport
	// after the local detection) does not bring it back...
	check(t, p.a.RecordConflicts(ctx, []crdt.Conflict{cs[0].Conflict}))
	if n := p.a.ConflictCount(); n != 0 {
		t.Fatalf("%d conflicts after a late report of a cleared one", n)
	}
	// ...but one after ClearedRetention does.
	ca.advance(ClearedRetention)
	check(t, p.a.RecordConflicts(ctx, []crdt.Conflict{cs[0].Conflict}))
	if n := p.a.ConflictCount(); n != 1 {
		t.Fatalf("%d conflicts after retention", n)
	}
	if n := must[int](t)(p.a.ClearConflicts(ctx)); n != 1 {
		t.Fatalf("cleared %d", n)
	}
	if cs := must[[]ConflictRecord](t)(p.a.Conflicts(ctx, 0)); len(cs) != 0 {
		t.Fatalf("%d conflicts after clear", len(cs))
	}
	check(t, p.a.RecordConflicts(ctx, []crdt.Conflict{cs[0].Conflict}))
	if n := p.a.ConflictCount(); n != 0 {
		t.Fatalf("%d conflicts after a late report of one cleared by CLEAR", n)
	}
	// The next clear deletes expired markers.
	ca.advance(ClearedRetention)
	must[int](t)(p.a.ClearConflicts(ctx))
	if n := countPrefix(t, p.a, prefixCleared); n != 0 {
		t.Fatalf("%d cleared markers after retention", n)
	}
}

func countPrefix(t *testing.T, s *Store, prefix byte) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	check(t, err)
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	check(t, it.Error())
	return n
}

func TestFullStateMergeDeletesAcrossChunks(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, crdt.CrdtMerge, newTestClock(), newTestClock())
	for i := range 20 {
		check(t, p.a.Set(ctx, fmt.Sprintf("k%02d", i), []byte("v")))
	}
	p.exchange(t)
	// a deletes every other key and the deletes never reach b as ops.
	for i := 0; i < 20; i += 2 {
		must[int](t)(p.a.Del(ctx, fmt.Sprintf("k%02d", i)))
	}
	check(t, p.a.SyncWAL(ctx))
	check(t, p.a.PruneOps(ctx, p.a.LastSeq()))
	fullSync(t, p.a, p.b)
	if n := must[int64](t)(p.b.DBSize(ctx)); n != 10 {
		t.Fatalf("b has %d keys after the full sync, want 10", n)
	}
	fullSync(t, p.b, p.a)
	assertConverged(t, p.a, p.b)
	// Chunks out of order are refused.
	rctx := p.a.Context()
	if _, err := p.b.MergeState(ctx, rctx, "k05", []StateEntry{{Key: "k03"}}); err == nil {
		t.Fatal("a chunk before its range was accepted")
	}
}
