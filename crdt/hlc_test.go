package crdt

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a settable wall clock in Unix milliseconds.
type fakeClock struct{ ms int64 }

func (c *fakeClock) now() int64 { return c.ms }

func TestTimestampPacking(t *testing.T) {
	ts := NewTimestamp(1_700_000_000_123, 7)
	if ts.Physical() != 1_700_000_000_123 || ts.Logical() != 7 {
		t.Fatalf("got %d.%d", ts.Physical(), ts.Logical())
	}
	if NewTimestamp(5, 0xffff) >= NewTimestamp(6, 0) {
		t.Fatal("ordering must be (physical, logical)")
	}
	if NewTimestamp(-1, 0) != 0 || NewTimestamp(1<<60, 0).Physical() != maxPhysical {
		t.Fatal("physical time must be clamped to 48 bits")
	}
	if got := ts.String(); got != "1700000000123.7" {
		t.Fatalf("String = %q", got)
	}
	dec, err := DecodeTimestamp(ts.AppendBinary(nil))
	if err != nil || dec != ts {
		t.Fatalf("round trip: %v %v", dec, err)
	}
	if _, err := DecodeTimestamp([]byte{1, 2}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short input: %v", err)
	}
}

func TestHLCNowMonotonic(t *testing.T) {
	clk := &fakeClock{ms: 1000}
	h := NewHLC(clk.now, time.Second)
	a := h.Now()
	if a != NewTimestamp(1000, 0) {
		t.Fatalf("first reading %s", a)
	}
	b := h.Now() // same millisecond: logical advances
	if b != NewTimestamp(1000, 1) {
		t.Fatalf("second reading %s", b)
	}
	clk.ms = 500 // wall clock steps back: readings keep increasing
	if c := h.Now(); c <= b {
		t.Fatalf("went backwards: %s after %s", c, b)
	}
	clk.ms = 2000
	if d := h.Now(); d != NewTimestamp(2000, 0) {
		t.Fatalf("did not follow wall clock forward: %s", d)
	}
}

func TestHLCLogicalOverflowAdvancesPhysical(t *testing.T) {
	clk := &fakeClock{ms: 1000}
	h := NewHLC(clk.now, 0)
	h.Restore(NewTimestamp(1000, 0xffff))
	got := h.Now()
	if got != NewTimestamp(1001, 0) {
		t.Fatalf("overflow: got %s, want 1001.0", got)
	}
}

func TestHLCUpdate(t *testing.T) {
	clk := &fakeClock{ms: 1000}
	h := NewHLC(clk.now, 500*time.Millisecond)

	// A remote reading ahead of us (within the skew) is adopted.
	got, err := h.Update(NewTimestamp(1400, 3))
	if err != nil || got != NewTimestamp(1400, 4) {
		t.Fatalf("Update ahead: %s %v", got, err)
	}
	if now := h.Now(); now != NewTimestamp(1400, 5) {
		t.Fatalf("Now after Update: %s", now)
	}
	// A remote reading behind us still yields a later local reading.
	got, err = h.Update(NewTimestamp(10, 0))
	if err != nil || got != NewTimestamp(1400, 6) {
		t.Fatalf("Update behind: %s %v", got, err)
	}
	// Too far ahead: refused, and the clock is not dragged forward.
	before := h.Last()
	if _, err := h.Update(NewTimestamp(1501+500, 0)); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("want ErrClockSkew, got %v", err)
	}
	if h.Last() != before {
		t.Fatalf("skewed remote adopted: %s", h.Last())
	}
	// Exactly at the bound is accepted.
	if _, err := h.Update(NewTimestamp(1500, 0)); err != nil {
		t.Fatalf("at bound: %v", err)
	}
}

func TestHLCSkewCheckDisabled(t *testing.T) {
	clk := &fakeClock{ms: 1000}
	h := NewHLC(clk.now, 0)
	got, err := h.Update(NewTimestamp(1_000_000, 0))
	if err != nil || got != NewTimestamp(1_000_000, 1) {
		t.Fatalf("%s %v", got, err)
	}
}

func TestHLCRestore(t *testing.T) {
	clk := &fakeClock{ms: 1000}
	h := NewHLC(clk.now, 0)
	h.Now()
	hw := h.Last()

	// A restart with the wall clock set back by an hour.
	clk.ms = 1000 - 3600_000
	h2 := NewHLC(clk.now, 0)
	h2.Restore(hw)
	if got := h2.Now(); got <= hw {
		t.Fatalf("after Restore(%s) Now = %s", hw, got)
	}
	h2.Restore(0) // restoring an older mark never lowers the clock
	if h2.Last() <= hw {
		t.Fatal("Restore lowered the clock")
	}
}

func TestHLCConcurrentNowUnique(t *testing.T) {
	clk := &fakeClock{ms: 1000}
	h := NewHLC(clk.now, 0)
	const workers, each = 4, 500
	out := make(chan Timestamp, workers*each)
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				out <- h.Now()
			}
		}()
	}
	for range workers {
		<-done
	}
	close(out)
	seen := make(map[Timestamp]bool)
	for ts := range out {
		if seen[ts] {
			t.Fatalf("duplicate timestamp %s", ts)
		}
		seen[ts] = true
	}
}
