package syncer

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
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

// pumpUp sends what the up stream may send now.
func (c *edgeCore) pumpUp(now time.Time) {
	if c.phase != edgeActive || !c.roundOpen {
		return
	}
	if c.st.NeedFullUp {
		if !c.fu.active {
			c.startFullUp()
		}
		return
	}
	if c.fu.active {
		return
	}
	if !c.reading && !c.readStall && len(c.inflight) < c.cfg.Window && c.sendCursor < min(c.target, c.durable) {
		c.reading = true
		c.emit(actReadUp{after: c.sendCursor})
		return
	}
	c.maybeRoundDone(now)
}

func (c *edgeCore) maybeRoundDone(now time.Time) {
	if c.phase != edgeActive || !c.roundOpen || c.st.NeedFullUp || c.fu.active || c.reading ||
		len(c.inflight) > 0 || c.sendCursor < min(c.target, c.durable) {
		return
	}
	c.roundOpen = false
	c.st.LastSync = now.UnixMilli()
	c.emit(actPersist{})
	c.emit(actSynced{})
}

// UpRead delivers the own ops read after after (next: where the read
// stopped; ops may be empty when the range held only others' ops).
func (c *edgeCore) UpRead(now time.Time, after, next uint64, ops []store.Op) {
	c.reading = false
	if c.phase != edgeActive || after != c.sendCursor || c.st.NeedFullUp || c.fu.active {
		c.pumpUp(now)
		return
	}
	if len(ops) == 0 {
		if next <= after {
			c.readStall = true
		}
		c.sendCursor = max(c.sendCursor, next)
		if len(c.inflight) == 0 && c.sendCursor > c.st.UpAcked {
			// Nothing of ours in (UpAcked, sendCursor]: acknowledged by
			// definition.
			c.advanceUpAcked(c.sendCursor)
		}
		c.pumpUp(now)
		return
	}
	// The batch also covers the ranges skipped since the last one (they
	// hold no op of ours), so it follows the hub's cursor.
	c.emit(actSend{msg: &DeltaSync{Session: c.session, After: c.sentUpto, Upto: next, Ops: ops}})
	c.inflight = append(c.inflight, flight{after: c.sentUpto, upto: next, sent: now, deadline: now.Add(c.cfg.AckTimeout)})
	c.sendCursor, c.sentUpto = next, next
	c.pumpUp(now)
}

func (c *edgeCore) advanceUpAcked(seq uint64) {
	c.st.UpAcked = seq
	c.emit(actPersist{})
	c.emit(actPrune{upTo: seq})
}

func (c *edgeCore) onAck(now time.Time, a *Ack) {
	if a.Session != c.session || (c.phase != edgeActive && c.phase != edgeHello) {
		return
	}
	if a.Flags&AckHello != 0 {
		c.note(slog.LevelInfo, "hub does not know this session; starting a new one")
		c.emit(actNewSession{})
		return
	}
	if c.phase != edgeActive {
		return
	}
	if a.Stream == StreamFull {
		c.onFullAck(now, a)
		return
	}
	if a.Cursor > c.st.UpAcked && a.Cursor <= c.sendCursor {
		var sent time.Time
		c.inflight, sent = dropAcked(c.inflight, a.Cursor)
		if !sent.IsZero() {
			c.rtt = now.Sub(sent)
			c.rttSamples++
		}
		c.advanceUpAcked(a.Cursor)
		c.rewound = false
	}
	if a.Flags&AckGap != 0 && !c.rewound && a.Cursor <= c.sentUpto {
		// Resend from the hub's cursor (ops up to UpAcked that are gone
		// from the log were acknowledged, so nothing of ours is missed).
		c.note(slog.LevelDebug, "hub saw a gap; resending", "from", a.Cursor)
		c.inflight = nil
		c.sendCursor, c.sentUpto = a.Cursor, a.Cursor
		c.rewound = true
	}
	if len(c.inflight) == 0 && !c.reading && c.sendCursor > c.st.UpAcked {
		// Everything sent is acknowledged and the rest of what was read
		// held nothing of ours.
		c.advanceUpAcked(c.sendCursor)
	}
	c.pumpUp(now)
}

// Overflow reports that the driver dropped n own ops up to upTo because
// the offline queue overflowed: persist the need for a FullSync first,
// then prune.
func (c *edgeCore) Overflow(now time.Time, n, upTo uint64) {
	c.st.NeedFullUp = true
	c.st.Dropped += n
	c.st.DropUpTo = max(c.st.DropUpTo, upTo)
	c.emit(actPersist{urgent: true})
	c.emit(actPrune{upTo: upTo})
	c.note(slog.LevelWarn, "offline queue full: dropped the oldest ops; the next sync sends full state",
		"dropped", n, "upto", upTo, "dropped_total", c.st.Dropped)
	c.pumpUp(now)
}

// NoHub reports that an edge without a hub dropped its own ops up to upTo
// from the queue: they are pruned at once, and should a hub be configured
// later, the first sync sends full state.
func (c *edgeCore) NoHub(upTo uint64) {
	if !c.st.NeedFullUp {
		c.st.NeedFullUp = true
		c.emit(actPersist{urgent: true})
	}
	c.st.DropUpTo = max(c.st.DropUpTo, upTo)
	c.emit(actPrune{upTo: upTo})
}

func (c *edgeCore) startFullUp() {
	c.snapSeqGen++
	c.fu = fullSend{active: true, snapshot: c.snapSeqGen}
	c.emit(actExport{snapshot: c.fu.snapshot})
}

// WantChunk reports whether the core takes the next FullSync chunk now.
func (c *edgeCore) WantChunk() bool {
	return c.phase == edgeActive && c.fu.active && !c.fu.last && len(c.fu.deadlines) < c.cfg.Window
}

// ChunkReady delivers the exporter's next chunk.
func (c *edgeCore) ChunkReady(now time.Time, ch *FullSync) {
	if !c.WantChunk() || ch.Snapshot != c.fu.snapshot || ch.Chunk != c.fu.sent {
		return
	}
	ch.Session = c.session
	c.emit(actSend{msg: ch})
	c.fu.sent++
	c.fu.deadlines = append(c.fu.deadlines, now.Add(c.cfg.AckTimeout))
	if ch.Last {
		c.fu.last = true
		c.fu.snapSeq = ch.SnapSeq
	}
}

// ExportFailed reports that the exporter could not read the snapshot.
func (c *edgeCore) ExportFailed(now time.Time, snapshot uint64, err error) {
	if c.fu.active && snapshot == c.fu.snapshot {
		c.fail(now, err)
	}
}

func (c *edgeCore) onFullAck(now time.Time, a *Ack) {
	if !c.fu.active || a.Snapshot != c.fu.snapshot {
		return
	}
	if a.Flags&AckGap != 0 {
		c.note(slog.LevelInfo, "hub lost a FullSync chunk; restarting the snapshot")
		c.emit(actStopExport{})
		c.startFullUp()
		return
	}
	unacked := c.fu.sent - uint64(len(c.fu.deadlines))
	for len(c.fu.deadlines) > 0 && unacked <= a.Chunk {
		c.fu.deadlines = c.fu.deadlines[1:]
		unacked++
	}
	c.fu.acked = max(c.fu.acked, min(a.Chunk+1, c.fu.sent))
	if c.fu.last && len(c.fu.deadlines) == 0 && c.fu.doneBy.IsZero() {
		c.fu.doneBy = now.Add(c.cfg.MergeTimeout)
	}
	if a.Flags&AckDone != 0 && c.fu.last {
		c.finishFullUp(now)
	}
}

func (c *edgeCore) finishFullUp(now time.Time) {
	snapSeq := c.fu.snapSeq
	c.fu = fullSend{}
	c.fullUps++
	c.st.NeedFullUp = c.st.DropUpTo > snapSeq // dropped again after the snapshot
	c.st.UpAcked = max(c.st.UpAcked, snapSeq)
	c.sendCursor, c.sentUpto = c.st.UpAcked, c.st.UpAcked
	c.inflight = nil
	c.emit(actPersist{urgent: true})
	c.emit(actPrune{upTo: c.st.UpAcked})
	c.note(slog.LevelInfo, "full state merged by the hub", "snapseq", snapSeq)
	c.pumpUp(now)
}
