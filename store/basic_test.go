package store

import (
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
