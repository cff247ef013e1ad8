package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Recovery after a restart (or a crash):
//
//  1. Each sensor's checkpoint (running aggregates, bucket watermarks) is
//     loaded from the store.
//  2. The store's count of readings ever appended for the sensor is
//     committed in the same batch as the readings, so total - checkpoint
//     count is exactly the number of readings appended after the
//     checkpoint; those are the newest entries of the ring and are folded
//     into the running aggregates again. Exact as long as fewer readings
//     than the ring size arrived since the last checkpoint (the checkpoint
//     interval keeps this true in practice; otherwise the aggregates miss
//     the readings already evicted from the ring, and a warning is logged).
//  3. Open buckets (only after a crash: Close writes them) are rebuilt
//     from the ring: every retained reading whose
//     bucket starts at or after the width's persisted watermark is added
//     again; readings in buckets already written are skipped. Late
//     partials that were pending at the crash are lost from the aggregates
//     (their raw readings stay in the ring).

// load restores the registry and the open buckets.
func (s *SensorIngestion) load(ctx context.Context, log *slog.Logger) error {
	now := s.clock.Now()
	type restored struct {
		info  SensorInfo
		marks []persistedMark
		total uint64
	}
	all := map[string]*restored{}
	err := s.store.SensorStates(ctx, func(id string, b []byte) bool {
		info, marks, err := decodeState(id, b)
		if err != nil {
			log.Warn("discarding unreadable sensor checkpoint; aggregates restart from the ring", "sensor", id, "err", err)
			info = SensorInfo{ID: id}
		}
		all[id] = &restored{info: info, marks: marks}
		return true
	})
	if errors.Is(err, ErrCorruptState) {
		// Checkpoints are an optimisation over the raw ring: start anyway.
		log.Warn("discarding unreadable sensor checkpoints; their aggregates restart from the ring", "err", err)
	} else if err != nil {
		return fmt.Errorf("ingest: load sensor states: %w", err)
	}
	err = s.store.SensorTotals(ctx, func(id string, total uint64) bool {
		r := all[id]
		if r == nil {
			r = &restored{info: SensorInfo{ID: id}}
			all[id] = r
		}
		r.total = total
		return true
	})
	if err != nil {
		return fmt.Errorf("ingest: load sensor totals: %w", err)
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := all[id]
		st, err := s.restoreSensor(ctx, log, id, r.info, r.marks, r.total, now)
		if err != nil {
			return err
		}
		s.sensors[id] = st
	}
	if len(ids) > 0 {
		log.Info("sensor registry restored", "sensors", len(ids))
	}
	return nil
}

// restoreSensor rebuilds one sensor's state from its checkpoint and the
// raw ring: readings appended after the checkpoint are folded into the
// running aggregates, and the open buckets are replayed.
func (s *SensorIngestion) restoreSensor(ctx context.Context, log *slog.Logger, id string, info SensorInfo,
	marks []persistedMark, total uint64, now time.Time) (*sensorState, error) {
	st := &sensorState{info: info, marks: make([]int64, len(s.widths))}
	for _, m := range marks {
		if wi := slices.Index(s.widths, int64(m.width)); wi >= 0 {
			st.marks[wi] = m.until
			if s.agg != nil {
				s.agg.Restore(id, m.width, time.Unix(0, m.until))
			}
		} else {
			st.retired = append(st.retired, m)
		}
	}
	missing := uint64(0)
	if total > st.info.Count {
		missing = total - st.info.Count
	}
	if missing == 0 && s.agg == nil {
		return st, nil
	}
	rs, err := s.store.Readings(ctx, id, time.Time{}, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("ingest: replay sensor %q: %w", id, err)
	}
	if missing > uint64(len(rs)) {
		log.Warn("readings evicted from the ring before they were checkpointed; running aggregates miss them",
			"sensor", id, "missing", missing-uint64(len(rs)))
	}
	for _, rd := range rs[len(rs)-int(min(missing, uint64(len(rs)))):] {
		st.info.add(rd.Value, rd.Time, rd.Time, "")
	}
	st.dirty = missing > 0
	if s.agg != nil {
		s.agg.replayBatch(id, rs, now)
	}
	return st, nil
}

// replayBatch adds a sensor's retained raw readings after a restart. A
// reading whose bucket is before the width's watermark is skipped: it is
// already part of a written bucket (a live Add would merge it as a late
// partial, which here would count it twice).
func (a *EdgeAggregator) replayBatch(sensor string, rs []Reading, now time.Time) {
	n := now.UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	lateness := a.cfg.lateness()
	for _, r := range rs {
		ts := r.Time.UnixNano()
		if ts < n-int64(a.cfg.LateHorizon) {
			a.stats.TooOld++
			continue
		}
		for wi, width := range a.widths {
			start := alignDown(ts, width)
			if start < a.closedUntil[seriesID{sensor, wi}] {
				continue
			}
			id := bucketID{sensor: sensor, width: wi, start: start}
			b := a.open[id]
			if b == nil {
				b = a.openLocked(id, start+width+lateness)
			}
			b.add(ts, r.Value)
		}
	}
}

// drainPendingMarks is DrainPending plus, atomically with it, the closed
// watermark of every series with a non-late bucket in the batch, per width
// index. Once the batch is written the marks may be persisted: every
// bucket before them has been written (or dropped by the pending cap).
func (a *EdgeAggregator) drainPendingMarks() ([]Bucket, map[string][]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.pending
	a.pending = nil
	var marks map[string][]int64
	for i := range out {
		if out[i].Late {
			continue
		}
		if marks == nil {
			marks = make(map[string][]int64)
		}
		s := out[i].Sensor
		if _, ok := marks[s]; ok {
			continue
		}
		ms := make([]int64, len(a.widths))
		for wi := range a.widths {
			ms[wi] = a.closedUntil[seriesID{s, wi}]
		}
		marks[s] = ms
	}
	return out, marks
}
