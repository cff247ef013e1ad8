package ingest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

// BenchmarkHandleMessages measures the QoS 0 hot path end to end on the
// real store: batches of 256 plain-number messages from 100 sensors (the
// size of a broker queue batch) parsed on the caller's goroutine, queued,
// and written by the pipeline's writer (registered, aggregated into 1m
// buckets, stored in one batch per writer round). readings/s counts
// readings stored.
func BenchmarkHandleMessages(b *testing.B) {
	for _, d := range []store.Durability{store.DurabilityAlways, store.DurabilityNone} {
		b.Run("durability="+d.String(), func(b *testing.B) {
			st := openStore(b, b.TempDir(), func(o *store.Options) { o.Durability = d; o.MemoryLimit = 64 << 20 })
			defer st.Close()
			clock := &manualClock{now: t0}
			p, err := New(context.Background(), Options{Store: NewStoreBackend(st), Clock: clock, TickInterval: -1, Logger: quietLog})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			msgs := make([]*Message, 256)
			for i := range msgs {
				msgs[i] = &Message{Topic: fmt.Sprintf("sensors/bench-%d", i%100), Payload: []byte(fmt.Sprintf("%d.5", i)), Received: t0}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				for _, m := range msgs {
					m.Received = now
				}
				if err := p.HandleMessages(ctx, msgs); err != nil {
					b.Fatal(err)
				}
				if i%16 == 15 { // backpressure: the benchmark must not overflow the queue
					if err := p.Drain(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if i%1000 == 0 {
					clock.Set(now)
					if err := p.Tick(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := p.Drain(ctx); err != nil {
				b.Fatal(err)
			}
			if d := metricValue(b, p.m.dropped.WithLabelValues("queue_full")); d > 0 {
				b.Fatalf("%v readings dropped", d)
			}
			b.ReportMetric(metricValue(b, p.m.readings)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkHandleMessagesQoS1 measures durable single-message ingestion
// (the QoS 1/2 path: stored and fsynced before returning) with 100
// concurrent publishers sharing the store's group commit.
func BenchmarkHandleMessagesQoS1(b *testing.B) {
	st := openStore(b, b.TempDir(), func(o *store.Options) { o.MemoryLimit = 64 << 20 })
	defer st.Close()
	p, err := New(context.Background(), Options{Store: NewStoreBackend(st), TickInterval: -1, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(50) // 2 cores × 50 = 100 publishers
	b.RunParallel(func(pb *testing.PB) {
		id := next.Add(1)
		m := &Message{Topic: fmt.Sprintf("sensors/qos1-%d", id), Payload: []byte("21.5"), QoS: 1}
		one := []*Message{m}
		for pb.Next() {
			if err := p.HandleMessages(ctx, one); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkFlushBuckets measures closing and writing 1000 sensors' buckets
// (replicated aggregate merges, watermarks, aggregated marks) under the
// default durability (fsync, shared by concurrent writes).
func BenchmarkFlushBuckets(b *testing.B) {
	st := openStore(b, b.TempDir(), func(o *store.Options) { o.MemoryLimit = 64 << 20 })
	defer st.Close()
	clock := &manualClock{now: t0}
	p, err := New(context.Background(), Options{Store: NewStoreBackend(st), Clock: clock, TickInterval: -1, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	const sensors = 1000
	msgs := make([]*Message, sensors)
	for i := range msgs {
		msgs[i] = &Message{Topic: fmt.Sprintf("sensors/s-%d", i), Payload: []byte("1"), QoS: 1}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		clock.Set(now)
		for _, m := range msgs {
			m.Received = now
		}
		if err := p.HandleMessages(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*sensors)/b.Elapsed().Seconds(), "buckets/s")
}
