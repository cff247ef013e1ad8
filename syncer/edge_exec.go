package syncer

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferrite-edge/ferrite/store"
	"golang.org/x/time/rate"
)

// Bad input from peers is logged at most every 10 seconds.
var logBad = rate.Sometimes{Interval: 10 * time.Second}

// ownOps selects the ops after after that this edge sends: its data
// directory's own writes (store.Store.OwnDot: its actor's, and the ones it
// made under an actor it retired), not the ones it received.
func ownOps(st Store, after uint64, limit, maxBytes int) store.OpsQuery {
	return store.OpsQuery{After: after, Limit: limit, MaxBytes: maxBytes,
		Filter: func(op *store.Op) bool { return st.OwnDot(op.Dot) }}
}

// exec runs the core's actions until it has none left (each result is
// fed back and may queue more).
func (r *edgeRun) exec(ctx context.Context) {
	for {
		acts := r.core.take()
		if len(acts) == 0 {
			break
		}
		for _, a := range acts {
			r.do(ctx, a)
		}
	}
	r.queue.ackThrough(r.core.st.UpAcked)
	r.checkWaiters()
}

func (r *edgeRun) do(ctx context.Context, a action) {
	now := r.now()
	switch a := a.(type) {
	case actConnect:
		r.dial(ctx)
	case actDisconnect:
		if r.link != nil {
			r.link.Close(false)
			r.link = nil
		}
		r.linkSeq++ // ignore the closed link's events
		r.dialing = false
		r.e.m.connected.Set(0)
	case actSend:
		r.send(now, a.msg)
	case actReadUp:
		ops, next, err := r.st.OpsSince(ctx, ownOps(r.st, a.after, r.opts.BatchOps, r.opts.BatchBytes))
		if err != nil {
			r.core.LinkFailed(now, localError{err})
			return
		}
		r.core.UpRead(now, a.after, next, ops)
	case actApply:
		r.apply(ctx, now, a.msg)
	case actPersist:
		r.dirty = true
		if a.urgent {
			r.flush(ctx)
		} else if r.flushAt.IsZero() {
			r.flushAt = now.Add(time.Second)
		}
	case actPrune:
		r.pruneTo = max(r.pruneTo, a.upTo)
		// Lazily: the state that allows it (the hub's ack, or an
		// overflow's need for a FullSync, written urgently) comes first.
		if r.flushAt.IsZero() {
			r.flushAt = now.Add(time.Second)
		}
	case actExport:
		r.exp.stop()
		r.exp = startExporter(ctx, &r.wg, r.st, a.snapshot,
			exportLimits{bytes: r.opts.BatchBytes, entries: r.opts.BatchOps}, nil)
	case actStopExport:
		r.exp.stop()
		r.exp = nil
	case actStage:
		err := r.stage.stage(ctx, a.msg)
		if err != nil {
			err = localError{err}
		}
		r.core.Staged(now, a.msg, err)
	case actMerge:
		r.merge(ctx, now, a.msg)
	case actRecord:
		if err := r.st.RecordConflicts(ctx, a.conflicts); err != nil {
			r.log.Error("recording reported conflicts failed", "err", err)
		}
	case actSynced:
		r.checkWaiters()
	case actLinkFailed:
		r.failWaiters(a.err)
	case actNote:
		r.log.Log(ctx, a.level, a.msg, a.args...)
	case actNewSession:
		r.newSession(ctx)
	default:
		r.log.Error("unknown core action", "action", a.String())
	}
	if hub := r.core.st.HubID; hub != "" && hub != r.subscribed && r.link != nil {
		if err := r.link.Subscribe(statusTopic(r.opts.TopicPrefix, hub)); err == nil {
			r.subscribed = hub
		}
	}
}

func (r *edgeRun) send(now time.Time, m Message) {
	if r.link == nil {
		r.core.LinkFailed(now, errNoLink)
		return
	}
	// paho keeps the payload until the broker acknowledges it: give it
	// its own copy of the encoder's buffer.
	payload := append([]byte(nil), r.enc.Encode(m)...)
	if err := r.link.Publish(upTopic(r.opts.TopicPrefix, r.opts.NodeID), payload, false); err != nil {
		r.core.LinkFailed(now, err)
		return
	}
	r.e.m.sent(m.Type(), len(payload))
	if r.log.Enabled(context.Background(), slog.LevelDebug) {
		r.log.Debug("sent", "msg", describe(m), "bytes", len(payload))
	}
	if d, ok := m.(*DeltaSync); ok {
		r.e.m.opsSent.Add(float64(len(d.Ops)))
	}
	if f, ok := m.(*FullSync); ok && f.Last {
		r.log.Debug("full state sent", "keys", f.Keys, "chunks", f.Chunks)
	}
}

// apply applies the hub's batch durably and tells the core.
func (r *edgeRun) apply(ctx context.Context, now time.Time, d *DeltaSync) {
	res, err := r.st.ApplyRemote(ctx, d.Ops)
	if err == nil {
		r.applied(now, d, res)
	} else {
		err = localError{err}
	}
	r.core.Applied(now, d, err)
}

// merge merges the hub's staged full state and tells the core.
func (r *edgeRun) merge(ctx context.Context, now time.Time, m *FullSync) {
	confl, err := r.stage.merge(ctx, m, nil)
	r.e.m.conflicts.Add(float64(len(confl)))
	if err != nil {
		err = localError{err}
	} else {
		r.e.m.fullSyncs.WithLabelValues("down").Inc()
	}
	r.core.Merged(now, m, err)
}

// applied records what applying the hub's ops did: counts, conflicts, and
// writers whose clocks run far ahead of ours.
func (r *edgeRun) applied(now time.Time, d *DeltaSync, res store.ApplyResult) {
	m := r.e.m
	m.opsApplied.Add(float64(res.Applied))
	m.opsSkipped.Add(float64(res.Skipped))
	m.conflicts.Add(float64(len(res.Conflicts)))
	noteSkew(now, d.Ops, r.opts.MaxClockSkew, r.skewed, m, r.log)
	if res.Rejected > 0 {
		r.log.Error("ops from the hub could not be decoded; skipped", "count", res.Rejected)
	}
}

// noteSkew reports the writers of ops stamped further ahead of now than
// maxSkew (once per node until its clock comes back).
func noteSkew(now time.Time, ops []store.Op, maxSkew time.Duration, seen map[string]time.Duration, m *metrics, log *slog.Logger) {
	for i := range ops {
		ahead := time.Duration(ops[i].Stamp.TS.Physical()-now.UnixMilli()) * time.Millisecond
		if ahead <= maxSkew {
			continue
		}
		m.clockSkew.Inc()
		node := store.ActorNode(ops[i].Stamp.Node)
		if _, known := seen[node]; !known {
			log.Warn("a node's clock runs far ahead: its writes win last-writer-wins conflicts until real time catches up",
				"node", node, "ahead", ahead.Round(time.Millisecond), "max_skew", maxSkew)
		}
		seen[node] = max(seen[node], ahead)
	}
}
