package syncer

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

// The edge's session state machine.
//
//	offline ──retry time──▶ connecting ──LinkUp──▶ hello ──Welcome──▶ active
//	   ▲                        │                    │                  │
//	   └──── backoff ◀──────────┴── failure, ack timeout, lost link ◀───┘
//
// In the active phase two streams run independently: up (own ops as
// DeltaSync batches, or a FullSync when ops were dropped) and down (the
// hub's DeltaSync batches and FullSync chunks, applied in log order).

// edgeConfig is the part of Options the core needs.
type edgeConfig struct {
	Node         string
	Actor        string // the name of this edge's writes (store.Store.Actor)
	Role         crdt.Role
	Policy       Policy
	Interval     time.Duration
	Window       int
	AckTimeout   time.Duration
	MergeTimeout time.Duration
	BackoffMin   time.Duration
	BackoffMax   time.Duration
	Software     string
	Resolver     string
}

// edgeState is what the edge persists (see state.go).
type edgeState struct {
	HubID      string
	HubInc     uint64 // hub incarnation DownSeq refers to
	DownSeq    uint64 // last hub op-log seq applied here
	UpAcked    uint64 // own op-log seq up to which the hub acknowledged
	NeedFullUp bool   // own ops were dropped: send a FullSync
	DropUpTo   uint64 // highest op-log seq dropped by overflow
	Dropped    uint64 // ops dropped by overflow, ever
	LastSync   int64  // unix ms of the last completed sync round
}

type edgePhase uint8

const (
	edgeOffline edgePhase = iota
	edgeConnecting
	edgeHello
	edgeActive
)

func (p edgePhase) String() string {
	return [...]string{"offline", "connecting", "hello", "active"}[p]
}

// linkInfo is what the driver reads from the store for a new session.
type linkInfo struct {
	Session    uint64 // fresh and increasing (the store's HLC)
	OwnCounter uint64 // highest own dot counter
	FirstAvail uint64 // lowest own dot counter still in the op log (OwnCounter+1 if none)
	Durable    uint64 // durable op-log seq
	Clock      int64  // wall clock, unix ms
	Context    *crdt.Context
}

type edgeCore struct {
	cfg edgeConfig
	rnd *rand.Rand
	st  edgeState
	out []action

	phase    edgePhase
	session  uint64
	link     linkInfo
	attempts int
	retryAt  time.Time
	helloBy  time.Time // resend Hello then
	helloAt  time.Time // the session's first Hello
	hello    *Hello
	hellos   int  // Hellos sent in this session
	silent   bool // no Welcome within AckTimeout: waiters were failed

	// up stream
	durable    uint64
	sendCursor uint64 // reads continue after this seq
	sentUpto   uint64 // the last batch sent ends here: the next starts here
	reading    bool
	readStall  bool // the last read made no progress: wait for Durable
	rewound    bool // a gap rewind is in progress: ignore further gaps
	inflight   []flight
	target     uint64
	roundOpen  bool
	nextRound  time.Time
	lastRound  time.Time // when the last interval round was due
	fu         fullSend
	snapSeqGen uint64

	// down stream
	fd fullRecv

	// observations, for Status
	lastErr    error
	rtt        time.Duration
	rttSamples uint64 // rtt measurements so far (the run loop feeds a histogram)
	reconnects uint64
	fullUps    uint64
	fullDowns  uint64
	hubOffset  time.Duration // hub clock minus ours, from Welcome
}

func newEdgeCore(cfg edgeConfig, st edgeState, rnd *rand.Rand) *edgeCore {
	return &edgeCore{cfg: cfg, st: st, rnd: rnd}
}

func (c *edgeCore) emit(a action) { c.out = append(c.out, a) }

// take returns the queued actions and clears the queue.
func (c *edgeCore) take() []action {
	out := c.out
	c.out = nil
	return out
}

func (c *edgeCore) note(level slog.Level, msg string, args ...any) {
	c.emit(actNote{level: level, msg: msg, args: args})
}

// Start begins: connect at once, first round per policy.
func (c *edgeCore) Start(now time.Time, durable uint64) {
	c.durable = durable
	c.retryAt = now
	c.lastRound = now
	c.nextRound = now.Add(c.cfg.Interval)
	if c.cfg.Policy == PolicyImmediate {
		c.target = durable
		c.roundOpen = true
	}
	c.Tick(now)
}

// Tick advances time: connection retries, ack timeouts, periodic rounds.
func (c *edgeCore) Tick(now time.Time) {
	switch c.phase {
	case edgeOffline:
		if !now.Before(c.retryAt) {
			c.phase = edgeConnecting
			c.emit(actConnect{})
		}
	case edgeHello:
		if !now.Before(c.helloBy) {
			c.resendHello(now)
		}
	case edgeActive:
		if d := oldestDeadline(c.inflight); !d.IsZero() && !now.Before(d) {
			c.fail(now, ErrAckTimeout)
		} else if d := c.fu.deadline(); c.fu.active && !d.IsZero() && !now.Before(d) {
			c.fail(now, ErrAckTimeout)
		}
	}
	if p := c.cfg.Policy; (p == PolicyPeriodic || p == PolicyOpportunistic) && !now.Before(c.nextRound) {
		c.lastRound = now
		c.nextRound = now.Add(c.cfg.Interval)
		c.openRound(now, c.durable)
	}
}

// NextDeadline is when Tick next has something to do (zero: nothing).
func (c *edgeCore) NextDeadline() time.Time {
	var d time.Time
	switch c.phase {
	case edgeOffline:
		d = c.retryAt
	case edgeHello:
		d = c.helloBy
	case edgeActive:
		d = oldestDeadline(c.inflight)
		if c.fu.active {
			d = earliest(d, c.fu.deadline())
		}
	}
	if p := c.cfg.Policy; p == PolicyPeriodic || p == PolicyOpportunistic {
		d = earliest(d, c.nextRound)
	}
	return d
}

// SetInterval changes the sync interval (the resource monitor stretches
// it on a poor link or a low battery).
func (c *edgeCore) SetInterval(now time.Time, d time.Duration) {
	c.cfg.Interval = d
	c.nextRound = c.lastRound.Add(d)
	if c.nextRound.Before(now) {
		c.nextRound = now
	}
}

// SyncNow opens a round that ends when every own op up to target is
// acknowledged; offline, it connects now.
func (c *edgeCore) SyncNow(now time.Time, target uint64) {
	c.durable = max(c.durable, target)
	if c.phase == edgeOffline {
		c.retryAt = now
	}
	c.openRound(now, target)
	c.Tick(now)
	if c.phase == edgeHello && c.silent {
		c.emit(actLinkFailed{err: ErrHubSilent})
	}
}

// Durable reports that the store's durable watermark advanced.
func (c *edgeCore) Durable(now time.Time, seq uint64) {
	if seq <= c.durable {
		return
	}
	c.durable = seq
	c.readStall = false
	if c.cfg.Policy == PolicyImmediate {
		c.openRound(now, seq)
		return
	}
	c.pumpUp(now)
}

func (c *edgeCore) openRound(now time.Time, target uint64) {
	c.target = max(c.target, target)
	c.roundOpen = true
	c.pumpUp(now)
}

// LinkUp starts a session on a connected link (also used to start a new
// session on the same link when the hub asks for a Hello).
func (c *edgeCore) LinkUp(now time.Time, info linkInfo) {
	if c.phase == edgeOffline {
		return // the link failed meanwhile
	}
	c.resetStreams()
	c.phase = edgeHello
	c.link = info
	c.session = info.Session
	c.durable = max(c.durable, info.Durable)
	c.helloAt = now
	c.hellos, c.silent = 1, false
	c.helloBy = now.Add(c.helloDelay())
	c.hello = &Hello{
		Session: c.session, Node: c.cfg.Node, Actor: c.cfg.Actor, Role: c.cfg.Role, NeedFullUp: c.st.NeedFullUp,
		Software: c.cfg.Software, Resolver: c.cfg.Resolver, HubInc: c.st.HubInc,
		DownSeq: c.st.DownSeq, UpAcked: c.st.UpAcked, OwnCounter: info.OwnCounter,
		Clock: info.Clock, Context: info.Context,
	}
	c.emit(actSend{msg: c.hello})
}

// helloDelay is how long to wait for Welcome before resending Hello:
// BackoffMin, doubling per Hello up to BackoffMax. A lost Hello on a live
// link means the hub is not subscribed (down, restarting, or not started
// yet); resending a small Hello beats tearing the link down, and a hub
// that comes back announces itself (a live "online" status) to the edges
// that know it.
func (c *edgeCore) helloDelay() time.Duration {
	d := c.cfg.BackoffMin
	for i := 1; i < c.hellos && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, c.cfg.BackoffMax)
}

func (c *edgeCore) resendHello(now time.Time) {
	if !c.silent && now.Sub(c.helloAt) >= c.cfg.AckTimeout {
		c.silent = true
		c.lastErr = ErrHubSilent
		c.emit(actLinkFailed{err: ErrHubSilent})
		c.note(slog.LevelWarn, "the hub does not answer; retrying", "waited", now.Sub(c.helloAt))
	}
	c.hellos++
	c.helloBy = now.Add(c.helloDelay())
	c.emit(actSend{msg: c.hello})
}

// LinkFailed reports a failed connection attempt or a lost connection.
func (c *edgeCore) LinkFailed(now time.Time, err error) { c.fail(now, err) }

// fail drops the link and schedules a reconnection with backoff.
func (c *edgeCore) fail(now time.Time, err error) {
	if c.phase == edgeOffline {
		return
	}
	if c.phase != edgeConnecting {
		c.emit(actDisconnect{err: err})
	}
	c.phase = edgeOffline
	c.lastErr = err
	c.attempts++
	c.retryAt = now.Add(backoff(c.rnd, c.cfg.BackoffMin, c.cfg.BackoffMax, c.attempts))
	c.resetStreams()
	c.emit(actLinkFailed{err: err})
	c.note(slog.LevelWarn, "hub link down", "err", err, "retry_in", c.retryAt.Sub(now))
}

func (c *edgeCore) resetStreams() {
	c.inflight = nil
	c.reading = false
	c.rewound = false
	if c.fu.active {
		c.emit(actStopExport{})
	}
	c.fu = fullSend{}
	c.fd.snapshot = 0
}

// Receive handles a message from the hub.
func (c *edgeCore) Receive(now time.Time, m Message) {
	switch m := m.(type) {
	case *Welcome:
		c.onWelcome(now, m)
	case *Ack:
		c.onAck(now, m)
	case *DeltaSync:
		c.onDelta(now, m)
	case *FullSync:
		c.onFullSync(now, m)
	case *ConflictReport:
		if len(m.Conflicts) > 0 {
			c.emit(actRecord{conflicts: m.Conflicts})
		}
	default:
		c.note(slog.LevelWarn, "unexpected message from hub", "type", m.Type())
	}
}

// HubStatus reports a live (not retained) status publication of the hub:
// "online" means the hub (re)started and forgot our session.
func (c *edgeCore) HubStatus(now time.Time, online bool) {
	if online && (c.phase == edgeHello || c.phase == edgeActive) {
		c.note(slog.LevelInfo, "hub came back online; starting a new session")
		c.emit(actNewSession{})
	}
}

// actNewSession: gather linkInfo and call LinkUp (a new session on the
// same link).
type actNewSession struct{}

func (actNewSession) String() string { return "new-session" }

func (c *edgeCore) onWelcome(now time.Time, w *Welcome) {
	if c.phase != edgeHello || w.Session != c.session {
		return
	}
	if c.hellos == 1 {
		c.rtt = now.Sub(c.helloAt)
		c.rttSamples++
		c.hubOffset = time.Duration(w.Clock-c.link.Clock)*time.Millisecond - c.rtt/2
	}
	c.silent = false
	if w.Resolver != c.cfg.Resolver {
		c.note(slog.LevelError, "conflict resolver differs from the hub's: replicas may resolve conflicts differently and diverge",
			"hub", w.Hub, "hub_resolver", w.Resolver, "resolver", c.cfg.Resolver)
	}
	changed := false
	if w.HubInc != c.st.HubInc || w.Hub != c.st.HubID {
		if c.st.HubInc != 0 {
			c.note(slog.LevelWarn, "hub identity changed; resynchronising", "hub", w.Hub, "was", c.st.HubID)
		}
		c.st.HubID, c.st.HubInc = w.Hub, w.HubInc
		changed = true
	}
	if w.DownSeq != c.st.DownSeq {
		// The hub's log is the reference for the down cursor (a new hub
		// incarnation restarts it).
		c.st.DownSeq = w.DownSeq
		changed = true
	}
	if w.HubHas+1 < c.link.FirstAvail && !c.st.NeedFullUp {
		c.note(slog.LevelWarn, "hub lacks ops this edge no longer has; sending full state",
			"hub_has", w.HubHas, "oldest_own_op", c.link.FirstAvail)
		c.st.NeedFullUp = true
		changed = true
	}
	switch {
	case w.HubHas > c.link.OwnCounter && c.link.OwnCounter > 0:
		c.note(slog.LevelError, "hub knows writes of this node beyond its counter: the data directory was restored from an older copy and written to before this sync; those writes are lost and this replica may stay inconsistent: stop the node, delete its data directory and restart it (docs/OPERATIONS.md, Backup and restore)",
			"hub_has", w.HubHas, "counter", c.link.OwnCounter)
	case w.HubHas > c.link.OwnCounter:
		c.note(slog.LevelWarn, "hub knows writes of this node beyond its counter: the data directory was restored from an older copy; nothing was written since, the hub's state follows",
			"hub_has", w.HubHas, "counter", c.link.OwnCounter)
	}
	if changed {
		c.emit(actPersist{urgent: true})
	}
	c.phase = edgeActive
	c.attempts = 0
	c.lastErr = nil // the link works again: a past failure is no longer the status
	// Snapshot ids are only unique within a session (a restarted hub
	// numbers its snapshots from 1 again): forget the last merged one, or
	// a new snapshot with an old id would be acknowledged unmerged.
	c.fd = fullRecv{}
	c.sendCursor, c.sentUpto = c.st.UpAcked, c.st.UpAcked
	if p := c.cfg.Policy; p == PolicyImmediate || p == PolicyOpportunistic {
		c.openRound(now, c.durable)
		return
	}
	c.pumpUp(now)
}
