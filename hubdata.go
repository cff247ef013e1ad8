package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Hub data for cloud subscribers (docs/CLOUD.md).
//
// The hub's syncer reports the keys each applied batch touched (OnApplied,
// on session goroutines, after the batch is durable). Sensor bucket keys
// (agg/<node>/<sensor>/<width>/<start>) go into a bounded set of pending
// keys; one goroutine reads each back from the store (merged over every
// origin, late partials included) and publishes it as JSON on
// <hub.data_topic>/<node>/<sensor>. A bucket updated many times in a burst
// (late partials, a full sync) is read and published once: each message
// carries the bucket's whole merged value, never an increment, so a
// subscriber upserts by (node, sensor, width, start).
//
// The messages go to the broker the edges use: the embedded one, or the
// external broker of hub.broker_url through a client of their own (the
// syncer's connection stays dedicated to the sync protocol). While that
// broker is unreachable the keys stay pending (up to hubDataMaxPending) and
// are published after the reconnection.
//
// Retained: the topic's retained message is the bucket with the latest end
// seen on it, so a subscriber that connects gets the newest bucket, not a
// late partial of an old one or a bucket replayed by an edge catching up
// (those are published without the retain flag).

// BucketSchema is the schema version in every BucketMessage; it changes
// only if a field changes meaning or type (fields may be added).
const BucketSchema = 1

// BucketMessage is the JSON published on <hub.data_topic>/<node>/<sensor>
// for every merged sensor bucket (docs/CLOUD.md). Every field is always
// present with a stable type; times are RFC 3339 (UTC) and unix numbers.
type BucketMessage struct {
	Schema       int     `json:"schema"`
	Node         string  `json:"node"`
	Sensor       string  `json:"sensor"`
	Width        string  `json:"width"`         // 30s, 1m, 1h
	WidthSeconds int64   `json:"width_seconds"` // 30, 60, 3600
	Start        string  `json:"start"`         // bucket start, RFC 3339
	StartTS      int64   `json:"start_ts"`      // bucket start, unix seconds
	End          string  `json:"end"`           // start + width (exclusive)
	EndTS        int64   `json:"end_ts"`
	Count        uint64  `json:"count"`
	Sum          float64 `json:"sum"`
	Min          float64 `json:"min"`
	Max          float64 `json:"max"`
	Avg          float64 `json:"avg"`
	First        string  `json:"first"`    // earliest reading, RFC 3339 with ms
	FirstMS      int64   `json:"first_ms"` // earliest reading, unix ms
	Last         string  `json:"last"`
	LastMS       int64   `json:"last_ms"`
	Key          string  `json:"key"`       // the store key (SENSOR.BUCKETS, GET-style tools)
	MergedAt     string  `json:"merged_at"` // when the hub published this value
	MergedAtMS   int64   `json:"merged_at_ms"`
}

// newBucketMessage builds the message of a bucket key and its merged value.
func newBucketMessage(key string, p crdt.Partial, now time.Time) (BucketMessage, bool) {
	node, sensor, width, start, ok := parseBucketKey(key)
	if !ok || p.Count == 0 {
		return BucketMessage{}, false
	}
	ws, ok := widthSeconds(width)
	if !ok {
		return BucketMessage{}, false
	}
	const ms = "2006-01-02T15:04:05.000Z07:00"
	return BucketMessage{
		Schema: BucketSchema, Node: node, Sensor: sensor,
		Width: width, WidthSeconds: ws,
		Start: time.Unix(start, 0).UTC().Format(time.RFC3339), StartTS: start,
		End: time.Unix(start+ws, 0).UTC().Format(time.RFC3339), EndTS: start + ws,
		Count: p.Count, Sum: p.Sum, Min: p.Min, Max: p.Max, Avg: p.Sum / float64(p.Count),
		First: time.UnixMilli(p.FirstTS).UTC().Format(ms), FirstMS: p.FirstTS,
		Last: time.UnixMilli(p.LastTS).UTC().Format(ms), LastMS: p.LastTS,
		Key:      key,
		MergedAt: now.UTC().Format(ms), MergedAtMS: now.UnixMilli(),
	}, true
}

// parseBucketKey splits agg/<node>/<sensor...>/<width>/<start-unix>; the
// sensor id may itself contain '/'.
func parseBucketKey(key string) (node, sensor, width string, start int64, ok bool) {
	rest, found := strings.CutPrefix(key, "agg/")
	if !found {
		return "", "", "", 0, false
	}
	node, rest, found = strings.Cut(rest, "/")
	if !found || node == "" {
		return "", "", "", 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", "", 0, false
	}
	start, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return "", "", "", 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 {
		return "", "", "", 0, false
	}
	return node, rest[:j], rest[j+1:], start, true
}

// widthSeconds reads a width as the bucket keys write it (30s, 1m, 1h).
func widthSeconds(w string) (int64, bool) {
	if len(w) < 2 {
		return 0, false
	}
	n, err := strconv.ParseInt(w[:len(w)-1], 10, 64)
	if err != nil || n <= 0 || n > 366*24 {
		return 0, false
	}
	switch w[len(w)-1] {
	case 's':
		return n, true
	case 'm':
		return n * 60, true
	case 'h':
		return n * 3600, true
	}
	return 0, false
}

// dataTopic is <prefix>/<node>/<sensor>; '+' and '#' (allowed in sensor
// ids, not in topic names) become '_'. The payload keeps the exact id.
func dataTopic(prefix, node, sensor string) string {
	return prefix + "/" + node + "/" + strings.Map(func(r rune) rune {
		if r == '+' || r == '#' {
			return '_'
		}
		return r
	}, sensor)
}

// dataMsg is one message for the cloud broker.
type dataMsg struct {
	topic   string
	payload []byte
	retain  bool
}

// dataPublisher sends messages to the broker cloud subscribers use. An
// error means not every message may have been delivered; the caller
// publishes them again later.
type dataPublisher interface {
	Publish(ctx context.Context, msgs []dataMsg) error
}

// brokerData publishes on the node's embedded broker.
type brokerData struct{ b *broker.Broker }

func (d brokerData) Publish(_ context.Context, msgs []dataMsg) error {
	for _, m := range msgs {
		if err := d.b.Publish(&broker.Message{Topic: m.topic, Payload: m.payload, QoS: 1, Retain: m.retain}); err != nil {
			return err
		}
	}
	return nil
}

// Bounds of the hub data publisher.
const (
	hubDataMaxPending = 100_000 // bucket keys waiting to be published
	hubDataBatch      = 256     // messages per Publish call
	hubDataMaxTopics  = 100_000 // topics whose retained end is remembered
)

// hubData republishes merged buckets; see the comment at the top.
type hubData struct {
	prefix string
	read   func(ctx context.Context, key string) (crdt.Partial, error)
	out    dataPublisher
	log    *slog.Logger
	now    func() time.Time
	m      hubDataMetrics

	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{} // cap 1: keys added
	linkUp  chan struct{} // cap 1: the broker link (re)connected
	failLog rate.Sometimes

	latest map[string]int64 // topic → end of its retained bucket (run goroutine)
}

type hubDataMetrics struct {
	published prometheus.Counter
	dropped   prometheus.Counter
	failures  prometheus.Counter
}

func newHubData(prefix string, read func(context.Context, string) (crdt.Partial, error), out dataPublisher,
	log *slog.Logger, reg prometheus.Registerer) (*hubData, error) {
	h := &hubData{
		prefix: prefix, read: read, out: out, log: log, now: time.Now,
		pending: make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		linkUp:  make(chan struct{}, 1),
		failLog: rate.Sometimes{First: 1, Interval: 30 * time.Second},
		latest:  make(map[string]int64),
	}
	h.m = hubDataMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_hub_data_published_total",
			Help: "Merged sensor bucket messages published for cloud subscribers.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_hub_data_dropped_total",
			Help: "Bucket updates not published because too many were pending (the buckets stay in the store).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_hub_data_publish_failures_total",
			Help: "Publish attempts that failed (broker unreachable); the buckets are published again later.",
		}),
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferrite_hub_data_pending",
		Help: "Bucket keys waiting to be published for cloud subscribers.",
	}, func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(len(h.pending))
	})
	err := errors.Join(reg.Register(h.m.published), reg.Register(h.m.dropped), reg.Register(h.m.failures), reg.Register(gauge))
	if err != nil {
		return nil, fmt.Errorf("ferrite: hub data metrics: %w", err)
	}
	return h, nil
}

// OnApplied is the hub syncer's hook: it only records the bucket keys
// (fast, safe for concurrent use); run publishes them.
func (h *hubData) OnApplied(keys []string) {
	added, dropped := false, 0
	h.mu.Lock()
	for _, k := range keys {
		if !strings.HasPrefix(k, "agg/") {
			continue
		}
		if _, ok := h.pending[k]; ok {
			continue
		}
		if len(h.pending) >= hubDataMaxPending {
			dropped++
			continue
		}
		h.pending[k] = struct{}{}
		added = true
	}
	h.mu.Unlock()
	if dropped > 0 {
		h.m.dropped.Add(float64(dropped))
	}
	if added {
		h.kick()
	}
}

// kick wakes run: new keys.
func (h *hubData) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// connected wakes run after a failure: the broker link is back.
func (h *hubData) connected() {
	select {
	case h.linkUp <- struct{}{}:
	default:
	}
	h.kick()
}

// take removes and returns every pending key, sorted (so that the buckets
// of a sensor are published oldest first).
func (h *hubData) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(h.pending))
	clear(h.pending)
	return keys
}

// putBack returns keys that were not published.
func (h *hubData) putBack(keys []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		if len(h.pending) >= hubDataMaxPending {
			h.m.dropped.Inc()
			continue
		}
		h.pending[k] = struct{}{}
	}
}

// run publishes pending keys until ctx ends, then makes a last attempt
// (bounded) with what is still pending.
func (h *hubData) run(ctx context.Context) error {
	const minWait, maxWait = 500 * time.Millisecond, 30 * time.Second
	wait := minWait
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = h.flush(fctx)
			return nil
		case <-h.wake:
		}
		if err := h.flush(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			h.m.failures.Inc()
			h.failLog.Do(func() { h.log.Warn("cloud data not published; retrying", "error", err, "retry_in", wait) })
			select {
			case <-time.After(wait):
			case <-h.linkUp:
			case <-ctx.Done():
			}
			wait = min(2*wait, maxWait)
			h.kick()
			continue
		}
		wait = minWait
	}
}

// flush publishes every pending key; on a failure the unpublished keys
// are pending again.
func (h *hubData) flush(ctx context.Context) error {
	keys := h.take()
	for len(keys) > 0 {
		n := min(len(keys), hubDataBatch)
		if err := h.publish(ctx, keys[:n]); err != nil {
			h.putBack(keys)
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// publish reads a batch of bucket keys and publishes their messages.
func (h *hubData) publish(ctx context.Context, keys []string) error {
	msgs := make([]dataMsg, 0, len(keys))
	now := h.now()
	retained := make(map[string]int64)
	for _, key := range keys {
		p, err := h.read(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // deleted meanwhile, or not an aggregate
		}
		bm, ok := newBucketMessage(key, p, now)
		if !ok {
			continue
		}
		b, err := json.Marshal(bm)
		if err != nil {
			h.log.Warn("bucket not published: not encodable", "key", key, "error", err)
			continue
		}
		// The broker keeps the last retained message of a topic: retain a
		// bucket only if it ends no earlier than the one retained before it
		// (in this batch, or published earlier).
		topic := dataTopic(h.prefix, bm.Node, bm.Sensor)
		end, seen := retained[topic]
		if !seen {
			end = h.latest[topic]
		}
		retain := bm.EndTS >= end
		if retain {
			retained[topic] = bm.EndTS
		}
		msgs = append(msgs, dataMsg{topic: topic, payload: b, retain: retain})
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := h.out.Publish(ctx, msgs); err != nil {
		return err
	}
	if len(h.latest)+len(retained) > hubDataMaxTopics {
		clear(h.latest) // forget: the next bucket of each topic is retained
	}
	maps.Copy(h.latest, retained)
	h.m.published.Add(float64(len(msgs)))
	return nil
}
