package ingest

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Forgetting a sensor (SENSOR.FORGET): a retired or renamed device, or a
// typo in a topic, otherwise stays in the registry (and in Home
// Assistant) forever. See doc.go for what is removed and what is kept.

// ForgetReply is the reply of SENSOR.FORGET: what was removed.
type ForgetReply struct {
	Sensor string `json:"sensor"`
	// Readings is what the running aggregates had counted (SENSOR.STATS).
	Readings uint64 `json:"readings"`
	// RawDropped is the raw readings deleted with the sensor's ring.
	RawDropped int `json:"raw_readings_dropped"`
	// BucketsFlushed is the open buckets closed and written first, so
	// that every counted reading is in the replicated aggregates.
	BucketsFlushed int `json:"buckets_flushed"`
	// BucketsKept is the sensor's stored buckets, which stay: replicated
	// history, synced or to be synced. BucketKeys is their key form; KEYS
	// lists them, DEL deletes them (fleet-wide, like any key).
	BucketsKept int    `json:"buckets_kept"`
	BucketKeys  string `json:"bucket_keys,omitempty"`
	// Warning is what an OnForget callback could not do (the sensor is
	// forgotten all the same): the operator learns that its Home
	// Assistant entity is not removed yet rather than being told it is.
	Warning string `json:"warning,omitempty"`
}

// OnForget registers fn, called after each successful Forget, outside the
// pipeline's locks, before Forget returns: the root package clears the
// sensor's Home Assistant entity there, so that SENSOR.FORGET replies
// once the entity's removal is durable (a crash right after the reply
// cannot leave it announced). An error from fn does not undo the forget
// (the store's deletion is done); it is returned in ForgetReply.Warning.
func (p *Pipeline) OnForget(fn func(ctx context.Context, sensor string) error) {
	p.forgetMu.Lock()
	defer p.forgetMu.Unlock()
	p.onForget = append(p.onForget, fn)
}

// Forget removes a sensor (SENSOR.FORGET, Go API): its registry entry and
// running aggregates, its checkpoint and its raw readings ring, the last
// two in one durable store batch. Its open buckets are closed and written
// first, as a clean stop writes them: they hold readings the aggregates
// counted, and a bucket written later could not be told from a new
// sensor's. If the store does not take them (it refuses writes), Forget
// fails with ErrBucketsNotWritten and removes nothing: the ring is what
// rebuilds them after a crash. Stored buckets are kept
// (ForgetReply.BucketsKept). If the sensor sends again it is registered
// anew, counted from zero.
//
// A reading racing with Forget is either counted and removed with the
// sensor, or stored after it as the first reading of a new sensor:
// Forget drains the QoS 0 queue, then holds the sensor's order lock (no
// batch of it is between admission and counting) and the tick lock (no
// checkpoint or watermark write of it is in flight).
func (p *Pipeline) Forget(ctx context.Context, id string) (ForgetReply, error) {
	if p.closed.Load() {
		return ForgetReply{}, ErrClosed
	}
	// QoS 0 readings received before the command are stored (and counted)
	// first, so that they are removed with the sensor rather than
	// registering it again right after. Before the order lock: the queue's
	// writer takes it.
	if err := p.Drain(ctx); err != nil {
		return ForgetReply{}, err
	}
	reply, err := p.forget(ctx, id)
	if err != nil {
		return ForgetReply{}, err
	}
	p.forgetMu.Lock()
	fns := slices.Clone(p.onForget)
	p.forgetMu.Unlock()
	var warnings []error
	for _, fn := range fns {
		if err := fn(ctx, id); err != nil {
			warnings = append(warnings, err)
		}
	}
	if err := errors.Join(warnings...); err != nil {
		reply.Warning = strings.ReplaceAll(err.Error(), "\n", "; ")
		p.log.Warn("sensor forgotten, not everywhere yet", "sensor", id, "err", err)
	}
	return reply, nil
}

// forget is Forget under the sensor's order lock and the tick lock.
func (p *Pipeline) forget(ctx context.Context, id string) (ForgetReply, error) {
	unlock := p.ingestion.lockSensor(id)
	defer unlock()
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	if p.closed.Load() {
		return ForgetReply{}, ErrClosed
	}
	info, ok := p.ingestion.entry(id)
	if !ok {
		return ForgetReply{}, fmt.Errorf("%w: %q", ErrUnknownSensor, id)
	}
	reply := ForgetReply{Sensor: id, Readings: info.Count}
	if p.agg != nil {
		reply.BucketsFlushed = p.agg.flushSensor(id)
		werr := p.writePending(ctx)
		if n := p.agg.pendingOf(id); n > 0 {
			// The refused buckets carry counted readings, and the raw ring
			// is their only durable source: deleting it now would lose
			// them at a crash or a stop before the store takes them. The
			// sensor stays as it was (its buckets pending, as after
			// SENSOR.FLUSH); the operator retries.
			// (n > 0 only after a failed write: werr is set.)
			return ForgetReply{}, fmt.Errorf("%w (%w): %d buckets of %q could not be written; "+
				"SENSOR.FORGET would lose them: retry when the store accepts writes", ErrBucketsNotWritten, werr, n, id)
		}
		kept, err := p.storedBuckets(ctx, id)
		if err != nil {
			return ForgetReply{}, err
		}
		reply.BucketsKept = kept
		reply.BucketKeys = "agg/" + id + "/<width>/<start>"
		if node := p.opts.Aggregator.Node; node != "" {
			reply.BucketKeys = "agg/" + node + "/" + id + "/<width>/<start>"
		}
	}
	n, err := p.opts.Store.ForgetSensor(ctx, id)
	if err != nil {
		return ForgetReply{}, fmt.Errorf("ingest: forget sensor %q: %w", id, err)
	}
	reply.RawDropped = n
	p.ingestion.remove(id)
	if p.agg != nil {
		p.agg.dropSensor(id)
	}
	p.log.Info("sensor forgotten", "sensor", id, "readings", reply.Readings, "raw_dropped", n,
		"buckets_flushed", reply.BucketsFlushed)
	return reply, nil
}

// storedBuckets counts the sensor's buckets in the store, every width.
func (p *Pipeline) storedBuckets(ctx context.Context, id string) (int, error) {
	n := 0
	for _, w := range p.agg.Config().Widths {
		starts, err := p.opts.Store.BucketStarts(ctx, p.opts.Aggregator.Node, id, w)
		if err != nil {
			return 0, fmt.Errorf("ingest: forget sensor %q: %w", id, err)
		}
		n += len(starts)
	}
	return n, nil
}

// lockSensor takes one sensor's order lock (see SensorIngestion.order).
func (s *SensorIngestion) lockSensor(id string) func() {
	m := &s.order[fnv32a(id)%orderStripes]
	m.Lock()
	return m.Unlock
}

// entry returns a sensor's registry entry, even one without readings yet
// (with the order lock held, such an entry is no batch in flight: a stray
// left by a recovery whose ring was gone, which Forget may remove too).
func (s *SensorIngestion) entry(id string) (SensorInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sensors[id]
	if !ok {
		return SensorInfo{}, false
	}
	return st.info, true
}

// remove deletes a sensor's registry entry (its order lock is held).
func (s *SensorIngestion) remove(id string) {
	s.mu.Lock()
	delete(s.sensors, id)
	s.mu.Unlock()
}

// flushSensor closes every open bucket of one sensor now, late partials
// included (as Flush does for all), and returns how many it closed.
func (a *EdgeAggregator) flushSensor(sensor string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	var bs []*openBucket
	for _, b := range a.open {
		if b.Sensor == sensor {
			bs = append(bs, b)
		}
	}
	slices.SortFunc(bs, func(x, y *openBucket) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return cmp.Compare(x.width, y.width)
	})
	for _, b := range bs {
		heap.Remove(&a.byClose, b.index)
		a.closeLocked(b)
	}
	return len(bs)
}

// pendingOf counts a sensor's closed buckets not yet written.
func (a *EdgeAggregator) pendingOf(sensor string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for i := range a.pending {
		if a.pending[i].Sensor == sensor {
			n++
		}
	}
	return n
}

// dropSensor forgets a sensor's watermarks and recently closed buckets
// (it has no pending bucket: Forget refuses while it has). A sensor that
// comes back starts without watermarks: a reading for an interval
// already written opens a normal bucket, which the store adds into the
// same key, so it is still counted once.
func (a *EdgeAggregator) dropSensor(sensor string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for wi := range a.widths {
		delete(a.closedUntil, seriesID{sensor, wi})
	}
	a.recent = slices.DeleteFunc(a.recent, func(b Bucket) bool { return b.Sensor == sensor })
}
