package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestSetGetReopen(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	s, err := Open(ctx, o)
	check(t, err)
	check(t, s.Set(ctx, "sensor:temp:001", []byte("23.5")))
	v, err := s.Get(ctx, "sensor:temp:001")
	check(t, err)
	if string(v) != "23.5" {
		t.Fatalf("got %q", v)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	seq := s.LastSeq()
	check(t, s.Close())
	s = openWith(t, o)
	v, err = s.Get(ctx, "sensor:temp:001")
	check(t, err)
	if string(v) != "23.5" {
		t.Fatalf("after reopen got %q", v)
	}
	if s.LastSeq() != seq || s.DurableSeq() != seq {
		t.Fatalf("seq %d durable %d, want %d", s.LastSeq(), s.DurableSeq(), seq)
	}
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.StorageLimit = 1 << 30 })
	check(t, s.Set(ctx, "a", []byte("1")))
	check(t, s.Set(ctx, "b", []byte("2")))
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "t", TS: 1, Value: 1}}))
	s.SetRefuseWrites("disk critical")
	st := s.Stats()
	if st.Keys != 2 || st.LastSeq != 2 || st.OpLogOps != 2 || st.OldestSeq != 1 || st.Sensors != 1 ||
		st.NodeID != "edge-1" || st.Role != "edge" || st.WritesRefused != "disk critical" || st.Durability != "none" {
		t.Fatalf("%+v", st)
	}
}

func TestMaxEntrySize(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) {
		o.MaxValueSize = 100
		o.MaxEntrySize = 2000
		o.CompressionLevel = 9 // the limit is on the entry, not its compressed record
	})
	v := bytes.Repeat([]byte("x"), 100)
	var err error
	n := 0
	for ; n < 100; n++ {
		if _, err = s.RPush(ctx, "list", v); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrValueTooLarge) || n < 5 || n > 20 {
		t.Fatalf("after %d pushes: %v", n, err)
	}
	if l := must[int64](t)(s.LLen(ctx, "list")); l != int64(n) {
		t.Fatalf("LLEN %d after %d accepted pushes", l, n)
	}
}
