package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Checkpoint records: the sensors' states are spread over stateShards
// records named "ingest:state:<shard>" in the store's small opaque-record
// space (SyncState/SetSyncState), a sensor's shard being FNV-1a(id) mod
// stateShards. The shard count is part of the on-disk format.
const (
	stateShards     = 64
	stateNamePrefix = "ingest:state:"
)

func stateShard(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % stateShards)
}

func shardName(sh int) string { return stateNamePrefix + strconv.Itoa(sh) }

// StoreBackend adapts *store.Store to Store.
type StoreBackend struct {
	s    *store.Store
	bufs sync.Pool // *[]store.Reading

	stateMu sync.Mutex
	shards  [stateShards]map[string][]byte // last written state per sensor
	loaded  [stateShards]bool              // shards[i] mirrors the stored record
}

// NewStoreBackend wraps the Pebble store for the pipeline.
//
// Mapping: readings are stored with millisecond timestamps (the store's
// resolution); the running-aggregate checkpoints are sharded records in
// the store's opaque record space (see stateShards); closed buckets are
// merged with the store's AggregateMerge.
func NewStoreBackend(s *store.Store) *StoreBackend {
	b := &StoreBackend{s: s}
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

// PutSensorStates implements Store: the states are grouped into
// stateShards records and only the shards that changed are rewritten (one
// durable store commit each), so a checkpoint of thousands of sensors
// costs at most stateShards commits.
func (b *StoreBackend) PutSensorStates(ctx context.Context, states []SensorState) error {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	var dirty [stateShards]bool
	for _, st := range states {
		sh := stateShard(st.Sensor)
		if err := b.loadShard(ctx, sh); err != nil {
			return err
		}
		b.shards[sh][st.Sensor] = st.State
		dirty[sh] = true
	}
	for sh, d := range dirty {
		if !d {
			continue
		}
		if err := b.s.SetSyncState(ctx, shardName(sh), encodeStateShard(b.shards[sh])); err != nil {
			return err
		}
	}
	return nil
}

// loadShard reads a shard record once, so that rewriting it keeps the
// sensors it already holds. A corrupt record is dropped (logged by the
// caller through SensorStates; recovery then replays from the ring).
func (b *StoreBackend) loadShard(ctx context.Context, sh int) error {
	if b.loaded[sh] {
		return nil
	}
	v, err := b.s.SyncState(ctx, shardName(sh))
	switch {
	case errors.Is(err, store.ErrNotFound):
		b.shards[sh], err = make(map[string][]byte), nil
	case err != nil:
		return err
	default:
		m, derr := decodeStateShard(v)
		if derr != nil {
			m = make(map[string][]byte)
			err = fmt.Errorf("%s: %w", shardName(sh), derr)
		}
		b.shards[sh] = m
	}
	b.loaded[sh] = true
	return err
}

// SensorStates implements Store.
func (b *StoreBackend) SensorStates(ctx context.Context, fn func(string, []byte) bool) error {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	var corrupt []error
	for sh := range stateShards {
		b.loaded[sh] = false
		if err := b.loadShard(ctx, sh); errors.Is(err, ErrCorruptState) {
			corrupt = append(corrupt, err)
		} else if err != nil {
			return err
		}
		for id, st := range b.shards[sh] {
			if !fn(id, st) {
				return nil
			}
		}
	}
	// Corrupt shards lose only checkpoints: recovery replays the ring.
	return errors.Join(corrupt...)
}

// MergeBucket implements Store.
func (b *StoreBackend) MergeBucket(ctx context.Context, bk Bucket) error {
	return b.s.AggregateMerge(ctx, bk.Key(), BucketPartial(bk))
}

// ReadBucket implements Store.
func (b *StoreBackend) ReadBucket(ctx context.Context, bk Bucket) (Bucket, error) {
	p, err := b.s.Aggregate(ctx, bk.Key())
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

// BucketStarts implements Store.
func (b *StoreBackend) BucketStarts(ctx context.Context, node, sensor string, width time.Duration) ([]time.Time, error) {
	prefix := bucketKeyPrefix(node, sensor, width)
	keys, err := b.s.KeysWithPrefix(ctx, prefix, 0)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, len(keys))
	for _, k := range keys {
		// A sensor whose id extends this one ("a/1m/x" under "a") has
		// more levels after the prefix: not a number, skipped.
		if sec, err := strconv.ParseInt(k[len(prefix):], 10, 64); err == nil {
			out = append(out, time.Unix(sec, 0).UTC())
		}
	}
	return out, nil
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

// ForgetSensor implements Store: the sensor's shard record is rewritten
// without it in the store's batch that deletes its ring.
func (b *StoreBackend) ForgetSensor(ctx context.Context, sensor string) (int, error) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	sh := stateShard(sensor)
	if err := b.loadShard(ctx, sh); err != nil {
		return 0, err
	}
	var states map[string][]byte
	if _, ok := b.shards[sh][sensor]; ok {
		rest := make(map[string][]byte, len(b.shards[sh]))
		for id, st := range b.shards[sh] {
			if id != sensor {
				rest[id] = st
			}
		}
		states = map[string][]byte{shardName(sh): encodeStateShard(rest)}
	}
	n, err := b.s.ForgetSensor(ctx, sensor, states)
	if err != nil {
		return 0, err
	}
	delete(b.shards[sh], sensor)
	return n, nil
}
