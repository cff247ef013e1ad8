package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadArgument is returned by commands for an argument they cannot use.
var ErrBadArgument = errors.New("ingest: bad argument")

// Command is a transport-neutral sensor command; the root package
// registers them on the broker's command router and the Go API. Args
// exclude the command name; MaxArgs < 0 means unbounded.
type Command struct {
	Name     string
	MinArgs  int
	MaxArgs  int
	ReadOnly bool
	Help     string
	Run      func(ctx context.Context, args []string) (any, error)
}

// Command limits.
const (
	defaultLatest  = 10
	maxLatest      = 1000
	defaultBuckets = 20
	maxBuckets     = recentClosedBuckets
)

// StatsReply is the reply of SENSOR.STATS.
type StatsReply struct {
	Sensor    string    `json:"sensor"`
	Count     uint64    `json:"count"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	Avg       float64   `json:"avg"`
	Sum       float64   `json:"sum"`
	Last      float64   `json:"last"`
	LastTS    time.Time `json:"last_ts"`
	Unit      string    `json:"unit,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// ListEntry is one line of SENSOR.LIST.
type ListEntry struct {
	ID       string    `json:"id"`
	Unit     string    `json:"unit,omitempty"`
	Count    uint64    `json:"count"`
	Last     float64   `json:"last"`
	LastSeen time.Time `json:"last_seen"`
}

// BucketReply is one bucket of SENSOR.BUCKETS.
type BucketReply struct {
	Key   string    `json:"key"`
	Width string    `json:"width"`
	Start time.Time `json:"start"`
	Count uint64    `json:"count"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Avg   float64   `json:"avg"`
	Sum   float64   `json:"sum"`
	// Open: still accepting readings (in memory, not yet written).
	Open bool `json:"open,omitempty"`
}

// Commands returns SENSOR.STATS, SENSOR.LATEST, SENSOR.LIST,
// SENSOR.BUCKETS, SENSOR.FLUSH and SENSOR.FORGET bound to p.
func Commands(p *Pipeline) []Command {
	return []Command{
		{
			Name: "SENSOR.STATS", MinArgs: 1, MaxArgs: 1, ReadOnly: true,
			Help: "SENSOR.STATS <id> — running aggregates: count, min, max, avg, sum, last, last_ts, unit",
			Run: func(_ context.Context, args []string) (any, error) {
				info, ok := p.ingestion.Aggregate(args[0])
				if !ok {
					return nil, fmt.Errorf("%w: %q", ErrUnknownSensor, args[0])
				}
				return StatsReply{
					Sensor: info.ID, Count: info.Count, Min: info.Min, Max: info.Max, Avg: info.Avg(), Sum: info.Sum,
					Last: info.Last, LastTS: utc(info.LastTime), Unit: info.Unit,
					FirstSeen: utc(info.FirstSeen), LastSeen: utc(info.LastSeen),
				}, nil
			},
		},
		{
			Name: "SENSOR.LATEST", MinArgs: 1, MaxArgs: 2, ReadOnly: true,
			Help: "SENSOR.LATEST <id> [n] — the n newest raw readings (default 10, max 1000), newest first",
			Run: func(ctx context.Context, args []string) (any, error) {
				n, err := countArg(args, 1, defaultLatest, maxLatest)
				if err != nil {
					return nil, err
				}
				rs, err := p.ingestion.Latest(ctx, args[0], n)
				if err != nil {
					return nil, err
				}
				for i := range rs {
					rs[i].Time = rs[i].Time.UTC()
				}
				return rs, nil
			},
		},
		{
			Name: "SENSOR.LIST", MinArgs: 0, MaxArgs: 1, ReadOnly: true,
			Help: "SENSOR.LIST [pattern] — registered sensors whose id matches the glob (* and ?)",
			Run: func(_ context.Context, args []string) (any, error) {
				pattern := ""
				if len(args) == 1 {
					pattern = args[0]
				}
				infos := p.ingestion.Sensors(pattern)
				out := make([]ListEntry, len(infos))
				for i, in := range infos {
					out[i] = ListEntry{ID: in.ID, Unit: in.Unit, Count: in.Count, Last: in.Last, LastSeen: utc(in.LastSeen)}
				}
				return out, nil
			},
		},
		{
			Name: "SENSOR.BUCKETS", MinArgs: 1, MaxArgs: 3, ReadOnly: true,
			Help: "SENSOR.BUCKETS <id> [n | from [to]] — stored (replicated) and open buckets, newest first (from/to: unix seconds or RFC 3339); <node>/<sensor> reads another node's replicated buckets (on a hub)",
			Run: func(ctx context.Context, args []string) (any, error) {
				return bucketsCommand(ctx, p, args)
			},
		},
		{
			Name: "SENSOR.FLUSH", MinArgs: 0, MaxArgs: 0, ReadOnly: false,
			Help: "SENSOR.FLUSH — close every open bucket now and write it to the store",
			Run: func(ctx context.Context, _ []string) (any, error) {
				if err := p.Flush(ctx); err != nil {
					return nil, err
				}
				return "OK", nil
			},
		},
		{
			Name: "SENSOR.FORGET", MinArgs: 1, MaxArgs: 1, ReadOnly: false,
			Help: "SENSOR.FORGET <id> — remove a sensor: registry entry, running aggregates, raw readings (its open buckets are written first; stored buckets are kept); it registers anew if it sends again",
			Run: func(ctx context.Context, args []string) (any, error) {
				return p.Forget(ctx, args[0])
			},
		},
	}
}

// bucketsCommand lists a sensor's buckets, newest first: the replicated
// values written to the store (read by key, so they include late
// partials and every origin) and the buckets still open in memory.
func bucketsCommand(ctx context.Context, p *Pipeline, args []string) (any, error) {
	if p.agg == nil {
		return nil, fmt.Errorf("%w: aggregation is disabled", ErrBadArgument)
	}
	id := args[0]
	node, sensor := p.opts.Aggregator.Node, id
	if _, ok := p.ingestion.Aggregate(id); !ok {
		// Not a sensor of this node: "<node>/<sensor>" reads the buckets
		// another node replicated here (a hub reading its edges' buckets).
		n, s, found := strings.Cut(id, "/")
		if !found || n == "" || s == "" {
			return nil, fmt.Errorf("%w: %q (another node's sensor is <node>/<sensor>)", ErrUnknownSensor, id)
		}
		node, sensor = n, s
	}
	local := node == p.opts.Aggregator.Node
	now := p.opts.Clock.Now()
	n := defaultBuckets
	from, to := time.Time{}, now.Add(time.Nanosecond)
	switch len(args) {
	case 2:
		// A small integer is a count; anything else (unix seconds, RFC 3339)
		// is the start of the range, as in SENSOR.BUCKETS <id> <from>.
		var err error
		if n, err = countArg(args, 1, defaultBuckets, maxBuckets); err != nil {
			if from, err = timeArg(args[1]); err != nil {
				return nil, fmt.Errorf("%w: %q is neither a count (1..%d) nor a time", ErrBadArgument, args[1], maxBuckets)
			}
			n = maxBuckets
		}
	case 3:
		var err error
		if from, err = timeArg(args[1]); err != nil {
			return nil, err
		}
		if to, err = timeArg(args[2]); err != nil {
			return nil, err
		}
		n = maxBuckets
	}
	var out []Bucket
	if local {
		for _, b := range p.agg.Buckets(id, 0) {
			if b.Open && !b.Start.Before(from) && b.Start.Before(to) {
				out = append(out, b)
			}
		}
	}
	// Stored buckets: per width, the newest n stored in [from, to) (the
	// keys are listed, so gaps between buckets cost nothing).
	for _, w := range p.agg.Config().Widths {
		starts, err := p.opts.Store.BucketStarts(ctx, node, sensor, w)
		if err != nil {
			return nil, err
		}
		starts = slices.DeleteFunc(starts, func(s time.Time) bool { return s.Before(from) || !s.Before(to) })
		slices.SortFunc(starts, func(x, y time.Time) int { return y.Compare(x) })
		for _, start := range starts[:min(n, len(starts))] {
			b, err := p.opts.Store.ReadBucket(ctx, Bucket{Node: node, Sensor: sensor, Width: w, Start: start})
			if err != nil {
				return nil, err
			}
			if b.Count > 0 {
				out = append(out, b)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Bucket) int {
		if c := y.Start.Compare(x.Start); c != 0 {
			return c
		}
		if x.Width != y.Width {
			return int(x.Width - y.Width)
		}
		if x.Open != y.Open {
			if x.Open {
				return -1
			}
			return 1
		}
		return 0
	})
	replies := []BucketReply{}
	for _, b := range out[:min(n, len(out))] {
		replies = append(replies, BucketReply{
			Key: b.Key(), Width: string(appendWidth(nil, b.Width)), Start: b.Start.UTC(), Count: b.Count,
			Min: b.Min, Max: b.Max, Avg: b.Avg(), Sum: b.Sum, Open: b.Open,
		})
	}
	return replies, nil
}

func countArg(args []string, i, def, limit int) (int, error) {
	if len(args) <= i {
		return def, nil
	}
	n, err := strconv.Atoi(args[i])
	if err != nil || n < 1 || n > limit {
		return 0, fmt.Errorf("%w: count %q must be 1..%d", ErrBadArgument, args[i], limit)
	}
	return n, nil
}

func timeArg(s string) (time.Time, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec >= 0 && sec < 1<<33 {
		return time.Unix(sec, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time %q is neither unix seconds nor RFC 3339", ErrBadArgument, s)
	}
	return t, nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
