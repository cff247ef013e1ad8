package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

func TestPipelineStatsLatestList(t *testing.T) {
	var dead []string
	var deadMu sync.Mutex
	n := newTestNode(t, t.TempDir(), func(o *Options) {
		o.DeadLetter = func(m *Message, rule, reason string) {
			deadMu.Lock()
			dead = append(dead, m.Topic+" "+rule+" "+reason)
			deadMu.Unlock()
		}
	})
	for i, v := range []string{"22.5", "20", "25.5"} {
		n.clock.Set(t0.Add(time.Duration(i+1) * time.Second))
		n.publish("sensors/temp-001", v)
	}
	n.publish("sensors/temp-001", "warm")       // malformed: counted, not stored
	n.publish("not/a/sensor/topic/at/all", "1") // no rule
	n.publish("zigbee2mqtt/th", `{"temperature":19.5,"humidity":40}`)

	st := n.stats("temp-001")
	if st.Count != 3 || st.Min != 20 || st.Max != 25.5 || st.Sum != 68 || math.Abs(st.Avg-68.0/3) > 1e-9 ||
		st.Last != 25.5 || !st.LastTS.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("stats = %+v", st)
	}
	v, err := n.cmd("SENSOR.LATEST", "temp-001", "2")
	if err != nil {
		t.Fatal(err)
	}
	latest := v.([]Reading)
	if len(latest) != 2 || latest[0].Value != 25.5 || latest[1].Value != 20 || !latest[0].Time.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("latest = %+v", latest)
	}
	v, _ = n.cmd("SENSOR.LIST", "th/*")
	list := v.([]ListEntry)
	if len(list) != 2 || list[0].ID != "th/humidity" || list[1].ID != "th/temperature" || list[1].Unit != "°C" {
		t.Fatalf("list = %+v", list)
	}
	if v, _ := n.cmd("SENSOR.LIST"); len(v.([]ListEntry)) != 3 {
		t.Fatalf("list all = %+v", v)
	}
	if _, err := n.cmd("SENSOR.STATS", "nope"); !errors.Is(err, ErrUnknownSensor) {
		t.Fatalf("unknown sensor: %v", err)
	}
	if _, err := n.cmd("SENSOR.LATEST", "temp-001", "0"); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("bad count: %v", err)
	}
	if got := metricValue(t, n.p.m.malformed.WithLabelValues("sensors", "not_number")); got != 1 {
		t.Fatalf("malformed counter = %v", got)
	}
	if got := metricValue(t, n.p.m.ignored); got != 1 {
		t.Fatalf("ignored counter = %v", got)
	}
	if got := metricValue(t, n.p.m.readings); got != 5 {
		t.Fatalf("readings counter = %v", got)
	}
	if len(dead) != 1 || dead[0] != "sensors/temp-001 sensors not_number" {
		t.Fatalf("dead letters = %v", dead)
	}
	if _, err := n.reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineRefusedWhenStoreRefuses(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	n.st.SetRefuseWrites("critical memory")
	err := n.p.HandleMessages(context.Background(), []*Message{{Topic: "sensors/a", Payload: []byte("1"), QoS: 1}})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, store.ErrWritesRefused) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := n.p.Ingestion().Aggregate("a"); ok {
		t.Fatal("a refused reading registered its sensor")
	}
	n.st.SetRefuseWrites("")
	n.publish("sensors/a", "1")
	if st := n.stats("a"); st.Count != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestPipelineSensorLimit(t *testing.T) {
	n := newTestNode(t, t.TempDir(), func(o *Options) { o.MaxSensors = 2 })
	for _, id := range []string{"a", "b", "c", "a"} {
		n.publish("sensors/"+id, "1")
	}
	if got := n.p.Ingestion().Len(); got != 2 {
		t.Fatalf("sensors = %d", got)
	}
	if got := metricValue(t, n.p.m.dropped.WithLabelValues("sensor_limit")); got != 1 {
		t.Fatalf("dropped = %v", got)
	}
	if st := n.stats("a"); st.Count != 2 {
		t.Fatalf("stats a = %+v", st)
	}
}

func TestPipelineTimestampFallbacks(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	now := n.clock.Now()
	n.publish("sensors/a", `{"value":1,"ts":42}`)                                                 // no clock
	n.publish("sensors/a", fmt.Sprintf(`{"value":2,"ts":%d}`, now.Add(time.Hour).UnixMilli()))    // future
	n.publish("sensors/a", fmt.Sprintf(`{"value":3,"ts":%d}`, now.Add(-time.Minute).UnixMilli())) // fine
	v, _ := n.cmd("SENSOR.LATEST", "a")
	rs := v.([]Reading)
	if len(rs) != 3 || !rs[0].Time.Equal(now.Add(-time.Minute)) || !rs[1].Time.Equal(now) || !rs[2].Time.Equal(now) {
		t.Fatalf("readings = %+v", rs)
	}
	if a, b := metricValue(t, n.p.m.tsFallback.WithLabelValues("no_clock")), metricValue(t, n.p.m.tsFallback.WithLabelValues("future")); a != 1 || b != 1 {
		t.Fatalf("fallbacks no_clock=%v future=%v", a, b)
	}
}

func TestPipelineRestartKeepsRegistry(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	n.publish("sensors/a", `{"value":1,"unit":"V"}`)
	n.publish("sensors/a", "3")
	n.restart(false, nil)
	st := n.stats("a")
	if st.Count != 2 || st.Sum != 4 || st.Min != 1 || st.Max != 3 || st.Unit != "V" || !st.FirstSeen.Equal(n.clock.Now()) {
		t.Fatalf("after restart: %+v", st)
	}
	n.publish("sensors/a", "5")
	if st := n.stats("a"); st.Count != 3 || st.Max != 5 {
		t.Fatalf("after restart and publish: %+v", st)
	}
}

func TestPipelineCrashReplaysReadingsAfterCheckpoint(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	for i := range 5 {
		n.publish("sensors/a", fmt.Sprint(i))
	}
	n.clock.Set(n.clock.Now().Add(DefaultCheckpointInterval))
	if err := n.p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 8; i++ {
		n.publish("sensors/a", fmt.Sprint(i))
	}
	n.publish("sensors/b", "100") // never checkpointed at all
	n.restart(true, nil)
	if st := n.stats("a"); st.Count != 8 || st.Sum != 28 || st.Min != 0 || st.Max != 7 || st.Last != 7 {
		t.Fatalf("a after crash: %+v", st)
	}
	if st := n.stats("b"); st.Count != 1 || st.Sum != 100 {
		t.Fatalf("b after crash: %+v", st)
	}
}

func TestPipelineConcurrentQoS1(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := &Message{Topic: fmt.Sprintf("sensors/s%d", w%3), Payload: []byte(fmt.Sprint(i)), QoS: 1}
				if err := n.p.HandleMessages(context.Background(), []*Message{m}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total uint64
	for _, info := range n.p.Ingestion().Sensors("") {
		total += info.Count
	}
	if total != workers*each {
		t.Fatalf("total = %d", total)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{},
		{Store: &StoreBackend{}, Rules: []Rule{{Topic: "a/#/b", SensorID: "x"}}},
		{Store: &StoreBackend{}, Aggregator: AggregatorConfig{Widths: []time.Duration{time.Millisecond}}},
	} {
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestPipelineQoS0Queue(t *testing.T) {
	n := newTestNode(t, t.TempDir(), func(o *Options) { o.QueueSize = 3 })
	ctx := context.Background()
	msgs := make([]*Message, 5)
	for i := range msgs {
		msgs[i] = &Message{Topic: "sensors/q", Payload: []byte(fmt.Sprint(i))}
	}
	// QoS 0: queued for the writer. Stall the writer (it needs the registry
	// lock to record a batch): the first 5 readings fit (3, then 2 more once
	// the writer took the first 3); of the next 5 only 1 fits, and the rest
	// is dropped after the bounded wait for room.
	n.p.ingestion.mu.Lock()
	if err := n.p.HandleMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := n.p.HandleMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	n.p.ingestion.mu.Unlock()
	if err := n.p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if st := n.stats("q"); st.Count != 6 {
		t.Fatalf("stats = %+v", st)
	}
	if got := metricValue(t, n.p.m.dropped.WithLabelValues("queue_full")); got != 4 {
		t.Fatalf("queue_full drops = %v", got)
	}
	// A store refusal drops the queued readings (nobody waits for a QoS 0 ack).
	n.st.SetRefuseWrites("critical")
	if err := n.p.HandleMessages(ctx, msgs[:2]); err != nil {
		t.Fatal(err)
	}
	if err := n.p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, n.p.m.dropped.WithLabelValues("store_refused")); got != 2 {
		t.Fatalf("store_refused drops = %v", got)
	}
	n.st.SetRefuseWrites("")
	// Close writes what is still queued.
	if err := n.p.HandleMessages(ctx, msgs[:1]); err != nil {
		t.Fatal(err)
	}
	n.restart(false, nil)
	if st := n.stats("q"); st.Count != 7 {
		t.Fatalf("after close: %+v", st)
	}
}

func TestPipelineCorruptCheckpointShard(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	for _, v := range []string{"1", "2"} {
		n.publish("sensors/a", v)
	}
	n.restart(false, nil) // checkpoint written
	if err := n.st.SetSyncState(context.Background(), shardName(stateShard("a")), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	n.restart(true, nil)
	// The checkpoint is lost; the aggregates are rebuilt from the raw ring.
	if st := n.stats("a"); st.Count != 2 || st.Sum != 3 {
		t.Fatalf("stats = %+v", st)
	}
	n.publish("sensors/b", "5") // shares nothing with a's shard state handling
	n.restart(false, nil)
	if st := n.stats("a"); st.Count != 2 {
		t.Fatalf("after rewrite: %+v", st)
	}
}
