package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

// Regression tests for bugs an ingest audit found, mostly buckets written
// twice or lost across a restart. restartNode is a pipeline on a real
// store whose options and backend a test can change.

type restartNode struct {
	t     *testing.T
	dir   string
	st    *store.Store
	p     *Pipeline
	clock *manualClock
	smod  func(*store.Options)
	wrap  func(Store) Store
	omod  func(*Options) // applied at every open
}

func newRestartNode(t *testing.T, smod func(*store.Options), wrap func(Store) Store) *restartNode {
	n := &restartNode{t: t, dir: t.TempDir(), clock: &manualClock{now: t0.Add(time.Second)}, smod: smod, wrap: wrap}
	n.open()
	t.Cleanup(func() {
		if !n.p.closed.Load() {
			_ = n.p.Close(context.Background())
		}
		_ = n.st.Close()
	})
	return n
}

func (n *restartNode) open() {
	var mods []func(*store.Options)
	if n.smod != nil {
		mods = append(mods, n.smod)
	}
	n.st = openStore(n.t, n.dir, mods...)
	var be Store = NewStoreBackend(n.st)
	if n.wrap != nil {
		be = n.wrap(be)
	}
	o := Options{Store: be, Clock: n.clock, TickInterval: -1, Logger: quietLog, Location: time.UTC}
	if n.omod != nil {
		n.omod(&o)
	}
	p, err := New(context.Background(), o)
	if err != nil {
		n.t.Fatal(err)
	}
	n.p = p
}

// restart closes the pipeline and the store cleanly and opens them again.
func (n *restartNode) restart() {
	if err := n.p.Close(context.Background()); err != nil {
		n.t.Logf("close: %v", err)
	}
	if err := n.st.Close(); err != nil {
		n.t.Fatal(err)
	}
	n.open()
}

// crash stops the pipeline as kill -9 would (no final checkpoint, no
// bucket flush), closes the store and opens both again.
func (n *restartNode) crash() {
	n.p.closed.Store(true)
	n.p.stop()
	n.p.wg.Wait()
	if err := n.st.Close(); err != nil {
		n.t.Fatal(err)
	}
	n.open()
}

func (n *restartNode) pub(at time.Time, topic, payload string) {
	n.t.Helper()
	n.clock.Set(at)
	if err := n.p.HandleMessages(context.Background(), []*Message{{Topic: topic, Payload: []byte(payload), QoS: 1, Received: at}}); err != nil {
		n.t.Fatal(err)
	}
}

func (n *restartNode) tick(at time.Time) error {
	n.clock.Set(at)
	return n.p.Tick(context.Background())
}

// stored returns the stored 1-minute bucket of sensor at start.
func (n *restartNode) stored(sensor string, start time.Time) Bucket {
	n.t.Helper()
	b, err := n.p.opts.Store.ReadBucket(context.Background(), Bucket{Sensor: sensor, Width: time.Minute, Start: start})
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

// A unit longer than MaxUnitLen made the sensor's saved state unreadable
// at the next start (and, past 1 KiB, its whole shard of sensors): the
// watermark was lost and written buckets were replayed and counted twice.
// Such a message is refused now, as is a value whose sums could overflow
// to infinity (which blocked every bucket write of every sensor).
func TestOutOfRangeReadingsRefused(t *testing.T) {
	n := newRestartNode(t, nil, nil)
	n.pub(t0.Add(1*time.Second), "sensors/a", fmt.Sprintf(`{"value":1,"unit":%q}`, strings.Repeat("u", MaxUnitLen+1)))
	n.pub(t0.Add(2*time.Second), "sensors/a", fmt.Sprintf(`{"value":2,"unit":%q}`, strings.Repeat("u", MaxUnitLen)))
	n.pub(t0.Add(3*time.Second), "sensors/x", "1e308")
	n.pub(t0.Add(4*time.Second), "sensors/x", "1e308")
	n.pub(t0.Add(5*time.Second), "sensors/y", "5")
	if _, ok := n.p.Ingestion().Aggregate("x"); ok {
		t.Fatal("x has readings: both should be refused")
	}
	if got := metricValue(t, n.p.m.malformed.WithLabelValues("sensors", "bad_unit")); got != 1 {
		t.Fatalf("bad_unit refusals = %v", got)
	}
	if got := metricValue(t, n.p.m.malformed.WithLabelValues("sensors", "not_number")); got != 2 {
		t.Fatalf("not_number refusals = %v", got)
	}
	if err := n.tick(t0.Add(80 * time.Second)); err != nil {
		t.Fatal(err)
	}
	before := []Bucket{n.stored("a", t0), n.stored("y", t0)}
	if before[0].Count != 1 || before[1].Count != 1 {
		t.Fatalf("buckets before restart: %+v", before)
	}
	n.restart()
	if err := n.p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"a", "y"} {
		if b := n.stored(s, t0); b.Count != before[i].Count {
			t.Fatalf("%s: count %d after a clean restart, want %d", s, b.Count, before[i].Count)
		}
	}
	// A gateway without a clock reads 1970 until NTP sets it: accepted.
	if err := n.p.Ingestion().Ingest(context.Background(), Reading{Sensor: "g", Value: 1, Time: time.Unix(60, 0)}); err != nil {
		t.Fatalf("a 1970 reading: %v", err)
	}
	// The Go API refuses the same.
	for _, r := range []Reading{{Sensor: "g", Value: 2e100}, {Sensor: "g", Value: 1, Unit: strings.Repeat("u", MaxUnitLen+1)},
		{Sensor: "g", Value: 1, Time: time.Unix(-5, 0)}, {Sensor: "g", Value: 1, Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}} {
		if err := n.p.Ingestion().Ingest(context.Background(), r); err == nil {
			t.Fatalf("Ingest(%+v) accepted", r)
		}
	}
}

// failOnce fails the first MergeBucket that match accepts.
type failOnce struct {
	Store
	match func(Bucket) bool
	done  atomic.Bool
}

func (f *failOnce) MergeBucket(ctx context.Context, b Bucket) error {
	if f.match(b) && f.done.CompareAndSwap(false, true) {
		return errors.New("transient")
	}
	return f.Store.MergeBucket(ctx, b)
}

// When one sensor's bucket write failed, no watermark of that round was
// persisted, not even of sensors whose buckets were written: a sensor that
// then sent nothing more had its bucket replayed and written again after
// a restart.
func TestBucketFailureKeepsOtherWatermarks(t *testing.T) {
	n := newRestartNode(t, nil, func(s Store) Store {
		return &failOnce{Store: s, match: func(b Bucket) bool { return b.Sensor == "s" }}
	})
	n.pub(t0.Add(time.Second), "sensors/s", "1")
	n.pub(t0.Add(2*time.Second), "sensors/t", "5")
	if err := n.tick(t0.Add(80 * time.Second)); err == nil {
		t.Fatal("the first round should report the failed write")
	}
	if err := n.tick(t0.Add(81 * time.Second)); err != nil { // the retry of s
		t.Fatal(err)
	}
	n.restart()
	if err := n.p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s", "t"} {
		if b := n.stored(s, t0); b.Count != 1 {
			t.Fatalf("%s: count %d after a clean restart, want 1", s, b.Count)
		}
	}
}

// A clean stop left open buckets to be rebuilt from the raw ring at the
// next start: a bucket with more readings than the ring keeps lost the
// evicted ones, and after a stop longer than LateHorizon the replay
// skipped the readings and the bucket was never written. Close writes
// open buckets now; later readings for their interval merge into them.
func TestCleanStopWritesOpenBuckets(t *testing.T) {
	t.Run("beyond the ring", func(t *testing.T) {
		n := newRestartNode(t, func(o *store.Options) { o.MaxReadingsPerSensor = 10 }, nil)
		for i := range 30 {
			n.pub(t0.Add(time.Duration(i+1)*time.Second), "sensors/a", "1")
		}
		n.restart()
		n.pub(t0.Add(45*time.Second), "sensors/a", "1") // same minute, after the restart
		if err := n.p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if b := n.stored("a", t0); b.Count != 31 || b.Sum != 31 {
			t.Fatalf("bucket after a clean restart: count %d sum %v, want 31", b.Count, b.Sum)
		}
	})
	t.Run("long stop", func(t *testing.T) {
		n := newRestartNode(t, nil, nil)
		for i := range 3 {
			n.pub(t0.Add(time.Duration(i+1)*time.Second), "sensors/a", "1")
		}
		if err := n.p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := n.st.Close(); err != nil {
			t.Fatal(err)
		}
		n.clock.Set(t0.Add(25 * time.Hour))
		n.open()
		if err := n.p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if b := n.stored("a", t0); b.Count != 3 {
			t.Fatalf("bucket after a 25 h stop: count %d, want 3", b.Count)
		}
	})
}

// SENSOR.BUCKETS read the n newest intervals before `to`, stored or not:
// a sensor's only bucket vanished from the list 30 minutes later, and a
// range longer than 1024 intervals missed its older buckets.
func TestBucketsCommandListsStoredBuckets(t *testing.T) {
	n := newRestartNode(t, nil, nil)
	n.pub(t0.Add(time.Second), "sensors/a", "1")
	n.pub(t0.Add(2*time.Hour+time.Second), "sensors/a", "2")
	if err := n.tick(t0.Add(2*time.Hour + 80*time.Second)); err != nil {
		t.Fatal(err)
	}
	var buckets Command
	for _, c := range Commands(n.p) {
		if c.Name == "SENSOR.BUCKETS" {
			buckets = c
		}
	}
	run := func(args ...string) []BucketReply {
		t.Helper()
		v, err := buckets.Run(context.Background(), args)
		if err != nil {
			t.Fatal(err)
		}
		return v.([]BucketReply)
	}
	n.clock.Set(t0.Add(20 * time.Hour))
	if bs := run("a"); len(bs) != 2 || !bs[0].Start.Equal(t0.Add(2*time.Hour)) || !bs[1].Start.Equal(t0) {
		t.Fatalf("SENSOR.BUCKETS a = %+v", bs)
	}
	if bs := run("a", "1"); len(bs) != 1 || !bs[0].Start.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("SENSOR.BUCKETS a 1 = %+v", bs)
	}
	from := fmt.Sprint(t0.Add(-time.Minute).Unix())
	if bs := run("a", from); len(bs) != 2 {
		t.Fatalf("SENSOR.BUCKETS a %s = %+v", from, bs)
	}
	to := fmt.Sprint(t0.Add(time.Hour).Unix())
	if bs := run("a", from, to); len(bs) != 1 || !bs[0].Start.Equal(t0) {
		t.Fatalf("SENSOR.BUCKETS a %s %s = %+v", from, to, bs)
	}
}

// blockAfterAppend stores a batch whose first reading is 1, then blocks
// until released: the batch is stored, not yet counted.
type blockAfterAppend struct {
	Store
	hold, release chan struct{}
}

func (b *blockAfterAppend) AppendReadings(ctx context.Context, rs []Reading) error {
	err := b.Store.AppendReadings(ctx, rs)
	if len(rs) > 0 && rs[0].Value == 1 {
		close(b.hold)
		<-b.release
	}
	return err
}

// Recovery after kill -9 takes a checkpoint's count as the first readings
// of the ring. Batch A stored before batch B but counted after it, with a
// checkpoint in between, made the recovery count B twice and A never.
func TestCrashRecoveryWithConcurrentBatches(t *testing.T) {
	blk := &blockAfterAppend{hold: make(chan struct{}), release: make(chan struct{})}
	n := newRestartNode(t, nil, func(s Store) Store { blk.Store = s; return blk })
	done := make(chan error, 1)
	go func() {
		done <- n.p.HandleMessages(context.Background(), []*Message{{Topic: "sensors/a", Payload: []byte("1"), QoS: 1, Received: t0.Add(time.Second)}})
	}()
	<-blk.hold // A stored, not counted
	doneB := make(chan error, 1)
	go func() { // B waits for A: one sensor's batches are counted in order
		doneB <- n.p.HandleMessages(context.Background(), []*Message{{Topic: "sensors/a", Payload: []byte("100"), QoS: 1, Received: t0.Add(2 * time.Second)}})
	}()
	if err := n.tick(t0.Add(30 * time.Second)); err != nil { // checkpoints
		t.Fatal(err)
	}
	close(blk.release)
	for _, ch := range []chan error{done, doneB} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	n.wrap = nil
	n.crash()
	info, ok := n.p.Ingestion().Aggregate("a")
	if !ok || info.Count != 2 || info.Sum != 101 || info.Min != 1 || info.Max != 100 {
		t.Fatalf("after the crash: %+v, want count 2 sum 101 min 1 max 100", info)
	}
}

// A width removed from the config lost its watermark at the next
// checkpoint; configured again later, it replayed the raw ring into
// buckets it had already written.
func TestRemovedWidthKeepsItsWatermark(t *testing.T) {
	n := newRestartNode(t, nil, nil)
	widths := func(ws ...time.Duration) { n.omod = func(o *Options) { o.Aggregator.Widths = ws } }
	n.pub(t0.Add(time.Second), "sensors/a", "1")
	if err := n.tick(t0.Add(80 * time.Second)); err != nil {
		t.Fatal(err)
	}
	widths(time.Hour)
	n.restart()
	widths(time.Minute, time.Hour)
	n.restart()
	if err := n.p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := n.stored("a", t0); b.Count != 1 {
		t.Fatalf("1m bucket after the width came back: count %d, want 1", b.Count)
	}
}

// A reading older than late_horizon was stored raw only, and offload later
// dropped it: it was in no bucket anywhere. Readings of any age are
// aggregated now.
func TestOldReadingAggregated(t *testing.T) {
	n := newRestartNode(t, nil, nil)
	old := t0.Add(-48 * time.Hour)
	n.pub(t0.Add(time.Second), "sensors/a", fmt.Sprintf(`{"value":99,"ts":%d}`, old.UnixMilli()))
	if err := n.p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := n.stored("a", old.Truncate(time.Minute)); b.Count != 1 || b.Sum != 99 {
		t.Fatalf("bucket of the 48 h old reading: %+v", b)
	}
}

// After a clean stop wrote an open 1 h bucket, every later reading of that
// hour became a late partial written at the next tick: one replicated
// write per reading for up to an hour (found by review). The remainder of
// the hour is one late partial, written when the hour closes.
func TestLatePartialOfRunningIntervalWrittenOnce(t *testing.T) {
	n := newRestartNode(t, nil, nil)
	n.omod = func(o *Options) { o.Aggregator.Widths = []time.Duration{time.Hour} }
	n.restart()
	n.pub(t0.Add(time.Second), "sensors/a", "1")
	n.restart()
	for i := range 600 {
		at := t0.Add(time.Duration(2+i) * time.Second)
		n.pub(at, "sensors/a", "1")
		if err := n.tick(at); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, n.p.m.bucketWrites); got != 0 {
		t.Fatalf("%v bucket writes during the hour, want 0", got)
	}
	if err := n.tick(t0.Add(time.Hour + time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, n.p.m.bucketWrites); got != 1 {
		t.Fatalf("%v bucket writes after the hour, want 1", got)
	}
	b, err := n.p.opts.Store.ReadBucket(context.Background(), Bucket{Sensor: "a", Width: time.Hour, Start: t0})
	if err != nil || b.Count != 601 {
		t.Fatalf("hour bucket %+v, %v; want 601 readings", b, err)
	}
}

// Sustained concurrent ingestion of one sensor with checkpoints in
// between, then a crash: the recovered count is exact (an earlier fix
// kept checkpoints stale under such load and lost half the count; found
// by review).
func TestCrashRecoveryUnderConcurrentLoad(t *testing.T) {
	n := newRestartNode(t, nil, nil)
	ctx := context.Background()
	ing := n.p.Ingestion()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = ing.Ingest(ctx, Reading{Sensor: "s", Value: float64(g), Time: t0.Add(time.Duration(i) * time.Millisecond)})
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for k := range 20 {
		for { // checkpoint every 100 readings or so
			info, _ := ing.Aggregate("s")
			if info.Count >= uint64(k+1)*100 || time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
		if err := ing.checkpoint(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	before, _ := ing.Aggregate("s")
	n.crash()
	after, _ := n.p.Ingestion().Aggregate("s")
	if after.Count != before.Count || after.Sum != before.Sum {
		t.Fatalf("count %d sum %v before the crash, %d %v after", before.Count, before.Sum, after.Count, after.Sum)
	}
}

// A failed write of one width held back the sensor's watermarks of every
// width, so the widths that were written were replayed and counted twice
// after a restart (found by review).
func TestBucketFailureHoldsBackItsWidthOnly(t *testing.T) {
	f := &failOnce{match: func(b Bucket) bool { return b.Width == time.Hour }} // once over every open
	n := newRestartNode(t, nil, func(s Store) Store { f.Store = s; return f })
	n.omod = func(o *Options) { o.Aggregator.Widths = []time.Duration{time.Minute, time.Hour} }
	n.restart()
	n.pub(t0.Add(time.Second), "sensors/a", "1")
	_ = n.p.Close(context.Background()) // the hour's write fails
	if err := n.st.Close(); err != nil {
		t.Fatal(err)
	}
	n.open()
	if err := n.p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range []time.Duration{time.Minute, time.Hour} {
		b, err := n.p.opts.Store.ReadBucket(context.Background(), Bucket{Sensor: "a", Width: w, Start: t0})
		if err != nil || b.Count != 1 {
			t.Fatalf("%v bucket after the restart: %+v, %v; want 1 reading", w, b, err)
		}
	}
}
