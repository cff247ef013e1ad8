package syncer

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/prometheus/client_golang/prometheus"
)

// HubOptions configure a Hub. Zero values take the defaults.
type HubOptions struct {
	// Store is the hub's replica (required; its role should be RoleHub).
	Store  Store
	NodeID string // default Store.NodeID()
	// BrokerURL is the broker the edges use: the hub's embedded broker's
	// own address, or an external broker (mqtt:// or mqtts://).
	BrokerURL      string
	TLS            *tls.Config
	Username       string
	Password       string
	TopicPrefix    string        // default "$ferrite"
	ConnectTimeout time.Duration // default 10s
	KeepAlive      time.Duration // default 30s
	BatchOptions
	// RetentionBytes and RetentionAge bound the op log kept for relaying
	// (defaults 256 MiB and 7 days). An edge that falls behind gets a
	// FullSync. Ops every known edge acknowledged are pruned earlier.
	RetentionBytes int64
	RetentionAge   time.Duration
	// MaxEdges bounds the live sessions (default 10,000).
	MaxEdges int
	// IdleTimeout ends the session of an edge that is no longer connected
	// (its retained status is not online) with nothing in flight after
	// this long without a message (default 10m; the edge's next message
	// restarts it). A connected edge keeps its session: one that only
	// reads sends nothing while nothing changes.
	IdleTimeout time.Duration
	// MaxClockSkew: an edge whose clock differs more is reported
	// (default 1m).
	MaxClockSkew time.Duration
	// BackoffMin and BackoffMax bound the reconnection delay to the broker.
	BackoffMin time.Duration
	BackoffMax time.Duration
	Resolver   crdt.Resolver
	Software   string
	// OnApplied is called with the keys that edges' changes touched, after
	// they are durable (the root republishes merged sensor buckets). It
	// runs on session goroutines, concurrently: it must be fast and safe
	// for concurrent use.
	OnApplied func(keys []string)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Clock      func() time.Time

	dial     dialFunc
	maintain time.Duration // tests: retention pass period (default 1s)
}

// EnsureDefaults fills zero fields.
func (o *HubOptions) EnsureDefaults() {
	if o.NodeID == "" && o.Store != nil {
		o.NodeID = o.Store.NodeID()
	}
	l := LinkOptions{TopicPrefix: o.TopicPrefix, ConnectTimeout: o.ConnectTimeout, KeepAlive: o.KeepAlive}
	l.defaults()
	o.TopicPrefix, o.ConnectTimeout, o.KeepAlive = l.TopicPrefix, l.ConnectTimeout, l.KeepAlive
	o.BatchOptions.defaults()
	if o.RetentionBytes == 0 {
		o.RetentionBytes = DefaultRetentionBytes
	}
	if o.RetentionAge == 0 {
		o.RetentionAge = DefaultRetentionAge
	}
	if o.MaxEdges == 0 {
		o.MaxEdges = DefaultMaxEdges
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.dial == nil {
		o.dial = dialPaho
	}
	if o.maintain == 0 {
		o.maintain = time.Second
	}
}

// Validate reports every problem at once.
func (o *HubOptions) Validate() error {
	var p problems
	if o.Store == nil {
		p.add("store: required")
	} else if o.NodeID != o.Store.NodeID() {
		p.add("node id %q differs from the store's %q", o.NodeID, o.Store.NodeID())
	}
	nodeIDProblem(&p, o.NodeID)
	l := LinkOptions{URL: o.BrokerURL, TopicPrefix: o.TopicPrefix, ConnectTimeout: o.ConnectTimeout, KeepAlive: o.KeepAlive}
	l.validate(&p, true)
	o.BatchOptions.validate(&p)
	if o.RetentionBytes < 4<<10 || o.RetentionAge < time.Second {
		p.add("retention %d bytes / %v: want at least 4 KiB and 1s", o.RetentionBytes, o.RetentionAge)
	}
	if o.MaxEdges < 1 || o.IdleTimeout < time.Second {
		p.add("max edges %d / idle timeout %v: want at least 1 and 1s", o.MaxEdges, o.IdleTimeout)
	}
	if o.BackoffMin <= 0 || o.BackoffMax < o.BackoffMin {
		p.add("backoff %v..%v: want 0 < min <= max", o.BackoffMin, o.BackoffMax)
	}
	resolverProblem(&p, o.Resolver)
	return p.err()
}

// Hub is the hub side of the sync protocol: one session per edge (a
// goroutine each, started by the edge's first message), the edges'
// cursors, the op-log retention, and the broker link.
type Hub struct {
	opts     HubOptions
	log      *slog.Logger
	m        *metrics
	cfg      hubConfig
	counters linkCounters
	running  atomic.Bool

	link atomic.Pointer[linkBox]

	mu       sync.Mutex
	sessions map[string]*hubSession
	records  map[string]edgeRecord // every known edge's last flushed record
	online   map[string]bool       // edges' retained status
	meta     hubMeta
	index    logIndex
	tail     opTail   // the newest ops, decoded once for every session
	acked    []uint64 // pruneGrace's worth of acknowledged prune targets, one per maintain

	// mergeMu: a FullSync merge holds it exclusively for its whole length;
	// an export holds it shared until its snapshot exists, so a snapshot
	// never contains half a merge, and its generation is exact.
	mergeMu sync.RWMutex
	regMu   sync.Mutex // the known-edges registry record
	// encoders are shared by the sessions: an Encoder holds a 136 KiB LZ4
	// table and buffers as large as the largest message it encoded, and a
	// session needs one only while it encodes.
	encoders sync.Pool
	wg       sync.WaitGroup
	ctx      context.Context
}

type linkBox struct{ l link }

// NewHub checks the options and returns a Hub.
func NewHub(opts HubOptions) (*Hub, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	h := &Hub{
		opts: opts,
		log:  opts.Logger.With("component", "syncer", "role", "hub"),
		m:    newMetrics(opts.Registerer),
		cfg: hubConfig{Node: opts.NodeID, Window: opts.Window, AckTimeout: opts.AckTimeout,
			MergeTimeout: opts.MergeTimeout, Resolver: opts.Resolver.Digest(), MaxSkew: opts.MaxClockSkew, RangeEvery: time.Second},
		sessions: map[string]*hubSession{},
		records:  map[string]edgeRecord{},
		online:   map[string]bool{},
	}
	return h, nil
}

// Close unregisters the metrics. Call it after Run returned.
func (h *Hub) Close() { h.m.unregister() }

func (h *Hub) now() time.Time { return h.opts.Clock() }

// Run serves edges until ctx ends; it returns nil then, or the error that
// prevented it from starting.
func (h *Hub) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer h.running.Store(false)
	if err := h.load(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	h.mu.Lock()
	h.ctx = ctx
	h.mu.Unlock()
	if err := h.index.catchUp(ctx, h.opts.Store, h.now()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("syncer: index the op log: %w", err)
	}
	h.tail.reset(h.opts.Store.DurableSeq(), tailBytes)
	h.log.Info("hub started", "node", h.opts.NodeID, "broker", h.opts.BrokerURL, "edges", len(h.records),
		"log_oldest", h.opts.Store.OldestSeq(), "log_last", h.opts.Store.LastSeq(), "state_gen", h.meta.StateGen)
	h.wg.Add(1)
	go h.linkLoop(ctx)
	tick := time.NewTicker(h.opts.maintain)
	defer tick.Stop()
	durable := h.opts.Store.DurableChanged()
	// Durable-watermark wake-ups of the sessions are coalesced: at most one
	// per wakeEvery, so a burst of commits costs each session one read.
	const wakeEvery = 5 * time.Millisecond
	coalesce := time.NewTimer(time.Hour)
	coalesce.Stop()
	var lastWake time.Time
	pending := false
	for {
		select {
		case <-ctx.Done():
			h.wg.Wait() // sessions flush their records as they stop
			h.log.Info("hub stopped")
			return nil
		case <-durable:
			durable = h.opts.Store.DurableChanged()
			if since := time.Since(lastWake); since >= wakeEvery {
				lastWake = time.Now()
				h.fillTail(ctx)
				h.wakeAll("")
			} else if !pending {
				pending = true
				coalesce.Reset(wakeEvery - since)
			}
		case <-coalesce.C:
			pending = false
			lastWake = time.Now()
			h.fillTail(ctx)
			h.wakeAll("")
		case <-tick.C:
			h.maintain(ctx)
		}
	}
}

// load reads the hub's identity, state generation and known edges.
func (h *Hub) load(ctx context.Context) error {
	st := h.opts.Store
	found, err := loadState(ctx, st, keyHubMeta, &h.meta)
	if err != nil {
		return err
	}
	if !found {
		h.meta = hubMeta{Inc: newIncarnation()}
		if err := st.SetSyncState(ctx, keyHubMeta, h.meta.marshal()); err != nil {
			return fmt.Errorf("syncer: write hub meta: %w", err)
		}
		h.log.Info("new hub incarnation", "inc", h.meta.Inc)
	}
	raw, err := st.SyncState(ctx, keyHubEdges)
	var names []string
	if err == nil {
		if names, err = unmarshalNames(raw); err != nil {
			return fmt.Errorf("syncer: %s: %w", keyHubEdges, err)
		}
	}
	for _, n := range names {
		var r edgeRecord
		if _, err := loadState(ctx, st, keyHubEdge(n), &r); err != nil {
			return err
		}
		h.records[n] = r
	}
	return nil
}

// register adds node to the durable registry of known edges.
func (h *Hub) register(ctx context.Context, node string) error {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.mu.Lock()
	if _, known := h.records[node]; known {
		// Every session starts here: a known edge costs nothing (the
		// names below are every edge's, under the lock dispatch needs).
		h.mu.Unlock()
		return nil
	}
	h.records[node] = edgeRecord{}
	names := make([]string, 0, len(h.records))
	for n := range h.records {
		names = append(names, n)
	}
	h.mu.Unlock()
	slices.Sort(names)
	return h.opts.Store.SetSyncState(ctx, keyHubEdges, marshalNames(names))
}

// info reads the hub state a session needs; withEdge adds the context
// figures of node (at Hello).
func (h *Hub) info(node string, withEdge bool) hubInfo {
	st := h.opts.Store
	h.mu.Lock()
	i := hubInfo{Inc: h.meta.Inc, StateGen: h.meta.StateGen}
	h.mu.Unlock()
	i.LastSeq, i.Durable, i.Oldest = st.LastSeq(), st.DurableSeq(), st.OldestSeq()
	i.Clock = h.now().UnixMilli()
	if withEdge {
		i.EdgeHas, i.EdgeMax = st.Seen(node)
	}
	return i
}

// edgeHas is the hub's contiguous counter of actor's dots (an ack's).
func (h *Hub) edgeHas(actor string) uint64 {
	n, _ := h.opts.Store.Seen(actor)
	return n
}

// snapshotGuard keeps merges out of an export's snapshot and returns the
// state generation the snapshot contains.
func (h *Hub) snapshotGuard() (uint64, func()) {
	h.mergeMu.RLock()
	h.mu.Lock()
	gen := h.meta.StateGen
	h.mu.Unlock()
	return gen, h.mergeMu.RUnlock
}

// bumpGen starts a FullSync merge (mergeMu held): the new generation is
// durable before the merge writes anything, so a crash mid-merge still
// sends the other edges full state.
func (h *Hub) bumpGen(ctx context.Context) (prev, next uint64, err error) {
	h.mu.Lock()
	m := h.meta
	m.StateGen++
	h.mu.Unlock()
	if err := h.opts.Store.SetSyncState(ctx, keyHubMeta, m.marshal()); err != nil {
		return 0, 0, err
	}
	h.mu.Lock()
	h.meta = m
	h.mu.Unlock()
	return m.StateGen - 1, m.StateGen, nil
}

// fillTail reads the new durable ops into the tail (sessions read the
// store directly when it fails).
func (h *Hub) fillTail(ctx context.Context) {
	if err := h.tail.fill(ctx, h.opts.Store); err != nil && ctx.Err() == nil {
		h.log.Warn("reading new ops for the sessions failed", "err", err)
	}
}

// wakeAll tells every session (but except) that the hub's state moved.
func (h *Hub) wakeAll(except string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n, s := range h.sessions {
		if n != except {
			s.poke()
		}
	}
}

// encode encodes m into a new slice (paho keeps the payload until the
// broker acknowledges it).
func (h *Hub) encode(m Message) []byte {
	e, _ := h.encoders.Get().(*Encoder)
	if e == nil {
		e = &Encoder{Threshold: h.opts.CompressThreshold}
	}
	payload := append([]byte(nil), e.Encode(m)...)
	h.encoders.Put(e)
	return payload
}

func (h *Hub) publish(topic string, payload []byte) error {
	b := h.link.Load()
	if b == nil {
		return errNoLink
	}
	return b.l.Publish(topic, payload, false)
}

// linkLoop keeps the broker connection up (backoff with full jitter).
func (h *Hub) linkLoop(ctx context.Context) {
	defer h.wg.Done()
	rnd := rand.New(rand.NewPCG(uint64(h.now().UnixNano()), 7))
	p := h.opts.TopicPrefix
	attempts, dials := 0, 0
	for ctx.Err() == nil {
		lost := make(chan error, 1)
		l, err := h.opts.dial(ctx, linkConfig{
			URL: h.opts.BrokerURL, TLS: h.opts.TLS, Username: h.opts.Username, Password: h.opts.Password,
			ClientID: "ferrite-hub-" + h.opts.NodeID, StatusTopic: statusTopic(p, h.opts.NodeID),
			Subscribe: []string{upTopic(p, "+"), statusTopic(p, "+")},
			KeepAlive: h.opts.KeepAlive, ConnectTimeout: h.opts.ConnectTimeout, WriteTimeout: h.opts.AckTimeout,
			Counters: &h.counters, OnMessage: h.dispatch,
			OnLost: func(err error) {
				select {
				case lost <- err:
				default:
				}
			},
		})
		if err != nil {
			attempts++
			d := backoff(rnd, h.opts.BackoffMin, h.opts.BackoffMax, attempts)
			h.log.Warn("broker unreachable", "err", err, "retry_in", d)
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			continue
		}
		attempts = 0
		if dials++; dials > 1 {
			h.m.reconnects.Inc()
		}
		h.link.Store(&linkBox{l: l})
		h.m.connected.Set(1)
		h.log.Info("connected to the broker", "url", h.opts.BrokerURL)
		select {
		case err := <-lost:
			h.log.Warn("broker connection lost", "err", err)
			h.link.Store(nil)
			h.m.connected.Set(0)
			l.Close(false)
		case <-ctx.Done():
			h.link.Store(nil)
			l.Close(true)
			h.m.connected.Set(0)
		}
	}
}

// dispatch routes a message from the broker (paho's goroutine: never
// blocks).
func (h *Hub) dispatch(in inbound) {
	p := h.opts.TopicPrefix
	rest, ok := strings.CutPrefix(in.topic, p+"/")
	if !ok {
		return
	}
	if node, ok := strings.CutPrefix(rest, "status/"); ok {
		h.mu.Lock()
		h.online[node] = string(in.payload) == statusOnline
		h.mu.Unlock()
		return
	}
	node, ok := strings.CutPrefix(rest, "sync/")
	if !ok {
		return
	}
	node, ok = strings.CutSuffix(node, "/up")
	if !ok || validNodeID(node) != nil || node == h.opts.NodeID {
		return
	}
	h.mu.Lock()
	s := h.sessions[node]
	if s == nil && h.ctx != nil && h.ctx.Err() == nil {
		if len(h.sessions) >= h.opts.MaxEdges {
			h.mu.Unlock()
			h.m.inboxDropped.Inc()
			logBad.Do(func() { h.log.Warn("too many edges; message dropped", "edge", node, "max_edges", h.opts.MaxEdges) })
			return
		}
		s = h.startSession(node)
	}
	h.mu.Unlock()
	if s == nil {
		return
	}
	select {
	case s.inbox <- sessionMsg{payload: in.payload}:
	default:
		h.m.inboxDropped.Inc()
	}
}

// pruneGrace is how many maintain ticks (seconds) an acknowledged op stays
// in the hub's log before it is pruned.
const pruneGrace = 10

// maintain runs every second: index new ops, prune the log, flush state.
func (h *Hub) maintain(ctx context.Context) {
	st := h.opts.Store
	now := h.now()
	if err := h.index.catchUp(ctx, st, now); err != nil {
		h.log.Error("indexing the op log failed", "err", err)
		return
	}
	h.mu.Lock()
	recs := make([]edgeRecord, 0, len(h.records))
	for _, r := range h.records {
		recs = append(recs, r)
	}
	gen := h.meta.StateGen
	h.m.edges.Set(float64(len(h.sessions)))
	h.mu.Unlock()
	floor := h.index.floor(now, h.opts.RetentionBytes, h.opts.RetentionAge)
	oldest := st.OldestSeq()
	// What every edge acknowledged is pruned pruneGrace later: an edge
	// persists its down cursor lazily (about a second after it acks), so
	// an edge killed right after an ack comes back with a slightly older
	// cursor, and the ops it needs again must still be in the log or it
	// gets a whole FullSync (found by the sync audit: every kill -9 of an
	// edge cost one). The retention bounds apply at once.
	h.acked = append(h.acked, pruneTarget(recs, gen, oldest, st.DurableSeq(), 0))
	var acked uint64
	if len(h.acked) > pruneGrace {
		acked, h.acked = h.acked[0], h.acked[1:]
	}
	target := min(max(acked, floor), st.DurableSeq())
	if target >= oldest {
		if err := st.PruneOps(ctx, target); err != nil {
			h.log.Error("pruning the op log failed", "err", err)
		} else {
			h.m.pruned.Add(float64(target - oldest + 1))
			h.index.prunedThrough(target)
			if target == floor && floor > 0 {
				h.log.Info("op log pruned by retention; lagging edges will get full state", "upto", target)
			}
			h.wakeAll("")
		}
	}
	h.m.logBytes.Set(float64(h.index.bytes()))
}
