package ingest

import (
	"errors"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	widths := []int64{int64(time.Minute), int64(time.Hour)}
	st := &sensorState{
		info: SensorInfo{
			ID: "temp", Unit: "°C", Count: 42, Sum: 100.5, Min: -3, Max: 30, Last: 22.5,
			FirstSeen: t0, LastSeen: t0.Add(time.Hour), LastTime: t0.Add(59 * time.Minute),
		},
		marks: []int64{t0.Add(time.Minute).UnixNano(), 0},
	}
	info, marks, err := decodeState("temp", encodeState(st, widths))
	if err != nil {
		t.Fatal(err)
	}
	if info != st.info {
		t.Fatalf("info = %+v, want %+v", info, st.info)
	}
	if len(marks) != 1 || marks[0].width != time.Minute || marks[0].until != st.marks[0] {
		t.Fatalf("marks = %+v", marks)
	}
	empty, _, err := decodeState("x", encodeState(&sensorState{info: SensorInfo{ID: "x"}}, widths))
	if err != nil || !empty.FirstSeen.IsZero() || empty.Count != 0 {
		t.Fatalf("empty: %+v %v", empty, err)
	}
}

func TestStateCorrupt(t *testing.T) {
	good := encodeState(&sensorState{info: SensorInfo{Unit: "C"}, marks: []int64{5}}, []int64{int64(time.Minute)})
	for _, b := range [][]byte{nil, {2}, good[:len(good)-1], append(append([]byte{}, good...), 0)} {
		if _, _, err := decodeState("s", b); !errors.Is(err, ErrCorruptState) {
			t.Errorf("%x: err = %v", b, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(&sensorState{info: SensorInfo{Unit: "C", Count: 3, FirstSeen: t0}, marks: []int64{5, 7}},
		[]int64{int64(time.Minute), int64(time.Hour)}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, marks, err := decodeState("s", b)
		if err != nil {
			return
		}
		if len(info.Unit) > maxUnitLen || len(marks) > maxStateMarks {
			t.Fatalf("unbounded decode: %+v %+v", info, marks)
		}
		// Whatever decodes re-encodes to something that decodes the same.
		widths := make([]int64, len(marks))
		ms := make([]int64, len(marks))
		for i, m := range marks {
			widths[i], ms[i] = int64(m.width), m.until
		}
		info2, _, err := decodeState("s", encodeState(&sensorState{info: info, marks: ms}, widths))
		if err != nil || info2 != info {
			t.Fatalf("re-encode: %+v vs %+v (%v)", info2, info, err)
		}
	})
}

func TestStateShardRoundTrip(t *testing.T) {
	m := map[string][]byte{"a": {1, 2}, "b/c": {}, "°": {3}}
	got, err := decodeStateShard(encodeStateShard(m))
	if err != nil || len(got) != 3 || string(got["a"]) != "\x01\x02" || len(got["b/c"]) != 0 || string(got["°"]) != "\x03" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, b := range [][]byte{nil, {2, 0}, {1, 5}, {1, 1, 0, 0}, {1, 1, 1, 'a', 9}} {
		if _, err := decodeStateShard(b); !errors.Is(err, ErrCorruptState) {
			t.Errorf("%x: err = %v", b, err)
		}
	}
}

func FuzzDecodeStateShard(f *testing.F) {
	f.Add(encodeStateShard(map[string][]byte{"a": {1, 2}, "b": nil}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeStateShard(b)
		if err != nil {
			return
		}
		again, err := decodeStateShard(encodeStateShard(m))
		if err != nil || len(again) != len(m) {
			t.Fatalf("re-encode: %v %v", again, err)
		}
	})
}
