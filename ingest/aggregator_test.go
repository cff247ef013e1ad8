package ingest

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// t0 is a bucket boundary for every width that divides 24h.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newAgg(t *testing.T, cfg AggregatorConfig) *EdgeAggregator {
	t.Helper()
	a, err := NewEdgeAggregator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func rd(sensor string, at time.Time, v float64) Reading {
	return Reading{Sensor: sensor, Time: at, Value: v}
}

func TestAggregatorAlignment(t *testing.T) {
	a := newAgg(t, AggregatorConfig{Widths: []time.Duration{time.Minute, time.Hour}, AllowedLateness: 5 * time.Second})
	// The first reading is at 12:00:37: the bucket still starts at 12:00:00.
	first := t0.Add(37 * time.Second)
	a.Add(rd("s", first, 1), first)
	a.Add(rd("s", t0.Add(59*time.Second), 3), first)
	a.Add(rd("s", t0.Add(61*time.Second), 10), first)
	if n := a.Tick(t0.Add(64 * time.Second)); n != 0 {
		t.Fatalf("closed %d buckets before end+lateness", n)
	}
	if n := a.Tick(t0.Add(65 * time.Second)); n != 1 {
		t.Fatalf("closed %d buckets at end+lateness, want 1", n)
	}
	got := a.DrainPending()
	if len(got) != 1 {
		t.Fatalf("pending = %+v", got)
	}
	b := got[0]
	if !b.Start.Equal(t0) || b.Width != time.Minute || b.Count != 2 || b.Sum != 4 || b.Min != 1 || b.Max != 3 ||
		!b.First.Equal(first) || !b.Last.Equal(t0.Add(59*time.Second)) || b.Avg() != 2 {
		t.Fatalf("bucket = %+v", b)
	}
	if k := b.Key(); k != "agg/s/1m/"+itoa(t0.Unix()) {
		t.Fatalf("key = %q", k)
	}
	// The hour bucket and the 12:01 bucket are still open.
	if open := a.Stats().Open; open != 2 {
		t.Fatalf("open = %d, want 2", open)
	}
	if got := a.ClosedUntil("s", time.Minute); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("ClosedUntil = %v", got)
	}
	if n := a.Tick(t0.Add(time.Hour + 5*time.Second)); n != 2 {
		t.Fatalf("closed %d, want 2 (12:01 and the hour)", n)
	}
	hour := a.DrainPending()
	if len(hour) != 2 || hour[1].Width != time.Hour || hour[1].Count != 3 || hour[1].Sum != 14 {
		t.Fatalf("pending = %+v", hour)
	}
	if k := hour[1].Key(); k != "agg/s/1h/"+itoa(t0.Unix()) {
		t.Fatalf("key = %q", k)
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func TestAggregatorLateness(t *testing.T) {
	a := newAgg(t, AggregatorConfig{AllowedLateness: 10 * time.Second})
	a.Add(rd("s", t0.Add(30*time.Second), 1), t0.Add(30*time.Second))
	// Arrives 5s after the bucket ended, inside the allowed lateness: same bucket.
	now := t0.Add(65 * time.Second)
	a.Add(rd("s", t0.Add(50*time.Second), 2), now)
	if st := a.Stats(); st.LateInWindow != 1 || st.LateMerged != 0 {
		t.Fatalf("stats = %+v", st)
	}
	a.Tick(t0.Add(70 * time.Second))
	b := a.DrainPending()
	if len(b) != 1 || b[0].Count != 2 || b[0].Late {
		t.Fatalf("pending = %+v", b)
	}
	// After the close: a late partial for the same interval and key, closed at the next tick.
	now = t0.Add(80 * time.Second)
	a.Add(rd("s", t0.Add(40*time.Second), 5), now)
	a.Add(rd("s", t0.Add(45*time.Second), 7), now)
	a.Add(rd("s", t0.Add(75*time.Second), 1), now) // the open 12:01 bucket
	if st := a.Stats(); st.LateMerged != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if n := a.Tick(now); n != 1 {
		t.Fatalf("Tick closed %d, want the late partial only", n)
	}
	late := a.DrainPending()
	if len(late) != 1 || !late[0].Late || late[0].Count != 2 || late[0].Sum != 12 || late[0].Key() != b[0].Key() {
		t.Fatalf("late = %+v", late)
	}
	// A day old: still aggregated, as a late partial (raw readings left
	// unaggregated were dropped unsummarised by offload).
	a.Add(rd("s", now.Add(-25*time.Hour), 1), now)
	if st := a.Stats(); st.TooOld != 0 || st.LateMerged != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

// NoLateness (allowed_lateness: 0 in the config) closes a bucket at its
// end; the zero value is the 10 s default (the audit found 0 in the
// config meant 10 s).
func TestAggregatorNoLateness(t *testing.T) {
	for _, c := range []struct {
		lateness time.Duration
		closesAt time.Duration // after the bucket's start
	}{{NoLateness, time.Minute}, {0, time.Minute + DefaultAllowedLateness}} {
		a := newAgg(t, AggregatorConfig{AllowedLateness: c.lateness})
		a.Add(rd("s", t0.Add(30*time.Second), 1), t0.Add(30*time.Second))
		if n := a.Tick(t0.Add(c.closesAt - time.Nanosecond)); n != 0 {
			t.Fatalf("lateness %v: %d closed before %v", c.lateness, n, c.closesAt)
		}
		if n := a.Tick(t0.Add(c.closesAt)); n != 1 {
			t.Fatalf("lateness %v: %d closed at %v, want 1", c.lateness, n, c.closesAt)
		}
	}
}

func TestAggregatorPendingCapDropsOldest(t *testing.T) {
	a := newAgg(t, AggregatorConfig{MaxPendingBuckets: 3, AllowedLateness: time.Nanosecond})
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		a.Add(rd("s", at, float64(i)), at)
	}
	a.Tick(t0.Add(time.Hour))
	st := a.Stats()
	if st.Dropped != 2 || st.Pending != 3 {
		t.Fatalf("stats = %+v", st)
	}
	got := a.DrainPending()
	for i, b := range got {
		if want := t0.Add(time.Duration(i+2) * time.Minute); !b.Start.Equal(want) {
			t.Fatalf("pending[%d] starts %v, want %v (oldest dropped)", i, b.Start, want)
		}
	}
	// Requeue after a failed write keeps the cap and the order.
	a.Add(rd("s", t0.Add(10*time.Minute), 1), t0.Add(10*time.Minute))
	a.Tick(t0.Add(time.Hour))
	a.Requeue(got)
	again := a.DrainPending()
	if len(again) != 3 || !again[0].Start.Equal(t0.Add(3*time.Minute)) || !again[2].Start.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("after requeue = %+v", again)
	}
}

func TestAggregatorOpenCapForcesClose(t *testing.T) {
	a := newAgg(t, AggregatorConfig{MaxOpenBuckets: 2})
	a.Add(rd("a", t0, 1), t0)
	a.Add(rd("b", t0.Add(time.Minute), 1), t0)
	a.Add(rd("c", t0, 1), t0)
	st := a.Stats()
	if st.ForcedClosed != 1 || st.Open != 2 || st.Pending != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if p := a.DrainPending(); p[0].Sensor != "a" {
		t.Fatalf("forced close picked %q, want the bucket due first", p[0].Sensor)
	}
}

func TestAggregatorFlushAndRestore(t *testing.T) {
	a := newAgg(t, AggregatorConfig{})
	a.Add(rd("s", t0.Add(time.Second), 1), t0.Add(time.Second))
	a.Add(rd("s", t0.Add(2*time.Minute), 1), t0.Add(2*time.Minute))
	if n := a.Flush(); n != 2 {
		t.Fatalf("Flush closed %d", n)
	}
	if p := a.DrainPending(); len(p) != 2 || a.Stats().Open != 0 {
		t.Fatalf("pending = %+v", p)
	}
	until := a.ClosedUntil("s", time.Minute)
	if !until.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("ClosedUntil = %v", until)
	}
	// A restarted aggregator restores the watermark: earlier readings are late partials.
	b := newAgg(t, AggregatorConfig{})
	b.Restore("s", time.Minute, until)
	now := t0.Add(3 * time.Minute)
	b.Add(rd("s", t0.Add(2*time.Minute+time.Second), 1), now)
	b.Add(rd("s", t0.Add(3*time.Minute+time.Second), 1), now)
	if st := b.Stats(); st.LateMerged != 1 || st.Open != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if bs := b.Buckets("s", 10); len(bs) != 2 || !bs[0].Open || !bs[0].Start.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("Buckets = %+v", bs)
	}
}

func TestAggregatorConfigValidate(t *testing.T) {
	for _, cfg := range []AggregatorConfig{
		{Widths: []time.Duration{7 * time.Second}},
		{Widths: []time.Duration{1500 * time.Millisecond}},
		{Widths: []time.Duration{time.Minute, time.Minute}},
		{Widths: []time.Duration{48 * time.Hour}},
		// More widths than a checkpoint holds watermarks for (17 crashed
		// the tick, found by review).
		{Widths: []time.Duration{1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16, 18, 20, 24, 25, 30}},
	} {
		for i := range cfg.Widths {
			if cfg.Widths[i] < time.Millisecond {
				cfg.Widths[i] *= time.Second
			}
		}
		if _, err := NewEdgeAggregator(cfg); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: err = %v", cfg, err)
		}
	}
}

func TestAlignDownNegative(t *testing.T) {
	if got := alignDown(-1, 10); got != -10 {
		t.Fatalf("alignDown(-1,10) = %d", got)
	}
	if got := alignDown(25, 10); got != 20 {
		t.Fatalf("alignDown(25,10) = %d", got)
	}
}

func TestAggregatorRollup(t *testing.T) {
	a := newAgg(t, AggregatorConfig{Widths: []time.Duration{time.Minute, time.Hour}})
	a.Add(rd("s", t0.Add(time.Second), 1), t0.Add(time.Second))
	if n := a.SetRollup(true); n != 1 || !a.Rollup() {
		t.Fatalf("SetRollup closed %d", n)
	}
	p := a.DrainPending()
	if len(p) != 1 || p[0].Width != time.Minute {
		t.Fatalf("pending = %+v", p)
	}
	a.Add(rd("s", t0.Add(2*time.Minute), 2), t0.Add(2*time.Minute))
	if st := a.Stats(); st.Open != 1 {
		t.Fatalf("open = %d, want only the hour bucket", st.Open)
	}
	a.SetRollup(false)
	a.Add(rd("s", t0.Add(3*time.Minute), 3), t0.Add(3*time.Minute))
	a.Flush()
	var minute, hour uint64
	for _, b := range a.DrainPending() {
		if b.Width == time.Minute {
			minute += b.Count
		} else {
			hour += b.Count
		}
	}
	if minute != 1 || hour != 3 {
		t.Fatalf("minute readings %d, hour readings %d", minute, hour)
	}
}

func BenchmarkAggregatorAddBatch(b *testing.B) {
	a, err := NewEdgeAggregator(AggregatorConfig{Widths: []time.Duration{time.Minute, time.Hour}})
	if err != nil {
		b.Fatal(err)
	}
	rs := make([]Reading, 256)
	for i := range rs {
		rs[i] = Reading{Sensor: "sensor-" + strconv.Itoa(i%100), Value: float64(i), Time: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	b.ReportAllocs()
	for b.Loop() {
		a.AddBatch(rs, t0)
	}
	b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "readings/s")
}
