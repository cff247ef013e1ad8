package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

func TestOpEncodingRoundTrip(t *testing.T) {
	ops := []Op{
		{Seq: 1, Dot: crdt.Dot{Node: "edge-1", Counter: 1}, Stamp: crdt.Stamp{TS: 42, Node: "edge-1"}, Key: "k", Delta: []byte{1, 2}},
		{Seq: 1 << 40, Dot: crdt.Dot{Node: "a", Counter: 1 << 50}, Stamp: crdt.Stamp{TS: 1<<63 + 5, Node: "relay", Role: crdt.RoleHub}, Key: "", Delta: nil},
	}
	for _, op := range ops {
		enc := op.AppendBinary(nil)
		if len(enc) != op.EncodedSize() {
			t.Fatalf("EncodedSize %d, encoding %d bytes", op.EncodedSize(), len(enc))
		}
		got, err := DecodeOp(enc)
		check(t, err)
		if got.Seq != op.Seq || got.Dot != op.Dot || got.Stamp != op.Stamp || got.Key != op.Key || !bytes.Equal(got.Delta, op.Delta) {
			t.Fatalf("round trip: %+v != %+v", got, op)
		}
		for i := range enc {
			if _, err := DecodeOp(enc[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated at %d: %v", i, err)
			}
		}
	}
}

func FuzzDecodeOp(f *testing.F) {
	op := Op{Seq: 7, Dot: crdt.Dot{Node: "edge-1", Counter: 3}, Stamp: crdt.Stamp{TS: 99, Node: "hub", Role: crdt.RoleHub}, Key: "sensor:1", Delta: []byte("delta")}
	f.Add(op.AppendBinary(nil))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := DecodeOp(b)
		if err != nil {
			return
		}
		again, err := DecodeOp(op.AppendBinary(nil))
		if err != nil || again.Dot != op.Dot || again.Key != op.Key || !bytes.Equal(again.Delta, op.Delta) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestOpsOnlyDurable(t *testing.T) {
	ctx := context.Background()
	s := openTest(t) // durability none
	for i := range 5 {
		must[int64](t)(s.IncrBy(ctx, "c", int64(i)))
	}
	if s.LastSeq() != 5 || s.DurableSeq() != 0 {
		t.Fatalf("seq %d durable %d", s.LastSeq(), s.DurableSeq())
	}
	ops, next, err := s.OpsSince(ctx, OpsQuery{})
	check(t, err)
	if len(ops) != 0 || next != 0 {
		t.Fatalf("non-durable ops returned: %d (next %d)", len(ops), next)
	}
	check(t, s.SyncWAL(ctx))
	if s.DurableSeq() != 5 {
		t.Fatalf("durable %d after SyncWAL", s.DurableSeq())
	}
	ops, next, err = s.OpsSince(ctx, OpsQuery{Limit: 2})
	check(t, err)
	if len(ops) != 2 || ops[0].Seq != 1 || ops[1].Seq != 2 || next != 2 {
		t.Fatalf("limit 2: %d ops, next %d", len(ops), next)
	}
	for i, op := range ops {
		if op.Dot != (crdt.Dot{Node: s.Actor(), Counter: uint64(i + 1)}) || op.Key != "c" || op.Stamp.Node != s.Actor() {
			t.Fatalf("op %d: %+v", i, op)
		}
		if _, err := crdt.DecodeDelta(op.Delta); err != nil {
			t.Fatal(err)
		}
	}
	ops, next, err = s.OpsSince(ctx, OpsQuery{After: 2, MaxBytes: 1})
	check(t, err)
	if len(ops) != 1 || next != 3 {
		t.Fatalf("MaxBytes 1: %d ops, next %d (at least one op)", len(ops), next)
	}
	ops, next, err = s.OpsSince(ctx, OpsQuery{After: 3, Origin: "someone-else"})
	check(t, err)
	if len(ops) != 0 || next != 5 {
		t.Fatalf("origin filter: %d ops, next %d", len(ops), next)
	}
}

func TestDurableChangedWakes(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.Durability = DurabilityAlways })
	ch := s.DurableChanged()
	check(t, s.Set(ctx, "k", []byte("v")))
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("DurableChanged not closed after a durable write")
	}
	if s.DurableSeq() != 1 {
		t.Fatalf("durable %d", s.DurableSeq())
	}
}

func TestIntervalDurability(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) {
		o.Durability = DurabilityInterval
		o.SyncInterval = 5 * time.Millisecond
	})
	check(t, s.Set(ctx, "k", []byte("v")))
	deadline := time.Now().Add(10 * time.Second)
	for s.DurableSeq() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("interval fsync never advanced the watermark")
		}
		<-s.DurableChanged()
	}
}

func TestPruneOps(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	s := openWith(t, o)
	for range 10 {
		must[int64](t)(s.IncrBy(ctx, "c", 1))
	}
	check(t, s.PruneOps(ctx, 4)) // nothing durable yet: no-op
	if s.OldestSeq() != 1 {
		t.Fatalf("pruned beyond the durable watermark: oldest %d", s.OldestSeq())
	}
	check(t, s.SyncWAL(ctx))
	check(t, s.PruneOps(ctx, 4))
	ops, _, err := s.OpsSince(ctx, OpsQuery{})
	check(t, err)
	if len(ops) != 6 || ops[0].Seq != 5 || s.OldestSeq() != 5 {
		t.Fatalf("%d ops from %d, oldest %d", len(ops), ops[0].Seq, s.OldestSeq())
	}
	check(t, s.PruneOps(ctx, 100))
	check(t, s.Close())
	s = openWith(t, o)
	if s.OldestSeq() != 11 || s.LastSeq() != 10 {
		t.Fatalf("after reopen: oldest %d last %d", s.OldestSeq(), s.LastSeq())
	}
	must[int64](t)(s.IncrBy(ctx, "c", 1))
	if s.LastSeq() != 11 {
		t.Fatalf("seq restarted at %d", s.LastSeq())
	}
	if v := must[[]byte](t)(s.Get(ctx, "c")); string(v) != "11" {
		t.Fatalf("c = %s", v)
	}
}

func TestReopenKeepsClockAndCounterMonotonic(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	o := testOptions(t.TempDir())
	o.Clock = clock.now
	s := openWith(t, o)
	for range 3 {
		check(t, s.Set(ctx, "k", []byte("v")))
	}
	hw := s.Now()
	check(t, s.Close())
	// The wall clock goes back an hour across the restart (no RTC).
	clock.advance(-time.Hour)
	s = openWith(t, o)
	check(t, s.Set(ctx, "k", []byte("w")))
	check(t, s.SyncWAL(ctx))
	ops, _, err := s.OpsSince(ctx, OpsQuery{After: 3})
	check(t, err)
	if len(ops) != 1 || ops[0].Dot.Counter != 4 || ops[0].Stamp.TS <= hw {
		t.Fatalf("after reopen: %+v (hw %v)", ops, hw)
	}
}

func TestNodeMismatch(t *testing.T) {
	o := testOptions(t.TempDir())
	s := openWith(t, o)
	check(t, s.Close())
	o.NodeID = "impostor"
	if _, err := Open(context.Background(), o); !errors.Is(err, ErrNodeMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestOptionsValidateReportsEverything(t *testing.T) {
	o := Options{MemoryLimit: 10, MaxKeys: -1, CompressionLevel: 12, Durability: 9}
	o.EnsureDefaults()
	err := o.Validate()
	for _, want := range []string{"NodeID", "Dir", "MemoryLimit", "MaxKeys", "CompressionLevel", "durability"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("Validate does not report %s: %v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatal("not ErrInvalidOptions")
	}
}

func TestClosedStore(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	check(t, s.Set(ctx, "k", []byte("v")))
	check(t, s.Close())
	check(t, s.Close())
	if err := s.Set(ctx, "k", []byte("v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, _, err := s.OpsSince(ctx, OpsQuery{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("OpsSince after Close: %v", err)
	}
	<-s.DurableChanged() // closed
}
