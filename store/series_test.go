package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSeriesRing(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	o.MaxReadingsPerSensor = 5
	s := openWith(t, o)
	var rs []Reading
	for i := range 8 {
		rs = append(rs, Reading{Sensor: "temp-1", TS: int64(i * 10), Value: float64(i) / 2})
	}
	rs = append(rs, Reading{Sensor: "hum-1", TS: 5, Value: 40})
	check(t, s.AppendReadings(ctx, rs))
	got := must[[]Reading](t)(s.Readings(ctx, "temp-1", 0, 0))
	if len(got) != 5 || got[0].TS != 30 || got[4].Value != 3.5 {
		t.Fatalf("ring: %+v", got)
	}
	got = must[[]Reading](t)(s.Readings(ctx, "temp-1", 40, 60))
	if len(got) != 2 || got[0].TS != 40 || got[1].TS != 50 {
		t.Fatalf("range: %+v", got)
	}
	check(t, s.SetSensorUnit(ctx, "temp-1", "celsius"))
	check(t, s.Close())
	s = openWith(t, o)
	info := s.Sensors()
	if len(info) != 2 || info[1].ID != "temp-1" || info[1].Unit != "celsius" || info[1].Count != 5 || info[1].Total != 8 || info[1].LastTS != 70 {
		t.Fatalf("registry after reopen: %+v", info)
	}
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "temp-1", TS: 80, Value: 1}}))
	got = must[[]Reading](t)(s.Readings(ctx, "temp-1", 0, 0))
	if len(got) != 5 || got[0].TS != 40 || got[4].TS != 80 {
		t.Fatalf("ring after reopen: %+v", got)
	}
	// Readings are local: no ops.
	if s.LastSeq() != 0 {
		t.Fatalf("readings produced ops: seq %d", s.LastSeq())
	}
}

// The ring is trimmed lazily with range deletions; the readings past its
// size are invisible at once and physically gone after a slack's worth.
func TestSeriesRingLazyTrim(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	o.MaxReadingsPerSensor = 16 // slack 2
	s := openWith(t, o)
	physical := func() int {
		it, err := s.db.NewIter(nil)
		check(t, err)
		defer it.Close()
		n := 0
		prefix := seriesPrefix("t")
		for it.SeekGE(prefix); it.Valid() && len(it.Key()) == len(prefix)+8 && string(it.Key()[:len(prefix)]) == string(prefix); it.Next() {
			n++
		}
		return n
	}
	for i := range 100 {
		check(t, s.AppendReadings(ctx, []Reading{{Sensor: "t", TS: int64(i), Value: float64(i)}}))
		got := must[[]Reading](t)(s.Readings(ctx, "t", 0, 0))
		want := min(i+1, 16)
		if len(got) != want || got[len(got)-1].TS != int64(i) || got[0].TS != int64(i+1-want) {
			t.Fatalf("after %d readings: %d readings from %d", i+1, len(got), got[0].TS)
		}
		if n := physical(); n < want || n > 16+2 {
			t.Fatalf("after %d readings: %d stored, want %d..18", i+1, n, want)
		}
	}
	if info := s.Sensors(); info[0].Count != 16 || info[0].Total != 100 {
		t.Fatalf("registry %+v", info)
	}
	check(t, s.Close())
	s = openWith(t, o)
	if got := must[[]Reading](t)(s.Readings(ctx, "t", 0, 0)); len(got) != 16 || got[0].TS != 84 {
		t.Fatalf("after reopen: %d readings from %d", len(got), got[0].TS)
	}
	if info := s.Sensors(); info[0].Count != 16 {
		t.Fatalf("registry after reopen %+v", info)
	}
}

func TestSeriesLimits(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.MaxSensors = 1 })
	if err := s.AppendReadings(ctx, []Reading{{Sensor: "", TS: 1}}); !errors.Is(err, ErrInvalidSensor) {
		t.Fatalf("empty id: %v", err)
	}
	if err := s.AppendReadings(ctx, []Reading{{Sensor: strings.Repeat("x", 256), TS: 1}}); !errors.Is(err, ErrInvalidSensor) {
		t.Fatalf("long id: %v", err)
	}
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "a", TS: 1}}))
	if err := s.AppendReadings(ctx, []Reading{{Sensor: "b", TS: 1}}); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("second sensor: %v", err)
	}
	if err := s.MarkAggregated(ctx, "nope", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown sensor: %v", err)
	}
}
