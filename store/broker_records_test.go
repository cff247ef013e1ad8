package store

import (
	"context"
	"errors"
	"testing"
)

// SetBrokerMeta: any size while writes are allowed; while they are
// refused, only updates of stored records of at most 16 KiB (review found
// a session with a 20 KiB will never stored, and new sessions a way past
// the storage limit).
func TestSetBrokerMeta(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	big := make([]byte, maxBrokerMeta+1)
	check(t, s.SetBrokerMeta(ctx, "cbig", big))
	check(t, s.SetBrokerMeta(ctx, "cold", []byte("v1")))
	s.SetRefuseWrites("critical")
	check(t, s.SetBrokerMeta(ctx, "cold", []byte("v2")))
	if err := s.SetBrokerMeta(ctx, "cnew", []byte("v")); !errors.Is(err, ErrWritesRefused) {
		t.Fatalf("a new record at Critical: %v", err)
	}
	if err := s.SetBrokerMeta(ctx, "cbig", big); !errors.Is(err, ErrWritesRefused) {
		t.Fatalf("a large update at Critical: %v", err)
	}
	check(t, s.SetBrokerMeta(ctx, "cbig", nil)) // deletes always work
	got := map[string]string{}
	check(t, s.BrokerRecords(ctx, "c", func(k string, v []byte) error { got[k] = string(v); return nil }))
	if len(got) != 1 || got["cold"] != "v2" {
		t.Fatalf("records %v", got)
	}
}
