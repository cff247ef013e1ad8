package ferrite

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"encoding/json"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestParseBucketKey(t *testing.T) {
	for _, tc := range []struct {
		key                 string
		node, sensor, width string
		start               int64
		ok                  bool
	}{
		{"agg/edge-1/temp-001/1m/1708300800", "edge-1", "temp-001", "1m", 1708300800, true},
		{"agg/edge-1/plug/ENERGY/Power/30s/1708300830", "edge-1", "plug/ENERGY/Power", "30s", 1708300830, true},
		{"agg/e//x/1h/0", "e", "/x", "1h", 0, true},
		{"agg/edge-1/1m/1708300800", "", "", "", 0, false}, // no sensor
		{"agg/edge-1/temp/1m/x", "", "", "", 0, false},
		{"agg//temp/1m/1", "", "", "", 0, false},
		{"sensor/temp/1m/1", "", "", "", 0, false},
		{"agg/", "", "", "", 0, false},
	} {
		node, sensor, width, start, ok := parseBucketKey(tc.key)
		if ok != tc.ok || (ok && (node != tc.node || sensor != tc.sensor || width != tc.width || start != tc.start)) {
			t.Errorf("parseBucketKey(%q) = %q %q %q %d %v", tc.key, node, sensor, width, start, ok)
		}
	}
}

func TestWidthSeconds(t *testing.T) {
	for w, want := range map[string]int64{"30s": 30, "1m": 60, "15m": 900, "1h": 3600, "24h": 86400, "": 0, "m": 0, "0s": 0, "-1m": 0, "1d": 0, "99999999h": 0} {
		got, ok := widthSeconds(w)
		if got != want || ok != (want > 0) {
			t.Errorf("widthSeconds(%q) = %d %v", w, got, ok)
		}
	}
}

// The message of a bucket written by ingest (same key layout) has every
// field, with stable types.
func TestBucketMessage(t *testing.T) {
	start := time.Date(2024, 2, 19, 0, 0, 0, 0, time.UTC)
	key := ingest.BucketKey("edge-1", "living_room/temperature", time.Minute, start)
	p := crdt.Partial{Count: 4, Sum: 90, Min: 22, Max: 23, FirstTS: start.UnixMilli() + 500, LastTS: start.UnixMilli() + 59_250}
	now := start.Add(62 * time.Second)
	m, ok := newBucketMessage(key, p, now)
	if !ok {
		t.Fatal("not a bucket")
	}
	want := BucketMessage{
		Schema: 1, Node: "edge-1", Sensor: "living_room/temperature", Width: "1m", WidthSeconds: 60,
		Start: "2024-02-19T00:00:00Z", StartTS: 1708300800, End: "2024-02-19T00:01:00Z", EndTS: 1708300860,
		Count: 4, Sum: 90, Min: 22, Max: 23, Avg: 22.5,
		First: "2024-02-19T00:00:00.500Z", FirstMS: 1708300800500, Last: "2024-02-19T00:00:59.250Z", LastMS: 1708300859250,
		Key: key, MergedAt: "2024-02-19T00:01:02.000Z", MergedAtMS: 1708300862000,
	}
	if m != want {
		t.Fatalf("got  %+v\nwant %+v", m, want)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if got := len(fields); got != reflect.TypeFor[BucketMessage]().NumField() {
		t.Errorf("%d fields in %s", got, b)
	}
	if _, ok := newBucketMessage(key, crdt.Partial{}, now); ok {
		t.Error("an empty bucket is published")
	}
	if got := dataTopic("ferrite/data", "edge-1", "a+b/#c"); got != "ferrite/data/edge-1/a_b/_c" {
		t.Errorf("dataTopic %q", got)
	}
}

func FuzzParseBucketKey(f *testing.F) {
	f.Add("agg/edge-1/temp-001/1m/1708300800")
	f.Add("agg/e/a/b/c/30s/-5")
	f.Add("agg//1h/1")
	f.Fuzz(func(t *testing.T, key string) {
		node, sensor, width, start, ok := parseBucketKey(key)
		if !ok {
			return
		}
		if node == "" || sensor == "" || strings.Contains(node, "/") || strings.Contains(width, "/") {
			t.Fatalf("%q → %q %q %q", key, node, sensor, width)
		}
		if _, ok := widthSeconds(width); ok {
			if m, ok := newBucketMessage(key, crdt.Partial{Count: 1, Sum: 1, Min: 1, Max: 1}, time.Unix(0, 0)); ok && m.StartTS != start {
				t.Fatalf("%q: start %d vs %d", key, m.StartTS, start)
			}
		}
	})
}

// The hub data publisher on a real store and broker: one message per
// bucket update, the merged value, and the retained message of a topic is
// its bucket with the latest end (not an old bucket updated later).
func TestHubDataRetainsTheLatestBucket(t *testing.T) {
	n := startTestNode(t, "node_id: hub-1\nhomeassistant: {enabled: false}\n")
	ctx := context.Background()
	st := n.Store()
	t0 := time.Date(2024, 2, 19, 10, 0, 0, 0, time.UTC)
	reading := func(at time.Time, v float64) crdt.Partial {
		return crdt.Partial{Count: 1, Sum: v, Min: v, Max: v, FirstTS: at.UnixMilli(), LastTS: at.UnixMilli()}
	}
	m1 := ingest.BucketKey("edge-9", "t", time.Minute, t0)
	m2 := ingest.BucketKey("edge-9", "t", time.Minute, t0.Add(time.Minute))
	h1 := ingest.BucketKey("edge-9", "t", time.Hour, t0)
	for _, w := range []struct {
		key string
		p   crdt.Partial
	}{{m1, reading(t0, 1)}, {m2, reading(t0.Add(time.Minute), 2)}, {h1, reading(t0, 1)}} {
		if err := st.AggregateMerge(ctx, w.key, w.p); err != nil {
			t.Fatal(err)
		}
	}
	h, err := newHubData("ferrite/data", st.Aggregate, brokerData{n.Broker()}, quietLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- h.run(rctx) }()
	defer func() { cancel(); <-done }()

	live := &mqttLog{}
	subscribe(t, v3Client(t, n.Broker().Addr(), "cloud"), live, "ferrite/data/#")
	const topic = "ferrite/data/edge-9/t"
	// Live messages only: the broker delivers the retained message of a
	// topic right after the SUBACK, so a message published meanwhile can
	// also arrive once more as retained.
	onLive := func(m pahov3.Message) bool { return m.Topic() == topic && !m.Retained() }
	h.OnApplied([]string{m2, "user:key", m1, h1, m1}) // duplicates are published once
	live.wait(t, 3, "three buckets", onLive)
	// A late partial of the first minute: its merged total is republished.
	if err := st.AggregateMerge(ctx, m1, reading(t0.Add(30*time.Second), 5)); err != nil {
		t.Fatal(err)
	}
	h.OnApplied([]string{m1})
	late := live.wait(t, 4, "the late partial's bucket", onLive)
	var bm BucketMessage
	if err := json.Unmarshal(late.Payload(), &bm); err != nil || bm.Key != m1 || bm.Count != 2 || bm.Sum != 6 || bm.Max != 5 {
		t.Fatalf("late partial %s (%v)", late.Payload(), err)
	}
	if n := live.count(onLive); n != 4 {
		t.Errorf("%d messages, want 4", n)
	}
	// A new subscriber gets the bucket ending last: the hour (11:00), not
	// the first minute updated last.
	dashboard := func(id string) BucketMessage {
		t.Helper()
		l := &mqttLog{}
		subscribe(t, v3Client(t, n.Broker().Addr(), id), l, "ferrite/data/#")
		m := l.wait(t, 1, "retained bucket", topicIs(topic))
		var bm BucketMessage
		if err := json.Unmarshal(m.Payload(), &bm); err != nil || !m.Retained() {
			t.Fatalf("retained %s (%v)", m.Payload(), err)
		}
		return bm
	}
	if bm := dashboard("dashboard-1"); bm.Key != h1 {
		t.Fatalf("retained %s, want %s", bm.Key, h1)
	}
	// The minute bucket ending at 11:01 takes its place.
	m61 := ingest.BucketKey("edge-9", "t", time.Minute, t0.Add(time.Hour))
	if err := st.AggregateMerge(ctx, m61, reading(t0.Add(time.Hour), 7)); err != nil {
		t.Fatal(err)
	}
	h.OnApplied([]string{m61})
	live.wait(t, 5, "the 11:00 minute", onLive)
	if bm := dashboard("dashboard-2"); bm.Key != m61 || bm.Avg != 7 {
		t.Fatalf("retained %+v, want %s", bm, m61)
	}
}

// With an external broker that is down, bucket updates stay pending and
// are published once it comes up (paho reconnects; the publisher retries).
func TestHubDataWaitsForTheExternalBroker(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Skip("mosquitto not on PATH")
	}
	n := startTestNode(t, "node_id: hub-2\nhomeassistant: {enabled: false}\nsync: {backoff_min: 50ms, backoff_max: 200ms}\n")
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	reg := prometheus.NewRegistry()
	h, err := newHubData("ferrite/data", n.Store().Aggregate, nil, quietLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := newPahoData(n, "mqtt://"+addr, h.connected)
	if err != nil {
		t.Fatal(err)
	}
	defer pd.close()
	h.out = pd
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- h.run(rctx) }()
	defer func() { cancel(); <-done }()

	key := ingest.BucketKey("edge-7", "t", time.Minute, time.Date(2024, 2, 19, 10, 0, 0, 0, time.UTC))
	if err := n.Store().AggregateMerge(ctx, key, crdt.Partial{Count: 1, Sum: 4, Min: 4, Max: 4, FirstTS: 1, LastTS: 1}); err != nil {
		t.Fatal(err)
	}
	h.OnApplied([]string{key})
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		return 0
	}
	// A failed attempt, and the key held (it is taken out only while an
	// attempt runs).
	deadline := time.Now().Add(10 * time.Second)
	for gauge("ferrite_hub_data_publish_failures_total") == 0 || gauge("ferrite_hub_data_pending") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("while the broker is down: failures %v, pending %v",
				gauge("ferrite_hub_data_publish_failures_total"), gauge("ferrite_hub_data_pending"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	_, port, _ := net.SplitHostPort(addr)
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mosq := exec.Command("mosquitto", "-c", conf)
	if err := mosq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mosq.Process.Kill(); _ = mosq.Wait() })
	// The retained message is there once published: a subscriber that
	// connects whenever sees it.
	deadline = time.Now().Add(20 * time.Second)
	for {
		c := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("cloud"))
		if tok := c.Connect(); tok.WaitTimeout(time.Second) && tok.Error() == nil {
			got := make(chan []byte, 1)
			c.Subscribe("ferrite/data/#", 1, func(_ pahov3.Client, m pahov3.Message) {
				select {
				case got <- m.Payload():
				default:
				}
			})
			select {
			case b := <-got:
				c.Disconnect(0)
				var bm BucketMessage
				if err := json.Unmarshal(b, &bm); err != nil || bm.Key != key || bm.Sum != 4 {
					t.Fatalf("message %s (%v)", b, err)
				}
				if p := gauge("ferrite_hub_data_pending"); p != 0 {
					t.Errorf("pending %v after publishing", p)
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
			c.Disconnect(0)
		}
		if time.Now().After(deadline) {
			t.Fatal("bucket not published after the broker came up")
		}
	}
}
