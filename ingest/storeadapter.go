package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// ErrNoAggregates is returned by MergeBucket when the store offers no
// aggregate write; closed buckets then stay pending (bounded, counted).
var ErrNoAggregates = errors.New("ingest: store cannot merge aggregates")

// stateNamePrefix names ingest's checkpoint records in the store's small
// opaque-record space (SyncState/SetSyncState; see NewStoreBackend).
const stateNamePrefix = "ingest:"

// aggregateMerger is the store call that adds a partial into this node's
// partial of a replicated aggregate key (see docs/DESIGN.md, store). The
// store may call it AggregateMerge or AggregateAdd; either way it must
// *add* (combine) p into this node's partial, not replace it: a late
// partial of an interval is merged into the same key.
type aggregateMerger interface {
	AggregateMerge(ctx context.Context, key string, p crdt.Partial) error
}

type aggregateAdder interface {
	AggregateAdd(ctx context.Context, key string, p crdt.Partial) error
}

type addAsMerge struct{ a aggregateAdder }

func (m addAsMerge) AggregateMerge(ctx context.Context, key string, p crdt.Partial) error {
	return m.a.AggregateAdd(ctx, key, p)
}

// StoreBackend adapts *store.Store to Store.
type StoreBackend struct {
	s    *store.Store
	agg  aggregateMerger // nil if the store has no aggregate write
	bufs sync.Pool       // *[]store.Reading
}

// NewStoreBackend wraps the Pebble store for the pipeline.
//
// Mapping: readings are stored with millisecond timestamps (the store's
// resolution); the running-aggregate checkpoints are records named
// "ingest:<sensor>" in the store's opaque record space (SetSyncState),
// enumerated through the store's sensor registry, which every sensor with
// readings is in.
func NewStoreBackend(s *store.Store) *StoreBackend {
	b := &StoreBackend{s: s}
	switch m := any(s).(type) {
	case aggregateMerger:
		b.agg = m
	case aggregateAdder:
		b.agg = addAsMerge{m}
	}
	b.bufs.New = func() any { buf := make([]store.Reading, 0, 256); return &buf }
	return b
}

// AppendReadings implements Store.
func (b *StoreBackend) AppendReadings(ctx context.Context, rs []Reading) error {
	bp := b.bufs.Get().(*[]store.Reading)
	buf := (*bp)[:0]
	for i := range rs {
		buf = append(buf, store.Reading{Sensor: rs[i].Sensor, TS: rs[i].Time.UnixMilli(), Value: rs[i].Value})
	}
	err := b.s.AppendReadings(ctx, buf)
	clear(buf)
	*bp = buf[:0]
	b.bufs.Put(bp)
	return err
}

// Readings implements Store.
func (b *StoreBackend) Readings(ctx context.Context, sensor string, from, to time.Time) ([]Reading, error) {
	var f, t int64
	if !from.IsZero() {
		f = from.UnixMilli()
	}
	if !to.IsZero() {
		t = to.UnixMilli()
	}
	rs, err := b.s.Readings(ctx, sensor, f, t)
	if err != nil {
		return nil, err
	}
	out := make([]Reading, len(rs))
	for i, r := range rs {
		out[i] = Reading{Sensor: r.Sensor, Value: r.Value, Time: time.UnixMilli(r.TS).UTC()}
	}
	return out, nil
}

// SensorTotals implements Store.
func (b *StoreBackend) SensorTotals(ctx context.Context, fn func(string, uint64) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, info := range b.s.Sensors() {
		if !fn(info.ID, uint64(max(info.Total, 0))) {
			return nil
		}
	}
	return nil
}

// PutSensorState implements Store.
func (b *StoreBackend) PutSensorState(ctx context.Context, sensor string, state []byte) error {
	return b.s.SetSyncState(ctx, stateNamePrefix+sensor, state)
}

// SensorStates implements Store.
func (b *StoreBackend) SensorStates(ctx context.Context, fn func(string, []byte) bool) error {
	for _, info := range b.s.Sensors() {
		v, err := b.s.SyncState(ctx, stateNamePrefix+info.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sensor %q: %w", info.ID, err)
		}
		if !fn(info.ID, v) {
			return nil
		}
	}
	return nil
}

// MergeBucket implements Store.
func (b *StoreBackend) MergeBucket(ctx context.Context, bk Bucket) error {
	if b.agg == nil {
		return ErrNoAggregates
	}
	return b.agg.AggregateMerge(ctx, bk.Key(), BucketPartial(bk))
}

// aggregateReader reads the value of an aggregate key over every origin.
type aggregateReader interface {
	Aggregate(ctx context.Context, key string) (crdt.Partial, error)
}

// ReadBucket implements Store.
func (b *StoreBackend) ReadBucket(ctx context.Context, bk Bucket) (Bucket, error) {
	r, ok := any(b.s).(aggregateReader)
	if !ok {
		return bk, ErrNoAggregates
	}
	p, err := r.Aggregate(ctx, bk.Key())
	if errors.Is(err, store.ErrNotFound) {
		bk.Count = 0
		return bk, nil
	}
	if err != nil {
		return bk, err
	}
	bk.Count, bk.Sum, bk.Min, bk.Max = p.Count, p.Sum, p.Min, p.Max
	bk.First, bk.Last = time.UnixMilli(p.FirstTS).UTC(), time.UnixMilli(p.LastTS).UTC()
	return bk, nil
}

// BucketPartial converts a bucket to the crdt partial stored under its key
// (times in unix milliseconds; Version is assigned by the store).
func BucketPartial(bk Bucket) crdt.Partial {
	return crdt.Partial{
		Count:   bk.Count,
		Sum:     bk.Sum,
		Min:     bk.Min,
		Max:     bk.Max,
		FirstTS: bk.First.UnixMilli(),
		LastTS:  bk.Last.UnixMilli(),
	}
}

// MarkAggregated implements Store.
func (b *StoreBackend) MarkAggregated(ctx context.Context, sensor string, before time.Time) error {
	return b.s.MarkAggregated(ctx, sensor, before.UnixMilli())
}
