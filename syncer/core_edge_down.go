package syncer

import (
	"log/slog"
	"time"
)

// The edge core's down stream: the hub's DeltaSync batches, applied in the
// hub's log order, and its FullSync chunks, staged then merged.

func (c *edgeCore) onDelta(now time.Time, d *DeltaSync) {
	if d.Session != c.session || c.phase != edgeActive {
		return
	}
	switch {
	case d.Upto <= c.st.DownSeq:
		c.emit(actSend{msg: &Ack{Session: c.session, Stream: StreamDelta, Cursor: c.st.DownSeq}})
	case d.After > c.st.DownSeq:
		c.emit(actSend{msg: &Ack{Session: c.session, Stream: StreamDelta, Flags: AckGap, Cursor: c.st.DownSeq}})
	case len(d.Ops) == 0:
		c.Applied(now, d, nil) // a range with nothing for us: move the cursor
	default:
		c.emit(actApply{msg: d})
	}
}

// Applied reports that the ops of d are durable here (or failed).
func (c *edgeCore) Applied(now time.Time, d *DeltaSync, err error) {
	if err != nil {
		c.fail(now, err)
		return
	}
	c.st.DownSeq = max(c.st.DownSeq, d.Upto)
	c.emit(actPersist{})
	if d.Session == c.session && c.phase == edgeActive {
		c.emit(actSend{msg: &Ack{Session: c.session, Stream: StreamDelta, Cursor: c.st.DownSeq}})
	}
}

func (c *edgeCore) onFullSync(now time.Time, m *FullSync) {
	if m.Session != c.session || c.phase != edgeActive {
		return
	}
	stage, reply := c.fd.onChunk(m)
	if reply != nil {
		c.emit(actSend{msg: reply})
	}
	if stage {
		c.emit(actStage{msg: m})
	}
}

// Staged reports that a FullSync chunk is stored durably.
func (c *edgeCore) Staged(now time.Time, m *FullSync, err error) {
	if err != nil {
		c.fail(now, err)
		return
	}
	if m.Session != c.session || c.phase != edgeActive {
		return
	}
	c.emit(actSend{msg: &Ack{Session: c.session, Stream: StreamFull, Snapshot: m.Snapshot, Chunk: m.Chunk}})
	if m.Last {
		c.emit(actMerge{msg: m})
	}
}

// Merged reports that the staged snapshot ending with m is merged.
func (c *edgeCore) Merged(now time.Time, m *FullSync, err error) {
	if err != nil {
		c.fail(now, err)
		return
	}
	c.st.DownSeq = max(c.st.DownSeq, m.SnapSeq)
	c.fd = fullRecv{merged: m.Snapshot, mergedAt: m.SnapSeq}
	c.fullDowns++
	c.emit(actPersist{urgent: true})
	c.note(slog.LevelInfo, "merged the hub's full state", "snapseq", m.SnapSeq, "keys", m.Keys)
	if m.Session == c.session && c.phase == edgeActive {
		c.emit(actSend{msg: &Ack{Session: c.session, Stream: StreamFull, Flags: AckDone,
			Snapshot: m.Snapshot, Chunk: m.Chunk, Cursor: m.SnapSeq}})
	}
}
