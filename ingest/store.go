package ingest

import (
	"context"
	"time"
)

// Store is the persistence ingest needs, in ingest's own terms. The root
// package wires it to the Pebble store with NewStoreBackend; keeping the
// interface here (the package that uses it) keeps ingest testable on its
// own and isolates it from the store's API details.
//
// Contract:
//   - AppendReadings appends raw readings to their sensors' rings in one
//     batch. It returns only once the batch is durable under the store's
//     policy (QoS 1/2 acknowledgements depend on it). An error means none
//     of the batch is stored.
//   - Readings returns the retained readings of a sensor in arrival order
//     (oldest first) with from <= Time < to; a zero to means no bound.
//   - SensorTotals calls fn for every sensor the store holds readings for,
//     with the number of readings ever appended (monotonic, committed in
//     the same batch as the readings).
//   - PutSensorStates / SensorStates persist ingest's opaque per-sensor
//     checkpoints (running aggregates, registry data, bucket watermarks);
//     one call carries every changed sensor, so the store can write them
//     in a few batches rather than one commit per sensor.
//   - MergeBucket adds a closed bucket into this node's partial of the
//     replicated aggregate value at b.Key(), durably. Merging the same
//     interval twice (a late partial) adds both.
//   - ReadBucket returns the replicated value at b.Key() summed over every
//     origin (Count 0 when absent), filling Count..Last of the bucket.
//   - BucketStarts returns the start of every stored bucket of a sensor
//     and width (the keys under BucketKey's prefix), in any order.
//   - MarkAggregated tells the store that the sensor's raw readings before
//     the given time are summarised in aggregates already written, so
//     eviction may drop them once those are acknowledged upstream.
//   - ForgetSensor deletes the sensor's raw ring and its checkpoint in one
//     durable batch (a crash must not keep one without the other: recovery
//     would bring the sensor back half) and returns the readings the ring
//     held. Later readings of the sensor start a new ring; readings of the
//     old one never come back. Its buckets (replicated keys) stay.
type Store interface {
	AppendReadings(ctx context.Context, rs []Reading) error
	Readings(ctx context.Context, sensor string, from, to time.Time) ([]Reading, error)
	SensorTotals(ctx context.Context, fn func(sensor string, total uint64) bool) error
	PutSensorStates(ctx context.Context, states []SensorState) error
	SensorStates(ctx context.Context, fn func(sensor string, state []byte) bool) error
	MergeBucket(ctx context.Context, b Bucket) error
	ReadBucket(ctx context.Context, b Bucket) (Bucket, error)
	BucketStarts(ctx context.Context, node, sensor string, width time.Duration) ([]time.Time, error)
	MarkAggregated(ctx context.Context, sensor string, before time.Time) error
	ForgetSensor(ctx context.Context, sensor string) (int, error)
}

// SensorState is one sensor's encoded checkpoint.
type SensorState struct {
	Sensor string
	State  []byte
}
