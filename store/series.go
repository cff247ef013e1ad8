package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Sensor series: a local, non-replicated ring of raw readings per sensor
// plus a registry of sensors. Ingest appends raw readings here, rebuilds its
// open aggregation buckets from them after a restart, and tells the store
// which readings are already folded into replicated aggregate keys
// (MarkAggregated) so that Evict may drop them once those aggregates are
// acknowledged upstream.
//
// Layout: s r <uvarint len(id)> <id> <be64 index> -> be64 ts, be64 float bits
//         s i <id>                                -> sensor info
// Ring indexes grow by one per reading; the ring keeps the last
// Options.MaxReadingsPerSensor of them.

// Reading is one raw sensor reading.
type Reading struct {
	Sensor string
	TS     int64 // unix milliseconds
	Value  float64
}

// SensorInfo describes a sensor in the registry.
type SensorInfo struct {
	ID    string
	Unit  string
	Count int   // readings in the ring
	Total int64 // readings ever appended
	// LastTS is the timestamp of the newest reading appended.
	LastTS int64
	// AggregatedBefore: readings older than this (unix ms) are folded into
	// replicated aggregates (see MarkAggregated).
	AggregatedBefore int64
}

type sensorState struct {
	info   SensorInfo
	prefix []byte
	first  uint64 // ring index of the oldest reading not yet deleted
	next   uint64 // ring index of the next reading
	aggSeq uint64 // op seq covering AggregatedBefore
	// aggNext is next at the last MarkAggregated: only readings stored
	// before it can be summarised by it (a late reading stored after it,
	// with a time before AggregatedBefore, is not yet).
	aggNext uint64
	// stored: the registry record exists in Pebble. dirty: the record is
	// behind (Total, LastTS, next): it is rewritten by flushSensors, and
	// open recovers next from the ring's keys anyway (see loadSensors).
	stored, dirty bool
}

const maxSensorID = 255

func validSensor(id string) error {
	if id == "" || len(id) > maxSensorID {
		return fmt.Errorf("%w: %q", ErrInvalidSensor, id)
	}
	return nil
}

func encodeReading(ts int64, v float64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(ts))
	binary.BigEndian.PutUint64(b[8:], math.Float64bits(v))
	return b
}

func decodeReading(b []byte) (ts int64, v float64, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("%w: reading of %d bytes", ErrCorrupt, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), math.Float64frombits(binary.BigEndian.Uint64(b[8:])), nil
}

// sensor info record: version, uvarint first, next, total, varint aggBefore,
// uvarint aggSeq, varint lastTS, uvarint len(unit), unit; version 2 adds
// uvarint aggNext (a version 1 record reads as aggNext = next: its
// readings were all stored before the layout knew better).
func encodeSensorInfo(st *sensorState) []byte {
	b := make([]byte, 0, 56+len(st.info.Unit))
	b = append(b, 2)
	b = binary.AppendUvarint(b, st.first)
	b = binary.AppendUvarint(b, st.next)
	b = binary.AppendUvarint(b, uint64(st.info.Total))
	b = binary.AppendVarint(b, st.info.AggregatedBefore)
	b = binary.AppendUvarint(b, st.aggSeq)
	b = binary.AppendVarint(b, st.info.LastTS)
	b = binary.AppendUvarint(b, uint64(len(st.info.Unit)))
	b = append(b, st.info.Unit...)
	return binary.AppendUvarint(b, st.aggNext)
}

func decodeSensorInfo(id string, b []byte) (*sensorState, error) {
	r := reader{b: b}
	v := r.byte()
	if v != 1 && v != 2 {
		return nil, fmt.Errorf("%w: sensor info version %d", ErrCorrupt, v)
	}
	st := &sensorState{info: SensorInfo{ID: id}, prefix: seriesPrefix(id)}
	st.first = r.uvarint()
	st.next = r.uvarint()
	st.info.Total = int64(r.uvarint())
	st.info.AggregatedBefore = r.varint()
	st.aggSeq = r.uvarint()
	st.info.LastTS = r.varint()
	st.info.Unit = r.str(maxSensorID)
	st.aggNext = st.next
	if v == 2 {
		st.aggNext = r.uvarint()
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("sensor %q: %w", id, err)
	}
	if st.first > st.next {
		return nil, fmt.Errorf("%w: sensor %q ring %d > %d", ErrCorrupt, id, st.first, st.next)
	}
	st.aggNext = min(st.aggNext, st.next)
	st.info.Count = int(st.next - st.first) // capped by loadSensors
	return st, nil
}

// loadSensors reads the registry at open.
func (s *Store) loadSensors() error {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixSeries, seriesInfo},
		UpperBound: []byte{prefixSeries, seriesInfo + 1},
	})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Key()[2:])
		st, err := decodeSensorInfo(id, it.Value())
		if err != nil {
			return err
		}
		st.stored = true
		s.sensors[id] = st
	}
	if err := it.Error(); err != nil {
		return err
	}
	for _, st := range s.sensors {
		if err := s.recoverRing(st); err != nil {
			return err
		}
	}
	return nil
}

// recoverRing sets st's ring bounds from the readings actually stored: the
// registry record is written lazily (flushSensors), so after a crash it
// may be behind the readings appended since. Without this a new reading
// would overwrite an acknowledged one.
func (s *Store) recoverRing(st *sensorState) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: st.prefix, UpperBound: prefixEnd(st.prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.First() {
		st.first = st.next
		st.info.Count = 0
		return it.Error()
	}
	first, ok := ringIndex(st.prefix, it.Key())
	if !ok {
		return fmt.Errorf("%w: reading key %x", ErrCorrupt, it.Key())
	}
	it.Last()
	last, ok := ringIndex(st.prefix, it.Key())
	if !ok {
		return fmt.Errorf("%w: reading key %x", ErrCorrupt, it.Key())
	}
	if last+1 > st.next {
		ts, _, err := decodeReading(it.Value())
		if err != nil {
			return err
		}
		st.info.Total += int64(last + 1 - st.next)
		st.info.LastTS = ts
		st.next = last + 1
		st.dirty = true
	}
	st.first = first
	st.info.Count = s.ringLen(st)
	return it.Error()
}

// ringIndex parses a reading key of the sensor whose prefix is given.
func ringIndex(prefix, key []byte) (uint64, bool) {
	if len(key) != len(prefix)+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), true
}

// flushSensors writes the registry records that are behind, in b (the
// caller commits it). They need no fsync of their own: open recovers what
// a crash loses (recoverRing).
func (s *Store) flushSensors(b *pebble.Batch) {
	s.seriesMu.Lock()
	defer s.seriesMu.Unlock()
	s.flushSensorsLocked(b)
}

func (s *Store) flushSensorsLocked(b *pebble.Batch) {
	for id, st := range s.sensors {
		if st.dirty {
			_ = b.Set(sensorInfoKey(id), encodeSensorInfo(st), nil)
			st.dirty = false
		}
	}
}

// persistSensors commits the registry records that are behind (the
// background loop, every second). It commits under seriesMu: a record
// staged before a ForgetSensor and committed after it would bring the
// forgotten sensor's record back.
func (s *Store) persistSensors() {
	b := s.db.NewBatch()
	defer b.Close()
	s.seriesMu.Lock()
	defer s.seriesMu.Unlock()
	s.flushSensorsLocked(b)
	if b.Empty() {
		return
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		s.log.Warn("persist sensor registry", "err", err)
	}
}

// AppendReadings appends raw readings to their sensors' rings in one
// atomic, durable (per Options.Durability) batch. Unknown sensors are added
// to the registry. Readings are local: they are not replicated.
func (s *Store) AppendReadings(ctx context.Context, readings []Reading) error {
	if err := s.checkWrite(ctx, true); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	for _, r := range readings {
		if err := validSensor(r.Sensor); err != nil {
			return err
		}
	}
	if len(readings) == 0 {
		return nil
	}
	s.seriesMu.Lock()
	// Check the registry limit before changing anything.
	var added map[string]bool
	for _, r := range readings {
		if s.sensors[r.Sensor] == nil && !added[r.Sensor] {
			if added == nil {
				added = make(map[string]bool)
			}
			added[r.Sensor] = true
		}
	}
	if len(s.sensors)+len(added) > s.opts.MaxSensors {
		s.seriesMu.Unlock()
		return fmt.Errorf("%w: %d sensors (MaxSensors %d)", ErrTooManyKeys, len(s.sensors)+len(added), s.opts.MaxSensors)
	}
	b := s.db.NewBatch()
	touched := make(map[string]*sensorState, 1)
	for _, r := range readings {
		st := s.sensors[r.Sensor]
		if st == nil {
			st = &sensorState{info: SensorInfo{ID: r.Sensor}, prefix: seriesPrefix(r.Sensor)}
			s.sensors[r.Sensor] = st
		}
		_ = b.Set(readingKey(st.prefix, st.next), encodeReading(r.TS, r.Value), nil)
		st.next++
		st.info.Total++
		st.info.LastTS = r.TS
		s.trimRing(b, st)
		touched[r.Sensor] = st
	}
	for id, st := range touched {
		st.info.Count = s.ringLen(st)
		// A new sensor's record is written with its first readings (open
		// finds sensors by their records); later ones only mark it dirty:
		// one record write per batch per sensor was half of what a QoS 1
		// reading (a batch of one) cost Pebble.
		if !st.stored {
			_ = b.Set(sensorInfoKey(id), encodeSensorInfo(st), nil)
			st.stored = true
		} else {
			st.dirty = true
		}
	}
	w, err := s.commitBatch(b, false)
	s.seriesMu.Unlock()
	if err != nil {
		// The registry in memory is ahead of Pebble now: stop writing.
		return s.failWAL(err)
	}
	s.metrics.readings.Add(float64(len(readings)))
	return s.finishCommit(w)
}

// The ring of a sensor is the readings [ringFirst, next). Readings older
// than that are deleted lazily, a slack's worth at a time with one range
// deletion: a point deletion per reading doubled the keys Pebble flushes
// and compacts (measured: compaction was 30% of the CPU of QoS 1 ingest).
// st.first is the oldest reading not yet deleted.

// ringSlack is how far a ring may run past its size before trimming.
func ringSlack(size uint64) uint64 { return max(size/8, 1) }

// ringFirst is the index of the oldest reading in st's ring.
func (s *Store) ringFirst(st *sensorState) uint64 {
	size := uint64(s.opts.MaxReadingsPerSensor)
	if st.next-st.first <= size {
		return st.first
	}
	return st.next - size
}

// ringLen is the number of readings in st's ring.
func (s *Store) ringLen(st *sensorState) int { return int(st.next - s.ringFirst(st)) }

// trimRing deletes, in b, the readings that fell out of the ring once
// they are a slack's worth.
func (s *Store) trimRing(b *pebble.Batch, st *sensorState) {
	size := uint64(s.opts.MaxReadingsPerSensor)
	if st.next-st.first <= size+ringSlack(size) {
		return
	}
	first := st.next - size
	_ = b.DeleteRange(readingKey(st.prefix, st.first), readingKey(st.prefix, first), nil)
	st.first = first
}

// readingTS returns the timestamp of the reading at ring index idx.
func (s *Store) readingTS(st *sensorState, idx uint64) (int64, error) {
	v, closer, err := s.db.Get(readingKey(st.prefix, idx))
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	ts, _, err := decodeReading(v)
	return ts, err
}

// Readings returns the readings of sensor with from <= TS < to, in arrival
// order (oldest first). to <= 0 means no upper bound.
func (s *Store) Readings(ctx context.Context, sensor string, from, to int64) ([]Reading, error) {
	if err := s.checkRead(ctx); err != nil {
		return nil, err
	}
	if err := validSensor(sensor); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := seriesPrefix(sensor)
	var first uint64
	s.seriesMu.Lock()
	if st := s.sensors[sensor]; st != nil {
		first = s.ringFirst(st)
	}
	s.seriesMu.Unlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: readingKey(prefix, first), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Reading
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != len(prefix)+8 {
			continue // another sensor whose id extends this one's length prefix: impossible, but be strict
		}
		ts, v, err := decodeReading(it.Value())
		if err != nil {
			return nil, fmt.Errorf("sensor %q: %w", sensor, err)
		}
		if ts >= from && (to <= 0 || ts < to) {
			out = append(out, Reading{Sensor: sensor, TS: ts, Value: v})
		}
	}
	return out, it.Error()
}

// Sensors returns the registry, sorted by id.
func (s *Store) Sensors() []SensorInfo {
	s.seriesMu.Lock()
	out := make([]SensorInfo, 0, len(s.sensors))
	for _, st := range s.sensors {
		out = append(out, st.info)
	}
	s.seriesMu.Unlock()
	slices.SortFunc(out, func(a, b SensorInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// SetSensorUnit records the unit of a sensor (created if unknown).
func (s *Store) SetSensorUnit(ctx context.Context, sensor, unit string) error {
	if err := s.checkWrite(ctx, false); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := validSensor(sensor); err != nil {
		return err
	}
	if len(unit) > maxSensorID {
		return fmt.Errorf("%w: unit of %d bytes", ErrValueTooLarge, len(unit))
	}
	return s.updateSensor(sensor, true, func(st *sensorState) { st.info.Unit = unit })
}

// MarkAggregated records that sensor's readings older than before (unix ms)
// and stored before this call are folded into replicated aggregate keys
// written before this call. Once the op log up to this call is
// acknowledged upstream (MarkSynced), Evict may drop those readings.
func (s *Store) MarkAggregated(ctx context.Context, sensor string, before int64) error {
	if err := s.checkWrite(ctx, false); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := validSensor(sensor); err != nil {
		return err
	}
	seq := s.lastSeq.Load()
	return s.updateSensor(sensor, false, func(st *sensorState) {
		if before > st.info.AggregatedBefore {
			st.info.AggregatedBefore = before
			st.aggSeq = seq
		}
		st.aggNext = st.next
	})
}

func (s *Store) updateSensor(sensor string, create bool, fn func(st *sensorState)) error {
	s.seriesMu.Lock()
	st := s.sensors[sensor]
	if st == nil {
		if !create {
			s.seriesMu.Unlock()
			return fmt.Errorf("%w: sensor %q", ErrNotFound, sensor)
		}
		if len(s.sensors) >= s.opts.MaxSensors {
			s.seriesMu.Unlock()
			return fmt.Errorf("%w: %d sensors (MaxSensors)", ErrTooManyKeys, len(s.sensors))
		}
		st = &sensorState{info: SensorInfo{ID: sensor}, prefix: seriesPrefix(sensor)}
		s.sensors[sensor] = st
	}
	fn(st)
	st.stored, st.dirty = true, false
	b := s.db.NewBatch()
	_ = b.Set(sensorInfoKey(sensor), encodeSensorInfo(st), nil)
	w, err := s.commitBatch(b, false)
	s.seriesMu.Unlock()
	if err != nil {
		return s.failWAL(err)
	}
	return s.finishCommit(w)
}

// evictReadings drops the oldest readings that are aggregated and whose
// aggregates are acknowledged upstream, until want bytes are freed. It
// returns the readings dropped and the bytes freed (estimated from key and
// value sizes).
func (s *Store) evictReadings(ctx context.Context, want int64) (n int, freed int64, err error) {
	var lo, hi []byte
	n, freed, lo, hi, err = s.dropReadings(want)
	if err != nil || n == 0 {
		return n, freed, err
	}
	// Deleting makes the disk usage grow (tombstones in the WAL and new
	// tables) until a compaction drops the data: reclaim the space now, or
	// an offload at Warning could push the disk level to Critical.
	if err := s.db.Compact(ctx, lo, hi, false); err != nil && ctx.Err() == nil {
		s.log.Warn("compacting dropped readings", "err", err)
	}
	s.refreshDiskUsage()
	return n, freed, nil
}

// dropReadings deletes raw readings (see evictReadings) with one range
// tombstone per sensor and returns the key span it deleted in.
func (s *Store) dropReadings(want int64) (n int, freed int64, lo, hi []byte, err error) {
	s.seriesMu.Lock()
	defer s.seriesMu.Unlock()
	ids := make([]string, 0, len(s.sensors))
	for id, st := range s.sensors {
		if s.isSynced(st.aggSeq) && st.info.AggregatedBefore > 0 && st.first < st.aggNext {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	type cut struct {
		st    *sensorState
		first uint64
	}
	var cuts []cut
	b := s.db.NewBatch()
	for _, id := range ids {
		if freed >= want {
			break
		}
		st := s.sensors[id]
		first := st.first
		for first < st.aggNext && freed < want {
			// Committed readings only: seriesMu is held, nothing is appended.
			ts, err := s.readingTS(st, first)
			if err != nil {
				_ = b.Close()
				return 0, 0, nil, nil, fmt.Errorf("sensor %q: %w", id, err)
			}
			if ts >= st.info.AggregatedBefore {
				break
			}
			first++
			n++
			freed += int64(len(st.prefix) + 8 + 16)
		}
		if first != st.first {
			start, end := readingKey(st.prefix, st.first), readingKey(st.prefix, first)
			_ = b.DeleteRange(start, end, nil)
			if lo == nil || bytes.Compare(start, lo) < 0 {
				lo = start
			}
			if bytes.Compare(end, hi) > 0 {
				hi = end
			}
			cuts = append(cuts, cut{st, first})
			next := *st
			next.first = first
			_ = b.Set(sensorInfoKey(id), encodeSensorInfo(&next), nil)
		}
	}
	if n == 0 {
		_ = b.Close()
		return 0, 0, nil, nil, nil
	}
	w, err := s.commitBatch(b, true)
	if err != nil {
		return 0, 0, nil, nil, err
	}
	for _, c := range cuts {
		c.st.first = c.first
		c.st.info.Count = s.ringLen(c.st)
	}
	return n, freed, lo, hi, s.finishCommit(w)
}
