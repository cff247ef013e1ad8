package store

import (
	"context"
	"errors"
	"testing"
)

// ForgetSensor removes the ring and the registry record and writes the
// caller's records in one batch; the sensor stays gone across a reopen,
// and when it sends again its new ring holds none of the old readings.
func TestForgetSensor(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	o.MaxReadingsPerSensor = 4 // the old ring wrapped: its lowest indexes were trimmed
	s := openWith(t, o)
	for i := range 7 {
		check(t, s.AppendReadings(ctx, []Reading{{Sensor: "tmep-001", TS: int64(i), Value: float64(i)}}))
	}
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "temp-001", TS: 1, Value: 21}}))
	check(t, s.SetSyncState(ctx, "ingest:state:1", []byte("old")))
	check(t, s.SetSyncState(ctx, "ingest:state:2", []byte("other")))

	n, err := s.ForgetSensor(ctx, "tmep-001", map[string][]byte{"ingest:state:1": []byte("new"), "ingest:state:2": nil})
	if err != nil || n != 4 {
		t.Fatalf("ForgetSensor = %d, %v; want the 4 readings of the ring", n, err)
	}
	// A registry flush after the forget must not write the record back
	// (the sensor's last appends had left it dirty).
	s.persistSensors()
	gone := func(when string) {
		t.Helper()
		if info := s.Sensors(); len(info) != 1 || info[0].ID != "temp-001" || info[0].Count != 1 {
			t.Fatalf("%s: registry %+v", when, info)
		}
		if rs := must[[]Reading](t)(s.Readings(ctx, "tmep-001", 0, 0)); len(rs) != 0 {
			t.Fatalf("%s: readings of the forgotten sensor %+v", when, rs)
		}
		if v := must[[]byte](t)(s.SyncState(ctx, "ingest:state:1")); string(v) != "new" {
			t.Fatalf("%s: record %q", when, v)
		}
		if _, err := s.SyncState(ctx, "ingest:state:2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: deleted record: %v", when, err)
		}
	}
	gone("after ForgetSensor")
	check(t, s.Close())
	s = openWith(t, o)
	gone("after reopen")

	// It comes back as a new sensor: a new ring, counted from zero.
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "tmep-001", TS: 100, Value: 5}}))
	check(t, s.Close())
	s = openWith(t, o)
	rs := must[[]Reading](t)(s.Readings(ctx, "tmep-001", 0, 0))
	if len(rs) != 1 || rs[0].TS != 100 {
		t.Fatalf("readings after coming back: %+v", rs)
	}
	if info := s.Sensors(); len(info) != 2 || info[1].ID != "tmep-001" || info[1].Total != 1 || info[1].Count != 1 {
		t.Fatalf("registry after coming back: %+v", info)
	}

	// Unknown: nothing to drop, not an error. A deletion: allowed while
	// writes are refused (the Critical resource level).
	s.SetRefuseWrites("critical")
	if n, err := s.ForgetSensor(ctx, "never-seen", nil); n != 0 || err != nil {
		t.Fatalf("unknown sensor: %d, %v", n, err)
	}
	if n, err := s.ForgetSensor(ctx, "tmep-001", nil); n != 1 || err != nil {
		t.Fatalf("while writes are refused: %d, %v", n, err)
	}
	if _, err := s.ForgetSensor(ctx, "", nil); !errors.Is(err, ErrInvalidSensor) {
		t.Fatalf("empty id: %v", err)
	}
}
