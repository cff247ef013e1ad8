package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ErrCorruptState is returned when a persisted sensor checkpoint cannot be decoded.
var ErrCorruptState = errors.New("ingest: corrupt sensor state")

// SensorInfo is a sensor's registry entry and running aggregates.
type SensorInfo struct {
	ID   string `json:"id"`
	Unit string `json:"unit,omitempty"`
	// FirstSeen and LastSeen are receive times (gateway clock).
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Count, Sum, Min, Max cover every reading ingested since the sensor
	// first appeared (they survive restarts).
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Last is the value of the reading with the newest timestamp, LastTime
	// that timestamp (a late reading does not replace it).
	Last     float64   `json:"last"`
	LastTime time.Time `json:"last_ts"`
}

// Avg is Sum/Count (0 when there are no readings).
func (i *SensorInfo) Avg() float64 {
	if i.Count == 0 {
		return 0
	}
	return i.Sum / float64(i.Count)
}

// add folds one reading in. received is the gateway time.
func (i *SensorInfo) add(v float64, ts, received time.Time, unit string) {
	if i.Count == 0 {
		i.Min, i.Max = v, v
	} else {
		i.Min, i.Max = min(i.Min, v), max(i.Max, v)
	}
	i.Count++
	i.Sum += v
	if !ts.Before(i.LastTime) {
		i.Last, i.LastTime = v, ts
	}
	if i.FirstSeen.IsZero() || received.Before(i.FirstSeen) {
		i.FirstSeen = received
	}
	if received.After(i.LastSeen) {
		i.LastSeen = received
	}
	if unit != "" && unit != i.Unit {
		i.Unit = unit
	}
}

// MaxBucketWidths bounds the bucket widths (each sensor's checkpoint holds
// one watermark per width).
const MaxBucketWidths = 16

// sensorState is the in-memory state of one sensor.
type sensorState struct {
	info SensorInfo
	// marks[i] is the closed watermark (unix ns) of width i last persisted.
	marks []int64
	dirty bool
	// retired are watermarks of widths no longer configured, kept so that
	// a width configured again does not replay buckets it already wrote.
	retired []persistedMark
}

const (
	stateVersion  = 1
	maxStateMarks = MaxBucketWidths
	maxUnitLen    = MaxUnitLen
)

// encodeState: version, uvarint count, 4 float64 (sum, min, max, last),
// 3 varint unix ns (first seen, last seen, last time), uvarint len + unit,
// uvarint n, n × (uvarint width seconds, varint closed-until ns).
func encodeState(st *sensorState, widths []int64) []byte {
	b := make([]byte, 0, 80+len(st.info.Unit)+12*len(st.marks))
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, st.info.Count)
	for _, f := range [...]float64{st.info.Sum, st.info.Min, st.info.Max, st.info.Last} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	for _, t := range [...]time.Time{st.info.FirstSeen, st.info.LastSeen, st.info.LastTime} {
		b = binary.AppendVarint(b, unixNano(t))
	}
	b = binary.AppendUvarint(b, uint64(len(st.info.Unit)))
	b = append(b, st.info.Unit...)
	n := 0
	for _, m := range st.marks {
		if m != 0 {
			n++
		}
	}
	retired := st.retired[:min(len(st.retired), max(0, maxStateMarks-n))]
	b = binary.AppendUvarint(b, uint64(n+len(retired)))
	for i, m := range st.marks {
		if m != 0 {
			b = binary.AppendUvarint(b, uint64(widths[i]/int64(time.Second)))
			b = binary.AppendVarint(b, m)
		}
	}
	for _, m := range retired {
		b = binary.AppendUvarint(b, uint64(m.width/time.Second))
		b = binary.AppendVarint(b, m.until)
	}
	return b
}

// persistedMark is one decoded watermark.
type persistedMark struct {
	width time.Duration
	until int64
}

// decodeState decodes a checkpoint. Garbage yields ErrCorruptState, never
// a panic; no allocation is sized from unchecked input.
func decodeState(id string, b []byte) (SensorInfo, []persistedMark, error) {
	info := SensorInfo{ID: id}
	d := stateDecoder{b: b}
	if v := d.byte(); v != stateVersion {
		return info, nil, fmt.Errorf("%w: sensor %q: version %d", ErrCorruptState, id, v)
	}
	info.Count = d.uvarint()
	info.Sum, info.Min, info.Max, info.Last = d.float(), d.float(), d.float(), d.float()
	for _, f := range [...]float64{info.Sum, info.Min, info.Max, info.Last} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail()
		}
	}
	info.FirstSeen, info.LastSeen, info.LastTime = d.time(), d.time(), d.time()
	if n := d.uvarint(); n > maxUnitLen || n > uint64(len(d.b)) {
		d.fail()
	} else {
		info.Unit = string(d.take(int(n)))
	}
	n := d.uvarint()
	if n > maxStateMarks {
		d.fail()
		n = 0
	}
	var marks []persistedMark
	for range n {
		w := d.uvarint()
		until := d.varint()
		if w == 0 || w > 86400 {
			d.fail()
			break
		}
		marks = append(marks, persistedMark{time.Duration(w) * time.Second, until})
	}
	if d.err || len(d.b) != 0 {
		return SensorInfo{ID: id}, nil, fmt.Errorf("%w: sensor %q", ErrCorruptState, id)
	}
	return info, marks, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

type stateDecoder struct {
	b   []byte
	err bool
}

func (d *stateDecoder) fail() { d.err, d.b = true, nil }

func (d *stateDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *stateDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}

func (d *stateDecoder) time() time.Time {
	ns := d.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (d *stateDecoder) take(n int) []byte {
	if n > len(d.b) {
		d.fail()
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

// A state shard record: version byte, uvarint n, then n × (uvarint len,
// sensor id, uvarint len, state), sorted by id.
const (
	shardVersion     = 1
	maxShardEntries  = 1 << 20
	maxStateLen      = 1024
	maxShardSensorID = 255
)

func encodeStateShard(m map[string][]byte) []byte {
	ids := make([]string, 0, len(m))
	size := 8
	for id, st := range m {
		ids = append(ids, id)
		size += len(id) + len(st) + 4
	}
	slices.Sort(ids)
	b := make([]byte, 0, size)
	b = append(b, shardVersion)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendUvarint(b, uint64(len(m[id])))
		b = append(b, m[id]...)
	}
	return b
}

// decodeStateShard decodes a shard record; garbage yields ErrCorruptState.
func decodeStateShard(b []byte) (map[string][]byte, error) {
	d := stateDecoder{b: b}
	if v := d.byte(); v != shardVersion {
		return nil, fmt.Errorf("%w: state shard version %d", ErrCorruptState, v)
	}
	n := d.uvarint()
	// Each entry takes at least 2 bytes: no allocation beyond the input.
	if n > maxShardEntries || n > uint64(len(d.b))/2 {
		return nil, fmt.Errorf("%w: state shard of %d entries", ErrCorruptState, n)
	}
	m := make(map[string][]byte, n)
	for range n {
		idLen := d.uvarint()
		if idLen == 0 || idLen > maxShardSensorID {
			d.fail()
			break
		}
		id := string(d.take(int(idLen)))
		stLen := d.uvarint()
		if stLen > maxStateLen {
			d.fail()
			break
		}
		st := d.take(int(stLen))
		if d.err {
			break
		}
		m[id] = slices.Clone(st)
	}
	if d.err || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: state shard", ErrCorruptState)
	}
	return m, nil
}
