package syncer

import (
	"log/slog"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

// The edge core's up stream: its own ops as DeltaSync batches within the
// window, acknowledged by the hub's cursor; a FullSync of its state when
// ops were dropped (queue overflow) or the hub lacks ops it pruned.

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
