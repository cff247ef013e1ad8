package ingest

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Aggregator defaults.
const (
	DefaultBucketWidth     = time.Minute
	DefaultAllowedLateness = 10 * time.Second
	// NoLateness as AggregatorConfig.AllowedLateness closes buckets at
	// their end.
	NoLateness               time.Duration = -1
	DefaultMaxPendingBuckets               = 10000
	DefaultMaxOpenBuckets                  = 100000
	DefaultLateHorizon                     = 24 * time.Hour
	recentClosedBuckets                    = 1024
)

// AggregatorConfig configures an EdgeAggregator. Zero fields take defaults.
type AggregatorConfig struct {
	// Widths are the bucket widths, each a whole number of seconds that
	// divides 24h (1s..24h). Default [1m].
	Widths []time.Duration `yaml:"widths" json:"widths"`
	// AllowedLateness keeps a bucket open after its end for readings that
	// arrive late. Default (0) 10s; negative (NoLateness): none, a bucket
	// closes at its end.
	AllowedLateness time.Duration `yaml:"allowed_lateness" json:"allowed_lateness"`
	// MaxPendingBuckets caps closed buckets not yet written to the store;
	// beyond it the oldest are dropped (counted). Default 10000.
	MaxPendingBuckets int `yaml:"max_pending_buckets" json:"max_pending_buckets"`
	// MaxOpenBuckets caps open buckets across all sensors; beyond it the
	// bucket due first is closed early (counted). Default 100000.
	MaxOpenBuckets int `yaml:"max_open_buckets" json:"max_open_buckets"`
	// LateHorizon bounds the replay after a crash: retained raw readings
	// older than now-LateHorizon are not re-aggregated (counted). Default
	// 24h. Live readings of any age are aggregated.
	LateHorizon time.Duration `yaml:"late_horizon" json:"late_horizon"`
	// Node prefixes bucket keys (agg/<node>/...): the gateway's node id, so
	// that a hub keeps each edge's buckets apart. Empty: agg/<sensor>/...
	Node string `yaml:"-" json:"-"`
}

// lateness is AllowedLateness in ns, NoLateness as 0.
func (c *AggregatorConfig) lateness() int64 { return max(0, int64(c.AllowedLateness)) }

func (c *AggregatorConfig) ensureDefaults() {
	if len(c.Widths) == 0 {
		c.Widths = []time.Duration{DefaultBucketWidth}
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = DefaultAllowedLateness
	}
	if c.MaxPendingBuckets == 0 {
		c.MaxPendingBuckets = DefaultMaxPendingBuckets
	}
	if c.MaxOpenBuckets == 0 {
		c.MaxOpenBuckets = DefaultMaxOpenBuckets
	}
	if c.LateHorizon == 0 {
		c.LateHorizon = DefaultLateHorizon
	}
}

// Validate reports every problem at once.
func (c *AggregatorConfig) Validate() error {
	var errs []error
	if len(c.Widths) > maxStateMarks {
		errs = append(errs, fmt.Errorf("%w: %d bucket widths (at most %d)", ErrInvalidOptions, len(c.Widths), maxStateMarks))
	}
	seen := map[time.Duration]bool{}
	for _, w := range c.Widths {
		if w < time.Second || w > 24*time.Hour || w%time.Second != 0 || (24*time.Hour)%w != 0 {
			errs = append(errs, fmt.Errorf("%w: bucket width %v must be whole seconds dividing 24h", ErrInvalidOptions, w))
		}
		if seen[w] {
			errs = append(errs, fmt.Errorf("%w: bucket width %v listed twice", ErrInvalidOptions, w))
		}
		seen[w] = true
	}
	if c.MaxPendingBuckets < 0 || c.MaxOpenBuckets < 0 {
		errs = append(errs, fmt.Errorf("%w: bucket caps must not be negative", ErrInvalidOptions))
	}
	if c.LateHorizon < 0 {
		errs = append(errs, fmt.Errorf("%w: late_horizon must not be negative", ErrInvalidOptions))
	}
	return errors.Join(errs...)
}

// Bucket is the summary of one sensor's readings in [Start, Start+Width).
type Bucket struct {
	// Node is the gateway that aggregated the readings (part of the key, so
	// that edges with the same sensor ids keep separate buckets at the hub).
	Node   string        `json:"node,omitempty"`
	Sensor string        `json:"sensor"`
	Width  time.Duration `json:"width"`
	Start  time.Time     `json:"start"`
	Count  uint64        `json:"count"`
	Sum    float64       `json:"sum"`
	Min    float64       `json:"min"`
	Max    float64       `json:"max"`
	First  time.Time     `json:"first"` // time of the earliest reading
	Last   time.Time     `json:"last"`  // time of the latest reading
	// Late marks a partial made of readings that arrived after the bucket
	// had been closed; it is merged into the same store key.
	Late bool `json:"late,omitempty"`
	// Open marks a bucket still accepting readings (SENSOR.BUCKETS).
	Open bool `json:"open,omitempty"`
}

// Avg is Sum/Count (0 for an empty bucket).
func (b *Bucket) Avg() float64 {
	if b.Count == 0 {
		return 0
	}
	return b.Sum / float64(b.Count)
}

// Key is the store key of the bucket: agg/<node>/<sensor>/<width>/<start-unix>.
func (b *Bucket) Key() string {
	return BucketKey(b.Node, b.Sensor, b.Width, b.Start)
}

// BucketKey formats agg/<node>/<sensor>/<width>/<start-unix-seconds>, the
// width as "<n>h", "<n>m" or "<n>s" (the largest exact unit). An empty node
// gives agg/<sensor>/<width>/<start>.
func BucketKey(node, sensor string, width time.Duration, start time.Time) string {
	buf := appendBucketKeyPrefix(make([]byte, 0, len(node)+len(sensor)+32), node, sensor, width)
	buf = strconv.AppendInt(buf, start.Unix(), 10)
	return string(buf)
}

// bucketKeyPrefix is BucketKey up to the start ("agg/<node>/<sensor>/<width>/").
func bucketKeyPrefix(node, sensor string, width time.Duration) string {
	return string(appendBucketKeyPrefix(nil, node, sensor, width))
}

func appendBucketKeyPrefix(buf []byte, node, sensor string, width time.Duration) []byte {
	buf = append(buf, "agg/"...)
	if node != "" {
		buf = append(buf, node...)
		buf = append(buf, '/')
	}
	buf = append(buf, sensor...)
	buf = append(buf, '/')
	buf = appendWidth(buf, width)
	return append(buf, '/')
}

func appendWidth(buf []byte, w time.Duration) []byte {
	switch s := int64(w / time.Second); {
	case s%3600 == 0:
		return append(strconv.AppendInt(buf, s/3600, 10), 'h')
	case s%60 == 0:
		return append(strconv.AppendInt(buf, s/60, 10), 'm')
	default:
		return append(strconv.AppendInt(buf, s, 10), 's')
	}
}

// AggregatorStats are cumulative counters (exported as metrics).
type AggregatorStats struct {
	Added        uint64 // readings added to buckets (per width)
	LateInWindow uint64 // readings after their bucket's end, within the allowed lateness
	LateMerged   uint64 // readings after their bucket was closed, merged as a late partial
	TooOld       uint64 // readings older than the late horizon at a crash replay, not re-aggregated
	Closed       uint64 // buckets closed on time
	ForcedClosed uint64 // buckets closed early by the open-bucket cap
	Dropped      uint64 // closed buckets dropped by the pending cap
	Open         int    // open buckets now
	Pending      int    // closed buckets awaiting the store now
}

// openBucket is a bucket accepting readings.
type openBucket struct {
	Bucket
	width   int   // index into widths
	closeAt int64 // unix ns
	index   int   // heap index
}

type bucketID struct {
	sensor string
	width  int
	start  int64
	late   bool
}

type seriesID struct {
	sensor string
	width  int
}

// EdgeAggregator groups readings into time buckets aligned to multiples of
// the width in UTC (not to the first reading, which would drift). It is a
// deterministic core: it never reads the wall clock and starts no
// goroutine; callers pass now and call Tick (the Pipeline's ticker does).
// All methods are safe for concurrent use.
//
// Life of a bucket: it opens with its first reading; at end+AllowedLateness
// Tick closes it and moves it to the pending list; the owner drains the
// pending list into the store. A reading for a bucket that is already
// closed (ts below the series' closed watermark) opens a *late* bucket for
// the same interval, closed at the next Tick and merged into the same store
// key: the store adds it into this node's partial, so the hub still counts
// every reading exactly once.
type EdgeAggregator struct {
	cfg    AggregatorConfig
	widths []int64 // ns

	mu      sync.Mutex
	open    map[bucketID]*openBucket
	byClose closeHeap
	// closedUntil: per series, every bucket starting before it is closed.
	closedUntil map[seriesID]int64
	pending     []Bucket
	recent      []Bucket // ring of recently closed buckets, newest last
	stats       AggregatorStats
	rollup      bool // only the widest width is fed (SetRollup)
}

// NewEdgeAggregator validates cfg (after defaults) and returns an empty aggregator.
func NewEdgeAggregator(cfg AggregatorConfig) (*EdgeAggregator, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &EdgeAggregator{
		cfg:         cfg,
		open:        make(map[bucketID]*openBucket),
		closedUntil: make(map[seriesID]int64),
	}
	for _, w := range cfg.Widths {
		a.widths = append(a.widths, int64(w))
	}
	return a, nil
}

// Config returns the effective configuration.
func (a *EdgeAggregator) Config() AggregatorConfig { return a.cfg }

// Add adds one reading at wall time now.
func (a *EdgeAggregator) Add(r Reading, now time.Time) {
	a.mu.Lock()
	a.addLocked(r.Sensor, r.Time.UnixNano(), r.Value, now.UnixNano())
	a.mu.Unlock()
}

// AddBatch adds readings under one lock acquisition.
func (a *EdgeAggregator) AddBatch(rs []Reading, now time.Time) {
	n := now.UnixNano()
	a.mu.Lock()
	for i := range rs {
		a.addLocked(rs[i].Sensor, rs[i].Time.UnixNano(), rs[i].Value, n)
	}
	a.mu.Unlock()
}

func alignDown(ts, width int64) int64 {
	start := ts - ts%width
	if ts < 0 && ts%width != 0 {
		start -= width
	}
	return start
}

func (a *EdgeAggregator) addLocked(sensor string, ts int64, v float64, now int64) {
	// Readings of any age are aggregated: one for an interval already
	// closed becomes a late partial. (Readings older than LateHorizon used
	// to stay raw only, and offload then dropped them unsummarised.)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	lateness := a.cfg.lateness()
	wide := -1
	if a.rollup {
		wide = a.widestLocked()
	}
	for wi, width := range a.widths {
		if wide >= 0 && wi != wide {
			continue
		}
		start := alignDown(ts, width)
		id := bucketID{sensor: sensor, width: wi, start: start}
		late := start < a.closedUntil[seriesID{sensor, wi}]
		if late {
			id.late = true
			a.stats.LateMerged++
		} else if now >= start+width {
			a.stats.LateInWindow++
		}
		b := a.open[id]
		if b == nil {
			closeAt := start + width + lateness
			if late {
				// A late partial closes at the next Tick, or, for an
				// interval still running (written early by Flush or a
				// clean stop), when the interval would have closed: one
				// more write per interval, not one per tick.
				closeAt = max(now, closeAt)
			}
			b = a.openLocked(id, closeAt)
		}
		b.add(ts, v)
		a.stats.Added++
	}
}

func (a *EdgeAggregator) openLocked(id bucketID, closeAt int64) *openBucket {
	if a.cfg.MaxOpenBuckets > 0 && len(a.open) >= a.cfg.MaxOpenBuckets {
		b := heap.Pop(&a.byClose).(*openBucket)
		a.closeLocked(b)
		a.stats.ForcedClosed++
	}
	b := &openBucket{
		Bucket: Bucket{
			Node:   a.cfg.Node,
			Sensor: id.sensor,
			Width:  time.Duration(a.widths[id.width]),
			Start:  time.Unix(0, id.start).UTC(),
			Late:   id.late,
		},
		width:   id.width,
		closeAt: closeAt,
	}
	a.open[id] = b
	heap.Push(&a.byClose, b)
	return b
}

func (b *openBucket) add(ts int64, v float64) {
	t := time.Unix(0, ts).UTC()
	if b.Count == 0 {
		b.Min, b.Max, b.First, b.Last = v, v, t, t
	} else {
		b.Min, b.Max = min(b.Min, v), max(b.Max, v)
		if t.Before(b.First) {
			b.First = t
		}
		if t.After(b.Last) {
			b.Last = t
		}
	}
	b.Count++
	b.Sum += v
}

// closeLocked moves an open bucket (already removed from the heap) to pending.
func (a *EdgeAggregator) closeLocked(b *openBucket) {
	id := bucketID{sensor: b.Sensor, width: b.width, start: b.Start.UnixNano(), late: b.Late}
	delete(a.open, id)
	if !b.Late {
		sid := seriesID{b.Sensor, b.width}
		if end := id.start + a.widths[b.width]; end > a.closedUntil[sid] {
			a.closedUntil[sid] = end
		}
	}
	a.pushPendingLocked(b.Bucket)
	a.recent = append(a.recent, b.Bucket)
	if len(a.recent) > recentClosedBuckets {
		a.recent = slices.Delete(a.recent, 0, len(a.recent)-recentClosedBuckets)
	}
}

func (a *EdgeAggregator) pushPendingLocked(b Bucket) {
	if a.cfg.MaxPendingBuckets > 0 && len(a.pending) >= a.cfg.MaxPendingBuckets {
		n := len(a.pending) - a.cfg.MaxPendingBuckets + 1
		a.pending = slices.Delete(a.pending, 0, n)
		a.stats.Dropped += uint64(n)
	}
	a.pending = append(a.pending, b)
}

// Tick closes every bucket whose end plus allowed lateness is at or before
// now (and every late partial), and returns how many it closed.
func (a *EdgeAggregator) Tick(now time.Time) int {
	n := now.UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	closed := 0
	for len(a.byClose) > 0 && a.byClose[0].closeAt <= n {
		b := heap.Pop(&a.byClose).(*openBucket)
		a.closeLocked(b)
		if !b.Late {
			a.stats.Closed++
		}
		closed++
	}
	return closed
}

// NextClose returns when the next bucket is due (false if none is open).
func (a *EdgeAggregator) NextClose() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.byClose) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, a.byClose[0].closeAt), true
}

// Flush closes every open bucket now, whatever its end, and returns how
// many it closed. Readings that arrive later for a flushed interval are
// merged as late partials.
func (a *EdgeAggregator) Flush() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for len(a.byClose) > 0 {
		a.closeLocked(heap.Pop(&a.byClose).(*openBucket))
		n++
	}
	return n
}

// DrainPending removes and returns the closed buckets not yet written,
// oldest first.
func (a *EdgeAggregator) DrainPending() []Bucket {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.pending
	a.pending = nil
	return out
}

// Requeue puts buckets whose write failed back in front of the pending
// list (the pending cap still applies: the oldest are dropped first).
func (a *EdgeAggregator) Requeue(bs []Bucket) {
	if len(bs) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	merged := make([]Bucket, 0, len(bs)+len(a.pending))
	merged = append(append(merged, bs...), a.pending...)
	a.pending = nil
	for _, b := range merged {
		a.pushPendingLocked(b)
	}
}

// ClosedUntil returns the series watermark: every bucket of this sensor and
// width starting before it has been closed. Zero if none closed yet.
func (a *EdgeAggregator) ClosedUntil(sensor string, width time.Duration) time.Time {
	wi := slices.Index(a.widths, int64(width))
	a.mu.Lock()
	defer a.mu.Unlock()
	if ns, ok := a.closedUntil[seriesID{sensor, wi}]; ok && wi >= 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Time{}
}

// Restore sets a series watermark (from the persisted registry, before the
// raw readings after it are replayed with Add). It never moves it back.
func (a *EdgeAggregator) Restore(sensor string, width time.Duration, closedUntil time.Time) {
	wi := slices.Index(a.widths, int64(width))
	if wi < 0 || closedUntil.IsZero() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	sid := seriesID{sensor, wi}
	if ns := closedUntil.UnixNano(); ns > a.closedUntil[sid] {
		a.closedUntil[sid] = ns
	}
}

// Buckets returns up to n buckets of a sensor, newest first: the open ones
// and those recently closed (kept in memory, the last 1024 across all
// sensors). Late partials are reported as their own entries.
func (a *EdgeAggregator) Buckets(sensor string, n int) []Bucket {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Bucket
	for _, b := range a.open {
		if b.Sensor == sensor {
			bb := b.Bucket
			bb.Open = true
			out = append(out, bb)
		}
	}
	for i := len(a.recent) - 1; i >= 0; i-- {
		if a.recent[i].Sensor == sensor {
			out = append(out, a.recent[i])
		}
	}
	slices.SortStableFunc(out, func(x, y Bucket) int {
		if c := y.Start.Compare(x.Start); c != 0 {
			return c
		}
		return int(x.Width - y.Width)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Stats returns the cumulative counters and current sizes.
func (a *EdgeAggregator) Stats() AggregatorStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Open, s.Pending = len(a.open), len(a.pending)
	return s
}

// closeHeap orders open buckets by close time, then start.
type closeHeap []*openBucket

func (h closeHeap) Len() int { return len(h) }
func (h closeHeap) Less(i, j int) bool {
	if h[i].closeAt != h[j].closeAt {
		return h[i].closeAt < h[j].closeAt
	}
	return h[i].Start.Before(h[j].Start)
}
func (h closeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *closeHeap) Push(x any) {
	b := x.(*openBucket)
	b.index = len(*h)
	*h = append(*h, b)
}
func (h *closeHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}
