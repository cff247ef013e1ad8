package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

func (n *testNode) publishAt(at time.Time, topic, payload string) {
	n.t.Helper()
	n.clock.Set(at)
	n.publish(topic, payload)
}

func (n *testNode) tickAt(at time.Time) error {
	n.clock.Set(at)
	return n.p.Tick(context.Background())
}

func (n *testNode) buckets(id string) []BucketReply {
	n.t.Helper()
	v, err := n.cmd("SENSOR.BUCKETS", id)
	if err != nil {
		n.t.Fatal(err)
	}
	return v.([]BucketReply)
}

func TestPipelineBucketsWrittenAndRebuilt(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "graceful", true: "crash"}[crash], func(t *testing.T) {
			n := newTestNode(t, t.TempDir(), nil)
			for i, v := range []string{"1", "2", "3"} {
				n.publishAt(t0.Add(time.Duration(i+1)*time.Second), "sensors/a", v)
			}
			if err := n.tickAt(t0.Add(69 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := metricValue(t, n.p.m.bucketWrites); got != 0 {
				t.Fatalf("bucket written before end+lateness: %v", got)
			}
			if err := n.tickAt(t0.Add(70 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := metricValue(t, n.p.m.bucketWrites); got != 1 {
				t.Fatalf("bucket writes = %v", got)
			}
			n.publishAt(t0.Add(75*time.Second), "sensors/a", "10")
			n.restart(crash, nil)
			// A clean stop wrote the open 12:01 bucket; after a crash it is
			// rebuilt, still open, from the raw ring.
			bs := n.buckets("a")
			if len(bs) != 2 || bs[0].Open != crash || bs[0].Count != 1 || bs[0].Sum != 10 || !bs[0].Start.Equal(t0.Add(time.Minute)) ||
				bs[1].Open || bs[1].Count != 3 || bs[1].Sum != 6 || !bs[1].Start.Equal(t0) {
				t.Fatalf("buckets after restart (12:01 open only after a crash, stored 12:00) = %+v", bs)
			}
			if st := n.p.Aggregator().Stats(); st.LateMerged != 0 || st.Open != map[bool]int{false: 0, true: 1}[crash] {
				t.Fatalf("replay re-added a written bucket: %+v", st)
			}
			// A late reading for the written 12:00 bucket becomes a late partial.
			n.publishAt(t0.Add(130*time.Second), "sensors/a", fmt.Sprintf(`{"value":4,"ts":%d}`, t0.Add(30*time.Second).UnixMilli()))
			if err := n.tickAt(t0.Add(131 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if st := n.p.Aggregator().Stats(); st.LateMerged != 1 {
				t.Fatalf("stats = %+v", st)
			}
			// The replicated value: the on-time bucket plus the late partial,
			// each reading exactly once, across the restart.
			agg, err := n.st.Aggregate(context.Background(), BucketKey("", "a", time.Minute, t0))
			if err != nil {
				t.Fatal(err)
			}
			if agg.Count != 4 || agg.Sum != 10 || agg.Min != 1 || agg.Max != 4 ||
				agg.FirstTS != t0.Add(time.Second).UnixMilli() || agg.LastTS != t0.Add(30*time.Second).UnixMilli() {
				t.Fatalf("agg/a/1m/%d = %+v", t0.Unix(), agg)
			}
			if bs := n.buckets("a"); len(bs) != 2 || bs[1].Count != 4 || bs[0].Count != 1 || bs[0].Open {
				t.Fatalf("SENSOR.BUCKETS after the late partial = %+v", bs)
			}
			// The 12:01 bucket (written at the stop, or rebuilt from the ring
			// after the crash) was written once.
			agg, err = n.st.Aggregate(context.Background(), BucketKey("", "a", time.Minute, t0.Add(time.Minute)))
			if err != nil || agg.Count != 1 || agg.Sum != 10 {
				t.Fatalf("agg/a/1m/%d = %+v, %v", t0.Add(time.Minute).Unix(), agg, err)
			}
		})
	}
}

func TestPipelineBucketsPendingWhileStoreRefuses(t *testing.T) {
	n := newTestNode(t, t.TempDir(), func(o *Options) { o.Aggregator.MaxPendingBuckets = 2 })
	for i := range 4 {
		n.publishAt(t0.Add(time.Duration(i)*time.Minute+time.Second), "sensors/a", "1")
	}
	n.st.SetRefuseWrites("critical")
	err := n.tickAt(t0.Add(time.Hour))
	if err == nil {
		t.Fatal("Tick wrote buckets while the store refuses writes")
	}
	if !errors.Is(err, store.ErrWritesRefused) {
		t.Fatalf("err = %v, want the store's refusal", err)
	}
	st := n.p.Aggregator().Stats()
	if st.Pending != 2 || st.Dropped != 2 {
		t.Fatalf("stats = %+v (want 2 pending, 2 dropped by the cap)", st)
	}
	if got := metricValue(t, n.p.m.bucketErrors); got != 1 {
		t.Fatalf("bucket write errors = %v", got)
	}
	n.st.SetRefuseWrites("")
	if err := n.tickAt(t0.Add(time.Hour + time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := n.p.Aggregator().Stats(); st.Pending != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestPipelineFlushAndRollupCommands(t *testing.T) {
	n := newTestNode(t, t.TempDir(), func(o *Options) {
		o.Aggregator.Widths = []time.Duration{time.Minute, time.Hour}
		o.Aggregator.Node = "gw"
	})
	n.publishAt(t0.Add(time.Second), "sensors/a", "1")
	if bs := n.buckets("a"); len(bs) != 2 || !bs[0].Open || bs[0].Width != "1m" || bs[1].Width != "1h" {
		t.Fatalf("buckets = %+v", bs)
	}
	for _, bad := range []string{"-5", "yesterday"} {
		if _, err := n.cmd("SENSOR.BUCKETS", "a", bad); !errors.Is(err, ErrBadArgument) {
			t.Fatalf("SENSOR.BUCKETS a %s: %v", bad, err)
		}
	}
	v, err := n.cmd("SENSOR.BUCKETS", "a", strconv.FormatInt(t0.Unix(), 10), strconv.FormatInt(t0.Add(time.Minute).Unix(), 10))
	if err != nil {
		t.Fatal(err)
	}
	if bs := v.([]BucketReply); len(bs) != 2 {
		t.Fatalf("buckets in [12:00, 12:01) = %+v", bs)
	}
	_ = n.p.SetRollup(context.Background(), true)
	n.publishAt(t0.Add(2*time.Minute), "sensors/a", "2")
	if st := n.p.Aggregator().Stats(); st.Open != 1 {
		t.Fatalf("roll-up still feeds the minute width: %+v", st)
	}
	_, err = n.cmd("SENSOR.FLUSH")
	if err != nil {
		t.Fatal(err)
	}
	if st := n.p.Aggregator().Stats(); st.Open != 0 || st.Pending != 0 {
		t.Fatalf("after flush: %+v", st)
	}
	v, err = n.cmd("SENSOR.BUCKETS", "a", "0", strconv.FormatInt(t0.Add(time.Hour).Unix(), 10))
	if err != nil {
		t.Fatal(err)
	}
	if bs := v.([]BucketReply); len(bs) != 2 {
		t.Fatalf("closed buckets = %+v", bs)
	}
	v, err = n.cmd("SENSOR.BUCKETS", "a", t0.Add(time.Minute).Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	if bs := v.([]BucketReply); len(bs) != 0 {
		t.Fatalf("buckets from 12:01 = %+v", bs)
	}
	// "<node>/<sensor>" reads the stored buckets of a node whose sensor is
	// not in the local registry (a hub reading what its edges replicated;
	// found by the HA audit: it answered "unknown sensor").
	node := n.p.Aggregator().Config().Node
	v, err = n.cmd("SENSOR.BUCKETS", node+"/a", "0", strconv.FormatInt(t0.Add(time.Hour).Unix(), 10))
	if err != nil {
		t.Fatal(err)
	}
	if bs := v.([]BucketReply); len(bs) != 2 || bs[0].Open || bs[1].Open {
		t.Fatalf("%s/a: %+v", node, bs)
	}
	if v, err = n.cmd("SENSOR.BUCKETS", "other-node/a"); err != nil || len(v.([]BucketReply)) != 0 {
		t.Fatalf("other-node/a: %v %v", v, err)
	}
	if _, err := n.cmd("SENSOR.BUCKETS", "nosuch"); !errors.Is(err, ErrUnknownSensor) {
		t.Fatalf("nosuch: %v", err)
	}
}

func TestPipelineResourceActions(t *testing.T) {
	n := newTestNode(t, t.TempDir(), nil)
	ctx := context.Background()
	n.publishAt(t0.Add(time.Second), "sensors/a", `{"value":1,"unit":"V"}`)
	if err := n.p.RollUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st := n.p.Aggregator().Stats(); st.Open != 0 || st.Pending != 0 {
		t.Fatalf("after RollUp: %+v", st)
	}
	agg, err := n.st.Aggregate(ctx, BucketKey("", "a", time.Minute, t0))
	if err != nil || agg.Count != 1 {
		t.Fatalf("rolled-up bucket = %+v, %v", agg, err)
	}
	freed, err := n.p.ReleaseMemory(ctx, 1<<20)
	if err != nil || freed <= 0 {
		t.Fatalf("ReleaseMemory = %d, %v", freed, err)
	}
	// Everything still works with the caches gone; the later reading for the
	// rolled-up interval is merged as a late partial.
	n.publishAt(t0.Add(2*time.Second), "sensors/a", "3")
	if st := n.stats("a"); st.Count != 2 || st.Unit != "V" {
		t.Fatalf("stats = %+v", st)
	}
	// The late partial of a running interval closes when the interval
	// would have: one more write, not one per tick.
	if err := n.tickAt(t0.Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if agg, err := n.st.Aggregate(ctx, BucketKey("", "a", time.Minute, t0)); err != nil || agg.Count != 1 {
		t.Fatalf("bucket before the interval closed = %+v, %v", agg, err)
	}
	if err := n.tickAt(t0.Add(70 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if agg, err := n.st.Aggregate(ctx, BucketKey("", "a", time.Minute, t0)); err != nil || agg.Count != 2 || agg.Sum != 4 {
		t.Fatalf("bucket after the late partial = %+v, %v", agg, err)
	}
}
