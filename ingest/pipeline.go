package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Message is one MQTT PUBLISH as the broker hands it to ingest.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	ClientID string
	// Received is the gateway's receive time; zero means now.
	Received time.Time
}

// Pipeline defaults.
const (
	DefaultMaxClockSkew       = 5 * time.Minute
	DefaultTickInterval       = time.Second
	DefaultCheckpointInterval = 5 * time.Second
)

// Options configure a Pipeline. Zero values take defaults.
type Options struct {
	// Rules, in match order. Nil means DefaultRules().
	Rules []Rule
	// Store persists readings, checkpoints and buckets. Required.
	Store Store
	// Aggregator configures the time buckets.
	Aggregator AggregatorConfig
	// DisableAggregation turns the EdgeAggregator off.
	DisableAggregation bool
	// MaxSensors bounds the registry (default 10000).
	MaxSensors int
	// MaxValuesPerMessage bounds readings per message (default 256).
	MaxValuesPerMessage int
	// MaxClockSkew: readings stamped further than this after the receive
	// time take the receive time instead (default 5m).
	MaxClockSkew time.Duration
	// Location interprets zone-less textual timestamps such as Tasmota's
	// "Time" (default time.Local: the device and the gateway usually share it).
	Location *time.Location
	// TickInterval is how often the background goroutine closes due
	// buckets and writes them (default 1s). Negative: no goroutine; the
	// owner calls Tick itself (tests, with an injected Clock).
	TickInterval time.Duration
	// QueueSize bounds the QoS 0 readings waiting for the store (default
	// 65536); beyond it new QoS 0 readings are dropped and counted.
	QueueSize int
	// CheckpointInterval is how often running aggregates are persisted
	// (default 5s). Recovery replays the readings after the checkpoint.
	CheckpointInterval time.Duration
	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to slog.Default(); "component"="ingest" is added.
	Logger *slog.Logger
	// Registerer receives the ferrite_ingest_* metrics (nil: none).
	Registerer prometheus.Registerer
	// DeadLetter, if set, is called (synchronously, so it must not block)
	// for every message a rule matched but could not parse; the root
	// package republishes it to $ferrite/deadletter.
	DeadLetter func(m *Message, rule, reason string)
}

func (o *Options) ensureDefaults() {
	if o.Rules == nil {
		o.Rules = DefaultRules()
	}
	if o.MaxSensors == 0 {
		o.MaxSensors = DefaultMaxSensors
	}
	if o.MaxValuesPerMessage == 0 {
		o.MaxValuesPerMessage = DefaultMaxValuesPerMessage
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.TickInterval == 0 {
		o.TickInterval = DefaultTickInterval
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Aggregator.ensureDefaults()
}

// Validate reports every problem at once (after defaults are applied).
func (o *Options) Validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, fmt.Errorf("%w: Store is required", ErrInvalidOptions))
	}
	if _, err := CompileRules(o.Rules); err != nil {
		errs = append(errs, err)
	}
	if o.MaxSensors < 0 || o.MaxValuesPerMessage < 0 || o.MaxClockSkew < 0 || o.CheckpointInterval < 0 || o.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("%w: limits must not be negative", ErrInvalidOptions))
	}
	if !o.DisableAggregation {
		errs = append(errs, o.Aggregator.Validate())
	}
	return errors.Join(errs...)
}

// Pipeline is the broker-facing entry point: topic rules → parsers →
// SensorIngestion → EdgeAggregator → store. It owns two goroutines: the
// QoS 0 writer (see qos0Queue) and, unless TickInterval < 0, the ticker
// that closes buckets, writes them and checkpoints the registry. Close
// stops both and waits for them.
type Pipeline struct {
	opts      Options
	rules     *RuleSet
	ingestion *SensorIngestion
	agg       *EdgeAggregator
	log       *slog.Logger
	m         *metrics
	ids       *internTable
	units     *internTable
	batches   sync.Pool // *batchState
	queue     *qos0Queue

	tickMu         sync.Mutex // serialises Tick, Flush, Forget and Close's final write
	lastCheckpoint time.Time

	forgetMu sync.Mutex
	onForget []func(ctx context.Context, sensor string) error // OnForget

	badLog     rate.Sometimes
	tickLog    rate.Sometimes
	refusedLog rate.Sometimes
	closed     atomic.Bool
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

// New validates opts, restores the registry and open buckets from the
// store, and starts the background goroutine.
func New(ctx context.Context, opts Options) (*Pipeline, error) {
	opts.ensureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	rules, _ := CompileRules(opts.Rules)
	p := &Pipeline{
		opts:       opts,
		rules:      rules,
		log:        opts.Logger.With("component", "ingest"),
		ids:        newInternTable(2 * opts.MaxSensors),
		units:      newInternTable(1024),
		badLog:     rate.Sometimes{First: 5, Interval: 10 * time.Second},
		tickLog:    rate.Sometimes{First: 1, Interval: 30 * time.Second},
		refusedLog: rate.Sometimes{First: 1, Interval: 10 * time.Second},
	}
	if !opts.DisableAggregation {
		agg, err := NewEdgeAggregator(opts.Aggregator)
		if err != nil {
			return nil, err
		}
		p.agg = agg
	}
	p.ingestion = newSensorIngestion(opts.Store, p.agg, opts.Clock, opts.MaxSensors)
	p.m = newMetrics(opts.Registerer, p)
	p.ingestion.dropped = func(n int) { p.m.dropped.WithLabelValues("sensor_limit").Add(float64(n)) }
	p.batches.New = func() any { return newBatchState(p) }
	if err := p.ingestion.load(ctx, p.log); err != nil {
		return nil, err
	}
	p.lastCheckpoint = opts.Clock.Now()
	runCtx, stop := context.WithCancel(context.Background())
	p.stop = stop
	p.queue = newQoS0Queue(p, opts.QueueSize)
	p.wg.Add(1)
	go p.queue.run(runCtx)
	if opts.TickInterval > 0 {
		p.wg.Add(1)
		go p.run(runCtx)
	}
	return p, nil
}

// Ingestion returns the SensorIngestion (Go API: Ingest, Aggregate, Latest…).
func (p *Pipeline) Ingestion() *SensorIngestion { return p.ingestion }

// Aggregator returns the EdgeAggregator, nil when aggregation is disabled.
func (p *Pipeline) Aggregator() *EdgeAggregator { return p.agg }

// Rules returns the compiled rules.
func (p *Pipeline) Rules() *RuleSet { return p.rules }

func (p *Pipeline) run(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.opts.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Tick(ctx); err != nil && ctx.Err() == nil {
				p.tickLog.Do(func() { p.log.Warn("writing aggregates failed; will retry", "err", err) })
			}
		}
	}
}

// Tick closes the buckets that are due at the clock's now, writes every
// pending bucket to the store, and checkpoints the registry when the
// checkpoint interval has passed. The background goroutine calls it every
// TickInterval; with TickInterval < 0 the owner does.
func (p *Pipeline) Tick(ctx context.Context) error {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	now := p.opts.Clock.Now()
	var err error
	if p.agg != nil {
		p.agg.Tick(now)
		err = p.writePending(ctx)
	}
	if now.Sub(p.lastCheckpoint) >= p.opts.CheckpointInterval {
		p.lastCheckpoint = now
		if cerr := p.ingestion.checkpoint(ctx, false); cerr != nil {
			p.m.checkpointErrs.Inc()
			err = errors.Join(err, cerr)
		}
	}
	return err
}

// Flush closes every open bucket now and writes it (SENSOR.FLUSH, Go API).
// Readings that arrive later for a flushed interval become late partials.
func (p *Pipeline) Flush(ctx context.Context) error {
	if p.agg == nil {
		return nil
	}
	if err := p.Drain(ctx); err != nil {
		return err
	}
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	p.agg.Flush()
	return p.writePending(ctx)
}

// writePending merges pending buckets into the store, then persists the
// new watermarks of their series (so a restart does not replay readings
// already written). Called with tickMu held.
//
// Buckets are independent writes: they go out concurrently (bounded) so
// that the store's group commit shares one fsync among many of them. If
// any fails, the failed ones are requeued and their sensors' watermarks
// are not persisted this round (the retry's round persists them); the
// other sensors' are, or a sensor that sends nothing more would replay,
// and write again, buckets already written.
func (p *Pipeline) writePending(ctx context.Context) error {
	buckets, marks := p.agg.drainPendingMarks()
	if len(buckets) == 0 {
		return nil
	}
	failed := make([]bool, len(buckets))
	var firstErr error
	var mu sync.Mutex
	forEachLimit(len(buckets), storeWriteConcurrency, func(i int) {
		if err := p.opts.Store.MergeBucket(ctx, buckets[i]); err != nil {
			mu.Lock()
			failed[i] = true
			if firstErr == nil {
				firstErr = fmt.Errorf("ingest: write bucket %s: %w", buckets[i].Key(), err)
			}
			mu.Unlock()
		}
	})
	if firstErr != nil {
		var retry []Bucket
		for i, f := range failed {
			if f {
				retry = append(retry, buckets[i])
				// Hold back that width's watermark only (0 never
				// advances one): the sensor's other widths were written,
				// and replaying them after a restart would count twice.
				// A late partial moves no watermark.
				if ms := marks[buckets[i].Sensor]; ms != nil && !buckets[i].Late {
					if wi := slices.Index(p.agg.Config().Widths, buckets[i].Width); wi >= 0 {
						ms[wi] = 0
					}
				}
			}
		}
		p.agg.Requeue(retry)
		p.m.bucketErrors.Inc()
		p.m.bucketWrites.Add(float64(len(buckets) - len(retry)))
		return errors.Join(firstErr, p.persistMarks(ctx, marks))
	}
	p.m.bucketWrites.Add(float64(len(buckets)))
	return p.persistMarks(ctx, marks)
}

// persistMarks writes the sensors' new watermarks (one store call) and
// tells the store which raw readings are summarised.
func (p *Pipeline) persistMarks(ctx context.Context, marks map[string][]int64) error {
	var states []SensorState
	var sensors []string
	for sensor, ms := range marks {
		if state := p.ingestion.setMarks(sensor, ms); state != nil {
			states = append(states, SensorState{sensor, state})
			if minMark(ms) > 0 {
				sensors = append(sensors, sensor)
			}
		}
	}
	if len(states) == 0 {
		return nil
	}
	if err := p.opts.Store.PutSensorStates(ctx, states); err != nil {
		p.ingestion.markDirty(states)
		p.m.checkpointErrs.Inc()
		return fmt.Errorf("ingest: persist bucket watermarks: %w", err)
	}
	var errs []error
	var mu sync.Mutex
	forEachLimit(len(sensors), storeWriteConcurrency, func(i int) {
		if err := p.opts.Store.MarkAggregated(ctx, sensors[i], time.Unix(0, minMark(marks[sensors[i]]))); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if err := errors.Join(errs...); err != nil {
		p.m.checkpointErrs.Inc()
		return fmt.Errorf("ingest: mark readings aggregated: %w", err)
	}
	return nil
}

// storeWriteConcurrency bounds concurrent independent store writes (bucket
// merges, aggregated marks) so that they share group commits
// (BenchmarkFlushBuckets: 16 → ~2.5k buckets/s, 64 → ~5k buckets/s).
const storeWriteConcurrency = 64

// forEachLimit calls fn(0..n-1) on at most limit goroutines and waits for
// all of them.
func forEachLimit(n, limit int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

func minMark(ms []int64) int64 {
	var lo int64
	for _, m := range ms {
		if m == 0 {
			return 0 // a width that never closed: nothing is summarised for it
		}
		if lo == 0 || m < lo {
			lo = m
		}
	}
	return lo
}

// Drain waits until the QoS 0 readings queued before the call are written
// to the store (or dropped, if the store refused them).
func (p *Pipeline) Drain(ctx context.Context) error {
	return p.queue.drain(ctx)
}

// Close stops the goroutines (the QoS 0 writer first writes what is
// queued), closes and writes every bucket, open ones included, and
// checkpoints every sensor. Readings that arrive after the restart for
// the interval of a bucket written open merge into it as a late partial.
// (Open buckets used to be rebuilt from the raw ring at the next start;
// a bucket with more readings than the ring keeps, or a stop longer than
// LateHorizon, lost readings that way.)
func (p *Pipeline) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.stop()
	p.wg.Wait()
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	var err error
	if p.agg != nil {
		p.agg.Flush()
		err = p.writePending(ctx)
	}
	if cerr := p.ingestion.checkpoint(ctx, true); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// SetRollup switches the aggregator's roll-up mode (see
// EdgeAggregator.SetRollup) and writes the buckets it closed. The
// resource monitor calls it when storage runs short.
func (p *Pipeline) SetRollup(ctx context.Context, on bool) error {
	if p.agg == nil {
		return nil
	}
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	if n := p.agg.SetRollup(on); n > 0 || on {
		p.log.Info("aggregation roll-up", "on", on, "closed", n)
	}
	return p.writePending(ctx)
}
