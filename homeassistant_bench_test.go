package ferrite

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// BenchmarkHomeAssistantPoll measures one publish interval in which every
// one of 1000 sensors has new readings: the registry copy, the current
// bucket of each, 1000 state messages encoded and handed to the broker.
func BenchmarkHomeAssistantPoll(b *testing.B) {
	const sensors = 1000
	n := startTestNode(b, "node_id: bench\nhomeassistant: {enabled: false}\n")
	ctx := context.Background()
	rs := make([]ingest.Reading, sensors)
	for i := range rs {
		rs[i] = ingest.Reading{Sensor: fmt.Sprintf("room-%d/temperature", i), Value: 21, Unit: "°C"}
	}
	if err := n.pipeline.Ingestion().IngestBatch(ctx, rs); err != nil {
		b.Fatal(err)
	}
	publish := func(topic string, payload []byte) error {
		return n.broker.Publish(&broker.Message{Topic: topic, Payload: payload, Retain: true})
	}
	p, err := newHAPublisher(n.cfg.HomeAssistant, "bench", "bench", nodeHASource{n}, publish, 0, quietLogger(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	p.limit = rate.NewLimiter(rate.Inf, 0)
	if err := p.poll(ctx); err != nil { // configs
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, s := range p.sensors {
			s.count = math.MaxUint64 // every sensor changed
		}
		if err := p.poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*sensors), "ns/sensor")
}

// BenchmarkBucketMessage is the hub's per-bucket work besides the store
// read: key parsing, the message, JSON.
func BenchmarkBucketMessage(b *testing.B) {
	start := time.Date(2024, 2, 19, 10, 0, 0, 0, time.UTC)
	key := ingest.BucketKey("edge-001", "living_room/temperature", time.Minute, start)
	p := crdt.Partial{Count: 60, Sum: 1344, Min: 21.9, Max: 22.8, FirstTS: start.UnixMilli(), LastTS: start.UnixMilli() + 59_000}
	now := start.Add(time.Minute)
	b.ReportAllocs()
	for range b.N {
		m, ok := newBucketMessage(key, p, now)
		if !ok {
			b.Fatal("not a bucket")
		}
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzSlugifyClassify(f *testing.F) {
	for _, s := range []string{"plug/AM2301/Temperature", "a b", "___", "Küche", strings.Repeat("x/", 50), "\xff\xfe"} {
		f.Add(s, "°C")
	}
	f.Fuzz(func(t *testing.T, id, unit string) {
		s := slugify(id)
		if s == "" || len(s) > maxSlug+9 || !utf8.ValidString(s) {
			t.Fatalf("slugify(%q) = %q", id, s)
		}
		for _, r := range s {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
				t.Fatalf("slugify(%q) = %q", id, s)
			}
		}
		c := classify(id, unit)
		if c.DeviceClass != "" && c.DeviceClass != "power_factor" && c.Unit == "" {
			t.Fatalf("classify(%q, %q) = %+v: a class without a unit", id, unit, c)
		}
	})
}

// BenchmarkHubDataFlush is the hub's cloud output for 1000 changed buckets:
// the store read of each merged value, the JSON and the embedded broker's
// publish (retained), as after an edge's batch.
func BenchmarkHubDataFlush(b *testing.B) {
	const buckets = 1000
	n := startTestNode(b, "node_id: bench-hub\nhomeassistant: {enabled: false}\n")
	ctx := context.Background()
	start := time.Date(2024, 2, 19, 10, 0, 0, 0, time.UTC)
	keys := make([]string, buckets)
	for i := range keys {
		keys[i] = ingest.BucketKey("edge-1", fmt.Sprintf("s-%d", i%50), time.Minute, start.Add(time.Duration(i/50)*time.Minute))
		p := crdt.Partial{Count: 60, Sum: 1344, Min: 21.9, Max: 22.8, FirstTS: start.UnixMilli(), LastTS: start.UnixMilli() + 59_000}
		if err := n.Store().AggregateMerge(ctx, keys[i], p); err != nil {
			b.Fatal(err)
		}
	}
	h, err := newHubData("ferrite/data", n.Store().Aggregate, brokerData{n.Broker()}, quietLogger(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.OnApplied(keys)
		if err := h.flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*buckets), "ns/bucket")
}
