package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Clock tells the time. The pipeline reads it for receive times and to
// drive the aggregator; tests inject a manual clock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// DefaultMaxSensors bounds the registry (readings of new sensors beyond it
// are dropped and counted).
const DefaultMaxSensors = 10000

// SensorIngestion keeps the registry and running aggregates of every
// sensor and appends raw readings to the store's per-sensor rings. With an
// aggregator it also feeds the time buckets. Safe for concurrent use.
type SensorIngestion struct {
	store      Store
	agg        *EdgeAggregator // may be nil
	clock      Clock
	maxSensors int
	widths     []int64

	mu      sync.Mutex
	sensors map[string]*sensorState

	// order serialises the batches of a sensor from admission to counting
	// (striped by sensor id, taken in stripe order): recovery takes a
	// checkpoint's count as the first readings of the sensor's ring, which
	// holds only if its readings are counted in the order they are stored.
	// Batches of different sensors still share the store's group commit.
	order [orderStripes]sync.Mutex

	// dropped counts readings of new sensors refused by maxSensors.
	dropped func(n int)
}

func newSensorIngestion(st Store, agg *EdgeAggregator, clock Clock, maxSensors int) *SensorIngestion {
	s := &SensorIngestion{
		store:      st,
		agg:        agg,
		clock:      clock,
		maxSensors: maxSensors,
		sensors:    make(map[string]*sensorState),
		dropped:    func(int) {},
	}
	if agg != nil {
		s.widths = agg.widths
	}
	return s
}

// Ingest stores one reading. A zero Time takes the current time; a time
// before 1970 or from 2262 on, a value beyond ±MaxMagnitude or a unit
// longer than MaxUnitLen is refused.
func (s *SensorIngestion) Ingest(ctx context.Context, r Reading) error {
	return s.IngestBatch(ctx, []Reading{r})
}

// IngestBatch stores readings in one store batch and updates the running
// aggregates under one lock acquisition. It returns once the batch is
// durable under the store's policy; on error nothing was recorded.
// Readings of new sensors beyond the registry cap are dropped (counted).
// rs may be reordered and compacted in place.
func (s *SensorIngestion) IngestBatch(ctx context.Context, rs []Reading) error {
	now := s.clock.Now()
	for i := range rs {
		if rs[i].Time.IsZero() {
			rs[i].Time = now
		}
		if err := checkAPIReading(&rs[i]); err != nil {
			return err
		}
	}
	_, err := s.ingestBatch(ctx, rs)
	return err
}

// checkAPIReading applies to a Go API reading the checks the parsers apply
// to a message (extract).
func checkAPIReading(r *Reading) error {
	if !validSensorID([]byte(r.Sensor)) {
		return fmt.Errorf("%w: %q", ErrInvalidSensorID, r.Sensor)
	}
	if err := checkReading(r.Value, len(r.Unit)); err != nil {
		return fmt.Errorf("sensor %q: %w", r.Sensor, err)
	}
	if ns := r.Time.UnixNano(); ns < 0 || ns >= maxDeviceTime {
		// The raw ring holds 1970..2262: earlier readings were stored and
		// then never read back. (1970..2000 stays accepted: a gateway
		// without a clock reads 1970 until NTP sets it.)
		return fmt.Errorf("sensor %q: %w: %v is outside 1970..2262", r.Sensor, ErrBadTimestamp, r.Time)
	}
	return nil
}

// ingestBatch stores readings checked already (by IngestBatch, or by the
// parsers for the pipeline's messages) and returns how many were stored.
func (s *SensorIngestion) ingestBatch(ctx context.Context, rs []Reading) (int, error) {
	now := s.clock.Now()
	unlock := s.lockOrder(rs)
	defer unlock()
	rs, created := s.admit(rs, now)
	if len(rs) == 0 {
		return 0, nil
	}
	if err := s.store.AppendReadings(ctx, rs); err != nil {
		s.forget(created)
		return 0, err
	}
	s.mu.Lock()
	for i := range rs {
		r := &rs[i]
		st := s.sensors[r.Sensor]
		if st == nil { // not expected: the order lock keeps admit's sensors
			st = &sensorState{info: SensorInfo{ID: r.Sensor, FirstSeen: now}}
			s.sensors[r.Sensor] = st
		}
		st.info.add(r.Value, r.Time, now, r.Unit)
		st.dirty = true
	}
	s.mu.Unlock()
	if s.agg != nil {
		s.agg.AddBatch(rs, now)
	}
	return len(rs), nil
}

// admit registers new sensors within the cap and removes readings of
// sensors beyond it. It returns the kept readings and the ids it created.
func (s *SensorIngestion) admit(rs []Reading, now time.Time) ([]Reading, []string) {
	var created []string
	kept := rs[:0]
	s.mu.Lock()
	for _, r := range rs {
		if _, ok := s.sensors[r.Sensor]; !ok {
			if len(s.sensors) >= s.maxSensors {
				continue
			}
			s.sensors[r.Sensor] = &sensorState{info: SensorInfo{ID: r.Sensor, FirstSeen: now}, dirty: true}
			created = append(created, r.Sensor)
		}
		kept = append(kept, r)
	}
	s.mu.Unlock()
	if n := len(rs) - len(kept); n > 0 {
		s.dropped(n)
	}
	return kept, created
}

// forget removes sensors created for a batch that failed (the order lock
// is held: no other batch of theirs is between admission and counting).
func (s *SensorIngestion) forget(ids []string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		if st := s.sensors[id]; st != nil && st.info.Count == 0 {
			delete(s.sensors, id)
		}
	}
	s.mu.Unlock()
}

// fnv32a is FNV-1a of s, without hash.Hash's allocation.
func fnv32a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// orderStripes is the number of order locks (see SensorIngestion.order).
const orderStripes = 256

// lockOrder takes the order locks of rs's sensors, in stripe order (no
// deadlock between batches), and returns their release.
func (s *SensorIngestion) lockOrder(rs []Reading) func() {
	var set [orderStripes / 64]uint64
	for i := range rs {
		k := fnv32a(rs[i].Sensor) % orderStripes
		set[k/64] |= 1 << (k % 64)
	}
	for k := range orderStripes {
		if set[k/64]&(1<<(k%64)) != 0 {
			s.order[k].Lock()
		}
	}
	return func() {
		for k := range orderStripes {
			if set[k/64]&(1<<(k%64)) != 0 {
				s.order[k].Unlock()
			}
		}
	}
}

// Aggregate returns the running aggregates of a sensor.
func (s *SensorIngestion) Aggregate(id string) (SensorInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sensors[id]
	if !ok || st.info.Count == 0 {
		return SensorInfo{}, false // unknown, or admitted and not stored yet
	}
	return st.info, true
}

// Latest returns up to n of the sensor's newest retained readings, newest
// first (in arrival order, from the store's ring).
func (s *SensorIngestion) Latest(ctx context.Context, id string, n int) ([]Reading, error) {
	info, ok := s.Aggregate(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSensor, id)
	}
	rs, err := s.store.Readings(ctx, id, time.Time{}, time.Time{})
	if err != nil {
		return nil, err
	}
	if n > 0 && len(rs) > n {
		rs = rs[len(rs)-n:]
	}
	slices.Reverse(rs)
	for i := range rs {
		rs[i].Unit = info.Unit
	}
	return rs, nil
}

// Sensors returns the registry entries whose id matches pattern (a glob:
// '*' any run of characters including '/', '?' one character; "" or "*"
// all), sorted by id.
func (s *SensorIngestion) Sensors(pattern string) []SensorInfo {
	s.mu.Lock()
	out := make([]SensorInfo, 0, len(s.sensors))
	for id, st := range s.sensors {
		// A sensor admitted by a batch still being stored has no reading
		// yet: listing it would show zeros (Home Assistant would record a
		// 0 °C state).
		if st.info.Count > 0 && (pattern == "" || globMatch(pattern, id)) {
			out = append(out, st.info)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b SensorInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Len returns the number of registered sensors.
func (s *SensorIngestion) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sensors)
}

// globMatch matches s against a glob with '*' (any run, '/' included) and
// '?' (one byte). Iterative with single backtracking: linear-ish, no
// exponential blow-up on hostile patterns.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// checkpoint persists the state of dirty sensors (all when force) in one
// store call.
func (s *SensorIngestion) checkpoint(ctx context.Context, force bool) error {
	var items []SensorState
	s.mu.Lock()
	for id, st := range s.sensors {
		if st.dirty || force {
			items = append(items, SensorState{id, encodeState(st, s.widths)})
			st.dirty = false
		}
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	if err := s.store.PutSensorStates(ctx, items); err != nil {
		s.markDirty(items)
		return fmt.Errorf("ingest: checkpoint %d sensors: %w", len(items), err)
	}
	return nil
}

// setMarks records new persisted watermarks for a sensor and returns its
// encoded state to write, or nil if nothing advanced.
func (s *SensorIngestion) setMarks(sensor string, marks []int64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.sensors[sensor]
	if st == nil {
		return nil
	}
	if len(st.marks) < len(marks) {
		st.marks = append(st.marks, make([]int64, len(marks)-len(st.marks))...)
	}
	advanced := false
	for i, m := range marks {
		if m > st.marks[i] {
			st.marks[i], advanced = m, true
		}
	}
	if !advanced {
		return nil
	}
	st.dirty = false
	return encodeState(st, s.widths)
}

// markDirty schedules sensors for the next checkpoint (their write failed).
func (s *SensorIngestion) markDirty(items []SensorState) {
	s.mu.Lock()
	for _, it := range items {
		if st := s.sensors[it.Sensor]; st != nil {
			st.dirty = true
		}
	}
	s.mu.Unlock()
}
