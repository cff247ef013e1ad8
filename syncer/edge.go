package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Edge is the edge side of the sync protocol: it pushes this node's
// changes to the hub (its offline queue is the store's op log), applies
// what the hub relays, and keeps EDGE.STATUS/EDGE.QUEUE figures. Create
// it with NewEdge, run it with Run; the other methods are safe for
// concurrent use and never block on the network (SyncNow waits for its
// round, bounded by its ctx).
type Edge struct {
	opts     EdgeOptions
	log      *slog.Logger
	m        *metrics
	counters linkCounters

	started  atomic.Bool
	stopped  chan struct{} // closed when Run returns
	reqs     chan chan error
	interval atomic.Int64 // ns; applied by the loop
	wake     chan struct{}
	status   atomic.Pointer[Status]

	// LinkStats figures, written by the loop.
	linkRTT    atomicDuration
	failures   atomic.Int64
	throughput atomicFloat
}

type atomicDuration struct{ v atomic.Int64 }

func (a *atomicDuration) Load() time.Duration   { return time.Duration(a.v.Load()) }
func (a *atomicDuration) Store(d time.Duration) { a.v.Store(int64(d)) }

type atomicFloat struct{ v atomic.Uint64 }

func (a *atomicFloat) Load() float64   { return math.Float64frombits(a.v.Load()) }
func (a *atomicFloat) Store(f float64) { a.v.Store(math.Float64bits(f)) }

// NewEdge checks the options and returns an Edge; it registers its
// metrics on opts.Registerer.
func NewEdge(opts EdgeOptions) (*Edge, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	e := &Edge{
		opts:    opts,
		log:     opts.Logger.With("component", "syncer", "role", "edge"),
		reqs:    make(chan chan error),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	e.interval.Store(int64(opts.Interval))
	e.m = newMetrics(opts.Registerer)
	e.status.Store(&Status{SyncStatus: "offline", Policy: opts.Policy.String(), Interval: opts.Interval, Hub: opts.HubURL})
	return e, nil
}

// Close unregisters the metrics. Call it after Run returned.
func (e *Edge) Close() { e.m.unregister() }

// SyncNow pushes every change made before the call and returns when the
// hub has acknowledged them (durably applied), or with ErrLinkDown when
// the attempt failed (unreachable hub, ack timeout), or ctx's error.
// Offline, it first tries to connect at once. Called before Run starts,
// it waits for it; after Run returned, it returns ErrNotRunning.
func (e *Edge) SyncNow(ctx context.Context) error {
	if e.opts.HubURL == "" {
		return ErrNoHub
	}
	done := make(chan error, 1)
	select {
	case e.reqs <- done:
	case <-e.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetInterval changes the time between periodic rounds (the resource
// monitor stretches it on a poor link or a low battery). It never blocks.
func (e *Edge) SetInterval(d time.Duration) {
	if d < 10*time.Millisecond {
		d = 10 * time.Millisecond
	}
	e.interval.Store(int64(d))
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run runs the edge until ctx ends; it returns nil then, or the error that
// stopped it (the store failed to load the syncer state). An Edge runs
// once.
func (e *Edge) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer close(e.stopped)
	r, err := newEdgeRun(ctx, e)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return r.loop(ctx)
}

// edgeRun is the state of one Run, owned by its goroutine.
type edgeRun struct {
	e    *Edge
	st   Store
	opts *EdgeOptions
	log  *slog.Logger
	core *edgeCore
	enc  Encoder

	link       link
	linkSeq    uint64 // increments per dial, to ignore stale link events
	dialing    bool
	dials      uint64
	linkEvents chan linkEvent
	inbox      chan inbound
	subscribed string // hub whose status topic is subscribed

	queue    pendingQueue
	exp      *exporter
	stage    stager
	waiters  []syncWaiter
	replies  []syncReply // answered after the status they imply is published
	rttSeen  uint64      // core.rttSamples already fed to the RTT histogram
	dirty    bool
	flushAt  time.Time
	pruneTo  uint64
	pruned   uint64
	durableC <-chan struct{}

	skewed    map[string]time.Duration
	bytesPrev uint64
	rateAt    time.Time
	rate      float64
	rttAvg    time.Duration
	wg        sync.WaitGroup
}

type linkEvent struct {
	seq  uint64
	link link // nil: failed or lost
	err  error
}

type syncWaiter struct {
	target uint64
	done   chan error
}

type syncReply struct {
	done chan error
	err  error
}

// reply answers SyncNow calls once the status is published, so a caller
// that reads Status after SyncNow returns sees its effect.
func (r *edgeRun) reply() {
	for _, rp := range r.replies {
		rp.done <- rp.err
	}
	r.replies = r.replies[:0]
}

func newEdgeRun(ctx context.Context, e *Edge) (*edgeRun, error) {
	o := &e.opts
	r := &edgeRun{
		e: e, st: o.Store, opts: o, log: e.log,
		enc:        Encoder{Threshold: o.CompressThreshold},
		linkEvents: make(chan linkEvent, 4),
		inbox:      make(chan inbound, 4*o.Window+16),
		stage:      stager{st: o.Store, prefix: "stage/down"},
		skewed:     map[string]time.Duration{},
	}
	var st edgeState
	if _, err := loadState(ctx, r.st, keyEdgeState, &st); err != nil {
		return nil, err
	}
	if err := r.stage.clear(ctx); err != nil {
		return nil, fmt.Errorf("syncer: clear staged state: %w", err)
	}
	// The op log may have been pruned beyond the state written last (an
	// ack's prune can land before the lazily written cursor).
	r.pruned = r.st.PrunedSeq()
	if st.UpAcked < r.pruned && !st.NeedFullUp {
		st.UpAcked = r.pruned
	}
	r.pruneTo = r.pruned
	cfg := edgeConfig{
		Node: o.NodeID, Actor: r.st.Actor(), Role: r.st.Role(), Policy: o.Policy, Interval: time.Duration(e.interval.Load()),
		Window: o.Window, AckTimeout: o.AckTimeout, MergeTimeout: o.MergeTimeout,
		BackoffMin: o.BackoffMin, BackoffMax: o.BackoffMax, Software: o.Software, Resolver: o.Resolver.Digest(),
	}
	seed := uint64(o.Clock().UnixNano())
	r.core = newEdgeCore(cfg, st, rand.New(rand.NewPCG(seed, seed>>17|1)))
	r.queue.scanned = max(st.UpAcked, r.pruned)
	r.durableC = r.st.DurableChanged()
	if err := r.scanQueue(ctx); err != nil {
		return nil, err
	}
	r.log.Info("syncer started", "node", o.NodeID, "hub", o.HubURL, "policy", o.Policy,
		"pending_ops", r.queue.len(), "up_acked", st.UpAcked, "down_seq", st.DownSeq, "need_full_sync", st.NeedFullUp)
	return r, nil
}

func (r *edgeRun) now() time.Time { return r.opts.Clock() }

func (r *edgeRun) loop(ctx context.Context) error {
	defer r.shutdown()
	r.core.Start(r.now(), r.st.DurableSeq())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.exec(ctx)
		r.publishStatus()
		r.reply()
		if ctx.Err() != nil {
			return nil
		}
		var chunks <-chan exportChunk
		if r.exp != nil && r.core.WantChunk() {
			chunks = r.exp.ch
		}
		resetTimer(timer, r.now(), earliest(r.core.NextDeadline(), r.flushAt, r.now().Add(time.Second)))
		select {
		case <-ctx.Done():
			return nil
		case in := <-r.inbox:
			r.onInbound(in)
		case ev := <-r.linkEvents:
			r.onLinkEvent(ctx, ev)
		case <-r.durableC:
			r.durableC = r.st.DurableChanged()
			r.onDurable(ctx)
		case done := <-r.e.reqs:
			r.onSyncRequest(ctx, done)
		case <-r.e.wake:
			r.core.SetInterval(r.now(), time.Duration(r.e.interval.Load()))
		case c := <-chunks:
			if c.err != nil {
				r.core.ExportFailed(r.now(), r.exp.snapshot, localError{c.err})
			} else {
				r.core.ChunkReady(r.now(), c.msg)
			}
		case <-timer.C:
			// Messages that arrived meanwhile count before any deadline.
			for len(r.inbox) > 0 {
				r.onInbound(<-r.inbox)
				r.exec(ctx)
			}
			r.core.Tick(r.now())
			if !r.flushAt.IsZero() && !r.now().Before(r.flushAt) {
				r.flush(ctx)
			}
			// Only durable ops are sent. Under durability "none" nothing
			// else fsyncs local writes: do it here, at most every second.
			if r.opts.HubURL != "" && r.st.LastSeq() > r.st.DurableSeq() {
				if err := r.st.SyncWAL(ctx); err != nil && ctx.Err() == nil {
					r.log.Error("fsync for sync failed", "err", err)
				}
			}
		}
	}
}

func resetTimer(t *time.Timer, now, at time.Time) {
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	t.Reset(d)
}

// localError marks a failure of this node (store), not of the link.
type localError struct{ err error }

func (l localError) Error() string { return l.err.Error() }
func (l localError) Unwrap() error { return l.err }

func (r *edgeRun) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.exp != nil {
		r.exp.stop()
		r.exp = nil
	}
	if r.link != nil {
		r.link.Close(true)
		r.link = nil
	}
	r.dirty = true
	r.flush(ctx)
	for _, w := range r.waiters {
		r.replies = append(r.replies, syncReply{done: w.done, err: ErrNotRunning})
	}
	r.waiters = nil
	r.reply()
	r.wg.Wait()
	r.e.m.connected.Set(0)
	st := *r.e.status.Load()
	st.SyncStatus, st.HubConnected = "offline", false
	r.e.status.Store(&st)
	r.log.Info("syncer stopped", "pending_ops", r.queue.len())
}

// onDurable indexes newly durable own ops and lets the core send them.
func (r *edgeRun) onDurable(ctx context.Context) {
	if err := r.scanQueue(ctx); err != nil {
		r.log.Error("reading the op log failed", "err", err)
	}
	r.core.Durable(r.now(), r.st.DurableSeq())
}

// scanQueue indexes own ops past the queue's scan cursor, then drops the
// oldest if the queue overflows.
func (r *edgeRun) scanQueue(ctx context.Context) error {
	durable := r.st.DurableSeq()
	if r.opts.HubURL == "" {
		// No hub: nothing will ever read the queue, and it would hold up
		// to QueueCapacity ops (values included) of the device's storage.
		// Prune without reading the ops back.
		if durable > r.queue.scanned {
			r.queue.scanned = durable
			r.core.NoHub(durable)
		}
		return nil
	}
	for r.queue.scanned < durable {
		ops, next, err := r.st.OpsSince(ctx, ownOps(r.st, r.queue.scanned, 4096, 8<<20))
		if err != nil {
			return err
		}
		for i := range ops {
			if ops[i].Seq > r.core.st.UpAcked {
				r.queue.push(pendingOp{seq: ops[i].Seq, size: uint32(ops[i].EncodedSize()), ts: ops[i].Stamp.TS.Physical()})
			}
		}
		if next <= r.queue.scanned {
			break
		}
		r.queue.scanned = next
	}
	if n := overflowDrop(r.queue.len(), r.opts.QueueCapacity); n > 0 {
		upTo := r.queue.dropOldest(n)
		r.e.m.dropped.Add(float64(n))
		r.core.Overflow(r.now(), uint64(n), upTo)
	}
	return nil
}

func (r *edgeRun) onSyncRequest(ctx context.Context, done chan error) {
	if err := r.st.SyncWAL(ctx); err != nil {
		r.replies = append(r.replies, syncReply{done: done, err: fmt.Errorf("syncer: sync: %w", err)})
		return
	}
	if err := r.scanQueue(ctx); err != nil {
		r.replies = append(r.replies, syncReply{done: done, err: fmt.Errorf("syncer: sync: %w", err)})
		return
	}
	target := r.st.DurableSeq()
	r.waiters = append(r.waiters, syncWaiter{target: target, done: done})
	r.core.SyncNow(r.now(), target)
}

// checkWaiters completes the SyncNow calls whose changes are acknowledged.
// A waiter needs a live session: with nothing pending, SyncNow still
// reports whether the hub is reachable.
func (r *edgeRun) checkWaiters() {
	if len(r.waiters) == 0 || r.core.st.NeedFullUp || r.core.phase != edgeActive {
		return
	}
	keep := r.waiters[:0]
	for _, w := range r.waiters {
		if r.core.st.UpAcked >= w.target {
			r.replies = append(r.replies, syncReply{done: w.done})
		} else {
			keep = append(keep, w)
		}
	}
	r.waiters = keep
}

func (r *edgeRun) failWaiters(err error) {
	if !errors.Is(err, ErrLinkDown) { // link failures already say so
		err = fmt.Errorf("%w: %w", ErrLinkDown, err)
	}
	for _, w := range r.waiters {
		r.replies = append(r.replies, syncReply{done: w.done, err: err})
	}
	r.waiters = nil
}

// flush writes the syncer state and prunes what it allows.
func (r *edgeRun) flush(ctx context.Context) {
	r.flushAt = time.Time{}
	if r.dirty {
		if err := r.st.SetSyncState(ctx, keyEdgeState, r.core.st.marshal()); err != nil {
			r.log.Error("persisting sync state failed", "err", err)
			return
		}
		r.dirty = false
	}
	if r.pruneTo > r.pruned {
		if err := r.st.PruneOps(ctx, r.pruneTo); err != nil {
			r.log.Error("pruning the op log failed", "err", err)
			return
		}
		r.e.m.pruned.Add(float64(r.pruneTo - r.pruned))
		r.pruned = r.pruneTo
	}
	if acked := r.core.st.UpAcked; acked > 0 {
		// Data whose last change the hub holds may be evicted under
		// pressure. Never the dropped range: that state is not upstream
		// until the FullSync completes.
		if err := r.st.MarkSynced(ctx, acked); err != nil {
			r.log.Error("marking synced failed", "err", err)
		}
	}
}

var errNoLink = errors.New("syncer: no link to the broker")
