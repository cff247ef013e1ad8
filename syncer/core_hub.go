package syncer

import (
	"log/slog"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// The hub's state machine for one edge. Sessions start with the edge's
// Hello. Up: the edge's DeltaSync batches are applied in order (a batch
// must start at or before the session's up cursor), each acknowledged
// after its durable commit; a FullSync from the edge is staged chunk by
// chunk and merged at the end. Down: the hub's log after the edge's
// cursor, filtered to what the edge lacks, in windowed batches; a FullSync
// instead when the edge is behind the retained log, missed a state merge,
// or lost its own data.

// hubConfig is the part of HubOptions the core needs.
type hubConfig struct {
	Node       string
	Window     int
	AckTimeout time.Duration
	// MergeTimeout bounds the wait for an edge to merge a FullSync.
	MergeTimeout time.Duration
	Resolver     string
	// MaxSkew is the clock difference beyond which an edge is reported.
	MaxSkew time.Duration
	// RangeEvery spaces the range-only DeltaSyncs that move an edge's
	// cursor over ranges with nothing for it (its own ops): at most one per
	// RangeEvery while nothing else is in flight (default 1s).
	RangeEvery time.Duration
}

// edgeRecord is what the hub persists per edge (see state.go).
type edgeRecord struct {
	DownCursor uint64 // the edge has every op of the hub log up to here it needs
	HaveGen    uint64 // the state generation the edge has merged
	UpAcked    uint64 // the edge op-log seq last acknowledged
	LastSeen   int64  // unix ms
}

// hubInfo is the hub's state the core needs, read by the driver.
type hubInfo struct {
	Inc      uint64 // the hub's incarnation
	LastSeq  uint64
	Durable  uint64
	Oldest   uint64 // oldest seq in the op log
	StateGen uint64 // bumped by every FullSync merge (its changes are not in the log)
	EdgeHas  uint64 // highest contiguous counter of the edge's dots the hub holds
	EdgeMax  uint64 // highest counter of the edge's dots the hub holds
	Clock    int64  // wall clock, unix ms
}

type hubEdge struct {
	cfg   *hubConfig
	node  string
	actor string // the session's edge actor: its ops must carry it
	rec   edgeRecord
	out   []action

	session   uint64
	active    bool
	welcome   *Welcome // answered to the session's Hello (resent if it comes again)
	lastHeard time.Time

	upCursor uint64 // edge op-log seq applied in this session

	durable    uint64
	oldest     uint64
	sendCursor uint64 // reads continue after this seq
	sentUpto   uint64 // the last batch sent ends here: the next starts here
	maxSent    uint64 // the furthest any batch of this session reached (rewinds do not lower it)
	lastRange  time.Time
	reading    bool
	readStall  bool
	rewound    bool
	timeouts   int       // consecutive timeouts without hearing from the edge
	probing    bool      // a Hello was resent: one batch in flight until the edge acks
	holdUntil  time.Time // after timeouts: send nothing before this
	inflight   []flight
	needFull   bool
	fd         fullSend
	fdGen      uint64 // StateGen at the snapshot being sent
	snapIDs    uint64

	fu fullRecv

	clockOffset time.Duration
	rtt         time.Duration
	rttSamples  uint64 // rtt measurements so far (the run loop feeds a histogram)
	fullDowns   uint64
	fullUps     uint64
}

func newHubEdge(cfg *hubConfig, node string, rec edgeRecord) *hubEdge {
	return &hubEdge{cfg: cfg, node: node, actor: node, rec: rec}
}

func (e *hubEdge) emit(a action) { e.out = append(e.out, a) }

func (e *hubEdge) take() []action {
	out := e.out
	e.out = nil
	return out
}

func (e *hubEdge) note(level slog.Level, msg string, args ...any) {
	e.emit(actNote{level: level, msg: msg, args: append([]any{"edge", e.node}, args...)})
}

func (e *hubEdge) heard(now time.Time) {
	e.lastHeard = now
	e.rec.LastSeen = now.UnixMilli()
	e.timeouts = 0
	e.holdUntil = time.Time{}
}

// held reports whether sending waits after timeouts.
func (e *hubEdge) held(now time.Time) bool { return now.Before(e.holdUntil) }

// timedOut backs off after a timeout: the first resend goes at once, then
// 1, 3, 7... ack timeouts apart (at most a minute) while the edge says
// nothing: an edge that is gone costs little, an idle edge whose message
// was lost still gets it.
func (e *hubEdge) timedOut(now time.Time) {
	e.timeouts++
	n := min(e.timeouts-1, 6)
	if hold := min(e.cfg.AckTimeout*time.Duration(1<<n-1), time.Minute); hold > 0 {
		e.holdUntil = now.Add(hold)
	}
}

func (e *hubEdge) rewind() {
	e.inflight = nil
	e.sendCursor, e.sentUpto = e.rec.DownCursor, e.rec.DownCursor
	e.rewound = false
}

// Hello starts a session.
func (e *hubEdge) Hello(now time.Time, h *Hello, info hubInfo) {
	if h.Session < e.session {
		return // an older session's Hello
	}
	if h.Session == e.session && e.active {
		// A resent Hello: the edge did not get Welcome (lost), so it also
		// dropped what followed. Answer again and restart the streams from
		// what it acknowledged.
		e.heard(now)
		e.emit(actSend{msg: e.welcome})
		e.rewind()
		e.probing = true
		if e.fd.active {
			e.emit(actStopExport{})
			e.fd = fullSend{}
			e.needFull = true
		}
		e.pumpDown(now)
		return
	}
	e.heard(now)
	e.probing = false
	if e.fd.active {
		e.emit(actStopExport{})
	}
	e.session, e.active = h.Session, true
	e.actor = h.ActorName()
	e.fd, e.fu = fullSend{}, fullRecv{}
	e.inflight, e.reading, e.readStall, e.rewound = nil, false, false, false
	e.durable, e.oldest = info.Durable, info.Oldest

	cursor := h.DownSeq
	if h.HubInc != info.Inc {
		// The edge holds nothing of this hub's: its cursor points into
		// another hub's log, and the state generation the record credits
		// was merged into the replica it had before (a data directory it
		// lost, whose node id its new one shares). Merges are not in the
		// log: without a FullSync it would never get them.
		cursor = 0
		e.rec.HaveGen = 0
	}
	e.needFull = cursor > info.LastSeq || cursor+1 < info.Oldest ||
		e.rec.HaveGen < info.StateGen || info.EdgeMax > h.OwnCounter
	e.rec.DownCursor = cursor
	e.sendCursor, e.sentUpto, e.maxSent = cursor, cursor, cursor
	e.upCursor = h.UpAcked
	e.rec.UpAcked = h.UpAcked

	e.clockOffset = time.Duration(h.Clock-info.Clock) * time.Millisecond
	if off := e.clockOffset; off > e.cfg.MaxSkew || off < -e.cfg.MaxSkew {
		e.note(slog.LevelWarn, "edge clock differs from the hub's beyond the allowed skew; its writes win or lose by their HLC",
			"offset", off, "max_skew", e.cfg.MaxSkew)
	}
	if h.Resolver != e.cfg.Resolver {
		e.note(slog.LevelError, "edge conflict resolver differs from the hub's: replicas may diverge",
			"edge_resolver", h.Resolver, "resolver", e.cfg.Resolver)
	}
	if info.EdgeMax > h.OwnCounter {
		e.note(slog.LevelError, "edge was restored from an older copy: the hub holds writes of its actor beyond its counter; sending full state",
			"hub_has", info.EdgeMax, "edge_counter", h.OwnCounter)
	}
	e.welcome = &Welcome{
		Session: e.session, Hub: e.cfg.Node, HubInc: info.Inc, FullDown: e.needFull,
		Resolver: e.cfg.Resolver, HubHas: info.EdgeHas, DownSeq: cursor,
		OldestSeq: info.Oldest, Clock: info.Clock,
	}
	e.emit(actSend{msg: e.welcome})
	e.emit(actPersist{})
	e.pumpDown(now)
}

// Receive handles a message from the edge (not Hello).
func (e *hubEdge) Receive(now time.Time, m Message) {
	if !e.active || m.SessionID() != e.session {
		if m.SessionID() > e.session || !e.active {
			// A session this hub does not know (it restarted): ask for a Hello.
			e.emit(actSend{msg: &Ack{Session: m.SessionID(), Stream: StreamDelta, Flags: AckHello}})
		}
		return
	}
	e.heard(now)
	e.probing = false
	switch m := m.(type) {
	case *DeltaSync:
		e.onDelta(m)
	case *FullSync:
		stage, reply := e.fu.onChunk(m)
		if reply != nil {
			e.emit(actSend{msg: reply})
		}
		if stage {
			e.emit(actStage{msg: m})
		}
	case *Ack:
		e.onAck(now, m)
	default:
		e.note(slog.LevelWarn, "unexpected message from edge", "type", m.Type())
	}
}

func (e *hubEdge) onDelta(d *DeltaSync) {
	for i := range d.Ops {
		// The edge's own ops: of its actor, or of one its data directory
		// retired (restored from a backup), any incarnation of its node.
		if store.ActorNode(d.Ops[i].Dot.Node) != e.node {
			e.note(slog.LevelError, "edge sent an op of another origin; batch refused",
				"origin", d.Ops[i].Dot.Node, "actor", e.actor)
			return
		}
	}
	switch {
	case d.Upto <= e.upCursor:
		e.emit(actSend{msg: &Ack{Session: e.session, Stream: StreamDelta, Cursor: e.upCursor}})
	case d.After > e.upCursor:
		e.emit(actSend{msg: &Ack{Session: e.session, Stream: StreamDelta, Flags: AckGap, Cursor: e.upCursor}})
	default:
		e.emit(actApply{msg: d})
	}
}

// Applied reports that the edge's batch d is durable here; edgeHas is the
// hub's contiguous counter of the edge's dots afterwards.
func (e *hubEdge) Applied(now time.Time, d *DeltaSync, edgeHas uint64, err error) {
	if err != nil {
		e.note(slog.LevelError, "applying the edge's ops failed; not acknowledged", "err", err)
		return
	}
	if d.Session != e.session || !e.active {
		return
	}
	e.upCursor = max(e.upCursor, d.Upto)
	e.rec.UpAcked = e.upCursor
	e.emit(actSend{msg: &Ack{Session: e.session, Stream: StreamDelta, Cursor: e.upCursor, Counter: edgeHas}})
}

// Staged reports that a chunk of the edge's FullSync is stored durably.
func (e *hubEdge) Staged(now time.Time, m *FullSync, err error) {
	if err != nil {
		e.note(slog.LevelError, "staging the edge's full state failed", "err", err)
		e.fu.snapshot = 0
		return
	}
	if m.Session != e.session || !e.active {
		return
	}
	e.emit(actSend{msg: &Ack{Session: e.session, Stream: StreamFull, Snapshot: m.Snapshot, Chunk: m.Chunk}})
	if m.Last {
		e.emit(actMerge{msg: m})
	}
}

// Merged reports that the edge's FullSync ending with m is merged. The
// driver bumped the state generation from prevGen to newGen: an edge that
// had every earlier merge now has this one too (it is its own state).
func (e *hubEdge) Merged(now time.Time, m *FullSync, prevGen, newGen, edgeHas uint64, err error) {
	if err != nil {
		e.note(slog.LevelError, "merging the edge's full state failed", "err", err)
		e.fu.snapshot = 0
		return
	}
	if e.rec.HaveGen == prevGen {
		e.rec.HaveGen = newGen
	}
	e.fullUps++
	e.fu = fullRecv{merged: m.Snapshot, mergedAt: m.SnapSeq}
	e.emit(actPersist{urgent: true})
	if m.Session != e.session || !e.active {
		return
	}
	e.upCursor = max(e.upCursor, m.SnapSeq)
	e.rec.UpAcked = e.upCursor
	e.emit(actSend{msg: &Ack{Session: e.session, Stream: StreamFull, Flags: AckDone,
		Snapshot: m.Snapshot, Chunk: m.Chunk, Cursor: m.SnapSeq, Counter: edgeHas}})
}

// Report sends conflicts the edge's writes lost.
func (e *hubEdge) Report(conflicts []crdt.Conflict) {
	if !e.active || len(conflicts) == 0 {
		return
	}
	const per = 64
	for len(conflicts) > 0 {
		n := min(per, len(conflicts))
		e.emit(actSend{msg: &ConflictReport{Session: e.session, Conflicts: conflicts[:n]}})
		conflicts = conflicts[n:]
	}
}

// Update reports the hub's new state: durable seq, oldest retained seq,
// state generation.
func (e *hubEdge) Update(now time.Time, info hubInfo) {
	if info.Durable > e.durable {
		e.durable = info.Durable
		e.readStall = false
	}
	e.oldest = max(e.oldest, info.Oldest)
	if e.active && !e.fd.active && e.rec.HaveGen < info.StateGen {
		e.needFull = true
	}
	e.pumpDown(now)
}

func (e *hubEdge) pumpDown(now time.Time) {
	if !e.active || e.held(now) || e.fd.active {
		return
	}
	if e.sendCursor+1 < e.oldest {
		e.needFull = true // the log was pruned past what the edge has
	}
	if e.needFull {
		e.startFullDown()
		return
	}
	if !e.reading && !e.readStall && len(e.inflight) < e.window() && e.sendCursor < e.durable {
		e.reading = true
		e.emit(actReadDown{after: e.sendCursor})
	}
}

// window is how many down batches may be in flight: after a timeout or a
// resent Hello, one until the edge answers. Both mean a lost message or a
// slow link, and the hub cannot tell which: a slow edge (its Welcome or
// acks late, not lost) then gets one batch again, not the whole window,
// and a loaded hub whose edges resend their Hellos does not multiply its
// load; after a loss the edge answers the one batch and the window opens.
func (e *hubEdge) window() int {
	if e.timeouts > 0 || e.probing {
		return 1
	}
	return e.cfg.Window
}

// DownRead delivers the ops after after the edge lacks (next: where the
// read stopped).
func (e *hubEdge) DownRead(now time.Time, after, next uint64, ops []store.Op) {
	e.reading = false
	if !e.active || after != e.sendCursor || e.fd.active {
		e.pumpDown(now)
		return
	}
	if len(ops) == 0 {
		if next <= after {
			e.readStall = true
		}
		e.sendCursor = max(e.sendCursor, next)
		e.maybeRangeOnly(now)
		e.pumpDown(now)
		return
	}
	// The batch also covers the ranges skipped since the last one (nothing
	// there for the edge), so it follows the edge's cursor.
	e.sendBatch(now, next, ops)
	e.pumpDown(now)
}

func (e *hubEdge) sendBatch(now time.Time, next uint64, ops []store.Op) {
	e.emit(actSend{msg: &DeltaSync{Session: e.session, After: e.sentUpto, Upto: next, Ops: ops}})
	e.inflight = append(e.inflight, flight{after: e.sentUpto, upto: next, sent: now, deadline: now.Add(e.cfg.AckTimeout)})
	e.sendCursor, e.sentUpto = next, next
	e.maxSent = max(e.maxSent, next)
}

// maybeRangeOnly moves the edge's cursor over skipped ranges with an
// empty DeltaSync, at most once per RangeEvery and only when the stream
// is otherwise idle (so the edge's cursor, which its next Hello resumes
// from, does not lag behind the log's pruning).
func (e *hubEdge) maybeRangeOnly(now time.Time) {
	if e.sentUpto >= e.sendCursor || len(e.inflight) > 0 || e.reading || e.held(now) ||
		now.Before(e.lastRange.Add(e.cfg.RangeEvery)) {
		return
	}
	e.lastRange = now
	e.sendBatch(now, e.sendCursor, nil)
}

func (e *hubEdge) onAck(now time.Time, a *Ack) {
	if a.Stream == StreamFull {
		e.onFullAck(now, a)
		return
	}
	// Any cursor up to the furthest batch sent in this session is the
	// edge's: an ack that arrives after a timeout rewound the stream (a
	// slow link, not a lossy one) still counts, so what it covers is not
	// sent again.
	if a.Cursor > e.rec.DownCursor && a.Cursor <= e.maxSent {
		var sent time.Time
		e.inflight, sent = dropAcked(e.inflight, a.Cursor)
		if !sent.IsZero() {
			e.rtt = now.Sub(sent)
			e.rttSamples++
		}
		e.rec.DownCursor = a.Cursor
		if e.sendCursor < a.Cursor {
			e.sendCursor, e.sentUpto = a.Cursor, a.Cursor
		}
		e.rewound = false
		e.emit(actPersist{})
	}
	if a.Flags&AckGap != 0 && !e.rewound && a.Cursor <= e.sentUpto {
		e.inflight = nil
		e.sendCursor, e.sentUpto = a.Cursor, a.Cursor
		e.rewound = true
	}
	e.pumpDown(now)
}

func (e *hubEdge) startFullDown() {
	e.snapIDs++
	e.fd = fullSend{active: true, snapshot: e.snapIDs}
	e.inflight = nil
	e.emit(actExport{snapshot: e.fd.snapshot})
}

// WantChunk reports whether the core takes the next FullSync chunk now.
func (e *hubEdge) WantChunk() bool {
	return e.active && e.fd.active && !e.fd.last && len(e.fd.deadlines) < e.cfg.Window
}

// ChunkReady delivers the exporter's next chunk; gen is the state
// generation read before the snapshot was taken.
func (e *hubEdge) ChunkReady(now time.Time, ch *FullSync, gen uint64) {
	if !e.WantChunk() || ch.Snapshot != e.fd.snapshot || ch.Chunk != e.fd.sent {
		return
	}
	ch.Session = e.session
	e.emit(actSend{msg: ch})
	e.fd.sent++
	e.fd.deadlines = append(e.fd.deadlines, now.Add(e.cfg.AckTimeout))
	if ch.Last {
		e.fd.last = true
		e.fd.snapSeq = ch.SnapSeq
		e.fdGen = gen
	}
}

// ExportFailed reports that the snapshot could not be read.
func (e *hubEdge) ExportFailed(now time.Time, snapshot uint64, err error) {
	if !e.fd.active || snapshot != e.fd.snapshot {
		return
	}
	e.note(slog.LevelError, "exporting full state failed", "err", err)
	e.fd = fullSend{}
	e.needFull = true
	e.timedOut(now)
}

func (e *hubEdge) onFullAck(now time.Time, a *Ack) {
	if !e.fd.active || a.Snapshot != e.fd.snapshot {
		return
	}
	if a.Flags&AckGap != 0 {
		e.emit(actStopExport{})
		e.fd = fullSend{}
		e.needFull = true
		e.pumpDown(now)
		return
	}
	unacked := e.fd.sent - uint64(len(e.fd.deadlines))
	for len(e.fd.deadlines) > 0 && unacked <= a.Chunk {
		e.fd.deadlines = e.fd.deadlines[1:]
		unacked++
	}
	if e.fd.last && len(e.fd.deadlines) == 0 && e.fd.doneBy.IsZero() {
		e.fd.doneBy = now.Add(e.cfg.MergeTimeout)
	}
	if a.Flags&AckDone == 0 || !e.fd.last {
		return
	}
	e.rec.DownCursor = max(e.rec.DownCursor, e.fd.snapSeq)
	e.rec.HaveGen = max(e.rec.HaveGen, e.fdGen)
	e.fd = fullSend{}
	e.needFull = false
	e.fullDowns++
	e.sendCursor, e.sentUpto = e.rec.DownCursor, e.rec.DownCursor
	e.maxSent = max(e.maxSent, e.rec.DownCursor)
	e.emit(actPersist{urgent: true})
	e.pumpDown(now)
}

// Tick handles timeouts: unacknowledged batches are resent from the
// acknowledged cursor, an unacknowledged FullSync restarts, with backoff
// while the edge says nothing.
func (e *hubEdge) Tick(now time.Time) {
	if !e.active {
		return
	}
	if !e.holdUntil.IsZero() && !e.held(now) {
		e.holdUntil = time.Time{}
	}
	if len(e.inflight) > 0 && !now.Before(e.inflight[0].deadline) {
		e.rewind()
		e.timedOut(now)
	}
	if d := e.fd.deadline(); e.fd.active && !d.IsZero() && !now.Before(d) {
		e.emit(actStopExport{})
		e.fd = fullSend{}
		e.needFull = true
		e.timedOut(now)
	}
	e.maybeRangeOnly(now)
	e.pumpDown(now)
}

// NextDeadline is when Tick next has something to do (zero: nothing).
func (e *hubEdge) NextDeadline() time.Time {
	if !e.active {
		return time.Time{}
	}
	d := oldestDeadline(e.inflight)
	if e.fd.active {
		d = earliest(d, e.fd.deadline())
	}
	if e.sentUpto < e.sendCursor && len(e.inflight) == 0 {
		d = earliest(d, e.lastRange.Add(e.cfg.RangeEvery))
	}
	if !e.holdUntil.IsZero() {
		d = earliest(d, e.holdUntil)
	}
	return d
}

// Idle reports whether nothing is in flight in either direction.
func (e *hubEdge) Idle() bool {
	return len(e.inflight) == 0 && !e.fd.active && e.fu.snapshot == 0 && !e.reading && e.sentUpto >= e.sendCursor
}

// pruneTarget returns the op-log seq up to which a hub may prune: every
// edge that still reads deltas from the log (it has every state merge and
// its cursor is inside the log) has acknowledged it; retentionFloor (from
// the byte and age bounds) overrides lagging edges, which then get a
// FullSync. Never beyond durable.
func pruneTarget(recs []edgeRecord, stateGen, oldest, durable, retentionFloor uint64) uint64 {
	target := durable
	for _, r := range recs {
		if r.HaveGen < stateGen || r.DownCursor+1 < oldest {
			continue // will get a FullSync whatever the log holds
		}
		target = min(target, r.DownCursor)
	}
	return min(max(target, retentionFloor), durable)
}
