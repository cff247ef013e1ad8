package syncer

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// hubSession serves one edge: its goroutine owns the edge's core state
// (hubEdge), its exporter and its stager, so edges never wait for each
// other (their applies share the store's group commit).
type hubSession struct {
	h     *Hub
	node  string
	actor string // the edge's actor (its Hello's ActorName), for its dots
	core  *hubEdge
	inbox chan sessionMsg
	wake  chan struct{}

	filter     downFilter // what the edge had at Hello (hub_filter.go)
	exp        *exporter
	stage      stager
	dirty      bool
	flushAt    time.Time
	lastActive time.Time
	idleAt     time.Time // when to check next whether the session is idle
	skewed     map[string]time.Duration
	status     atomic.Pointer[EdgeStatus]
	rttSeen    uint64 // core.rttSamples already fed to the RTT histogram
}

// sessionMsg is a message from the edge, or conflicts to report to it.
type sessionMsg struct {
	payload   []byte
	conflicts []crdt.Conflict
}

// startSession creates and starts the session of node (h.mu held).
func (h *Hub) startSession(node string) *hubSession {
	rec := h.records[node]
	s := &hubSession{
		h: h, node: node, actor: node,
		core:   newHubEdge(&h.cfg, node, rec),
		inbox:  make(chan sessionMsg, 4*h.opts.Window+16),
		wake:   make(chan struct{}, 1),
		stage:  stager{st: h.opts.Store, prefix: "stage/up/" + node},
		skewed: map[string]time.Duration{},
	}
	s.lastActive = h.now()
	s.idleAt = s.lastActive.Add(h.opts.IdleTimeout)
	h.sessions[node] = s
	h.wg.Add(1)
	go s.run(h.ctx)
	return s
}

func (s *hubSession) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *hubSession) run(ctx context.Context) {
	defer s.h.wg.Done()
	h := s.h
	if err := h.register(ctx, s.node); err != nil && ctx.Err() == nil {
		h.log.Error("registering the edge failed", "edge", s.node, "err", err)
	}
	if err := s.stage.clear(ctx); err != nil && ctx.Err() == nil {
		h.log.Error("clearing staged state failed", "edge", s.node, "err", err)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer s.stop()
	for {
		s.exec(ctx)
		s.filter.acked(s.core.rec.DownCursor, s.node)
		s.publishStatus()
		if ctx.Err() != nil {
			return
		}
		var chunks <-chan exportChunk
		if s.exp != nil && s.core.WantChunk() {
			chunks = s.exp.ch
		}
		now := h.now()
		// Nothing else wakes a session: an idle one costs nothing, however
		// many edges are connected.
		resetTimer(timer, now, earliest(s.core.NextDeadline(), s.flushAt, s.idleAt))
		select {
		case <-ctx.Done():
			return
		case in := <-s.inbox:
			s.handle(in)
		case <-s.wake:
			s.core.Update(h.now(), h.info(s.actor, false))
		case c := <-chunks:
			if c.err != nil {
				s.core.ExportFailed(h.now(), s.exp.snapshot, c.err)
			} else {
				s.core.ChunkReady(h.now(), c.msg, c.gen)
			}
		case <-timer.C:
			for len(s.inbox) > 0 {
				s.handle(<-s.inbox)
				s.exec(ctx)
			}
			now := h.now()
			s.core.Tick(now)
			if !s.flushAt.IsZero() && !now.Before(s.flushAt) {
				s.flush(ctx)
			}
			if !now.Before(s.idleAt) {
				if s.idle(now) {
					return
				}
				recheck := min(h.opts.IdleTimeout, time.Minute)
				s.idleAt = later(s.lastActive.Add(h.opts.IdleTimeout), now.Add(recheck))
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// idle ends a session that has had nothing to do for IdleTimeout, unless
// its edge is still connected (its retained status is online): an edge
// that only reads says nothing while nothing changes, and without a
// session it would get no change until it next writes.
func (s *hubSession) idle(now time.Time) bool {
	if now.Sub(s.lastActive) < s.h.opts.IdleTimeout || !s.core.Idle() {
		return false
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if len(s.inbox) > 0 || s.h.online[s.node] {
		return false
	}
	delete(s.h.sessions, s.node)
	return true
}

// stop ends the session: export stopped, record flushed.
func (s *hubSession) stop() {
	s.exp.stop()
	s.exp = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.dirty = true
	s.flush(ctx)
	s.h.mu.Lock()
	if s.h.sessions[s.node] == s {
		delete(s.h.sessions, s.node)
	}
	s.h.mu.Unlock()
}

func (s *hubSession) handle(in sessionMsg) {
	h := s.h
	now := h.now()
	s.lastActive = now
	if in.conflicts != nil {
		s.core.Report(in.conflicts)
		return
	}
	m, err := Decode(in.payload)
	if err != nil {
		h.m.badMessages.Inc()
		logBad.Do(func() { h.log.Warn("undecodable message from an edge", "edge", s.node, "err", err) })
		return
	}
	h.m.received(m.Type(), len(in.payload))
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("received", "edge", s.node, "msg", describe(m), "bytes", len(in.payload))
	}
	if hello, ok := m.(*Hello); ok {
		if hello.Node != s.node {
			h.m.badMessages.Inc()
			logBad.Do(func() {
				h.log.Warn("Hello names another node than its topic", "edge", s.node, "hello_node", hello.Node)
			})
			return
		}
		fresh := hello.Session > s.core.session
		if fresh {
			s.actor = hello.ActorName()
		}
		info := h.info(s.actor, true)
		if fresh {
			s.filter.reset(hello.Context, info.LastSeq)
		}
		s.core.Hello(now, hello, info)
		return
	}
	s.core.Receive(now, m)
}

func (s *hubSession) exec(ctx context.Context) {
	for {
		acts := s.core.take()
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			s.do(ctx, a)
		}
	}
}

func (s *hubSession) do(ctx context.Context, a action) {
	h := s.h
	st := h.opts.Store
	now := h.now()
	switch a := a.(type) {
	case actSend:
		payload := h.encode(a.msg)
		if err := h.publish(downTopic(h.opts.TopicPrefix, s.node), payload); err != nil {
			// The edge will time out and resend; our own timeouts resend ours.
			logBad.Do(func() { h.log.Warn("publish to edge failed", "edge", s.node, "err", err) })
			return
		}
		h.m.sent(a.msg.Type(), len(payload))
		if h.log.Enabled(ctx, slog.LevelDebug) {
			h.log.Debug("sent", "edge", s.node, "msg", describe(a.msg), "bytes", len(payload))
		}
		if d, ok := a.msg.(*DeltaSync); ok {
			h.m.opsSent.Add(float64(len(d.Ops)))
		}
	case actReadDown:
		s.readDown(ctx, now, a.after)
	case actApply:
		s.apply(ctx, now, a.msg)
	case actPersist:
		s.dirty = true
		if a.urgent {
			s.flush(ctx)
		} else if s.flushAt.IsZero() {
			s.flushAt = now.Add(time.Second)
		}
	case actExport:
		s.exp.stop()
		s.exp = startExporter(ctx, &h.wg, st, a.snapshot,
			exportLimits{bytes: h.opts.BatchBytes, entries: h.opts.BatchOps}, h.snapshotGuard)
	case actStopExport:
		s.exp.stop()
		s.exp = nil
	case actStage:
		s.core.Staged(now, a.msg, s.stage.stage(ctx, a.msg))
	case actMerge:
		s.merge(ctx, now, a.msg)
	case actNote:
		h.log.Log(ctx, a.level, a.msg, a.args...)
	default:
		h.log.Error("unexpected core action", "edge", s.node, "action", a.String())
	}
}

// readDown reads the ops after after that the edge lacks: other origins,
// dots its context (at Hello) does not hold.
func (s *hubSession) readDown(ctx context.Context, now time.Time, after uint64) {
	h := s.h
	st := h.opts.Store
	filter, actor := &s.filter, s.actor
	q := store.OpsQuery{After: after, Limit: h.opts.BatchOps, MaxBytes: h.opts.BatchBytes,
		Filter: func(op *store.Op) bool {
			return op.Dot.Node != actor && !filter.contains(op.Dot)
		}}
	ops, next, cached := h.tail.read(q)
	var err error
	if !cached {
		ops, next, err = st.OpsSince(ctx, q)
	}
	if err != nil {
		h.log.Error("reading the op log failed", "edge", s.node, "err", err)
		s.core.DownRead(now, after, after, nil)
		return
	}
	// Pruning runs concurrently: if it passed after, ops may be missing
	// from this read. It only moves forward, so checking afterwards is
	// enough.
	if oldest := st.OldestSeq(); oldest > after+1 {
		s.core.DownRead(now, after, after, nil)
		s.core.Update(now, h.info(s.actor, false))
		return
	}
	s.core.DownRead(now, after, next, ops)
}

// apply applies the edge's batch durably, then lets the core ack it.
func (s *hubSession) apply(ctx context.Context, now time.Time, d *DeltaSync) {
	h := s.h
	st := h.opts.Store
	res, err := st.ApplyRemote(ctx, d.Ops)
	if err != nil {
		s.core.Applied(now, d, 0, err)
		return
	}
	h.m.opsApplied.Add(float64(res.Applied))
	h.m.opsSkipped.Add(float64(res.Skipped))
	h.m.conflicts.Add(float64(len(res.Conflicts)))
	if res.Rejected > 0 {
		h.log.Error("ops from an edge could not be decoded; skipped", "edge", s.node, "count", res.Rejected)
	}
	noteSkew(now, d.Ops, h.opts.MaxClockSkew, s.skewed, h.m, h.log)
	if res.Applied > 0 && h.opts.OnApplied != nil {
		h.opts.OnApplied(batchKeys(d.Ops))
	}
	h.reportConflicts(res.Conflicts)
	s.core.Applied(now, d, h.edgeHas(s.actor), nil)
}

// merge merges the edge's staged FullSync: the state generation is bumped
// (durably) first, so every other edge gets the merged state by FullSync.
func (s *hubSession) merge(ctx context.Context, now time.Time, m *FullSync) {
	h := s.h
	h.mergeMu.Lock()
	prev, next, err := h.bumpGen(ctx)
	var confl []crdt.Conflict
	if err == nil {
		confl, err = s.stage.merge(ctx, m, h.opts.OnApplied)
	}
	h.mergeMu.Unlock()
	h.m.conflicts.Add(float64(len(confl)))
	if err == nil {
		h.m.fullSyncs.WithLabelValues("up").Inc()
		h.reportConflicts(confl)
		h.log.Info("merged an edge's full state", "edge", s.node, "keys", m.Keys, "state_gen", next)
	}
	s.core.Merged(now, m, prev, next, h.edgeHas(s.actor), err)
	if err == nil {
		h.wakeAll(s.node)
	}
}

func batchKeys(ops []store.Op) []string {
	seen := make(map[string]struct{}, len(ops))
	keys := make([]string, 0, len(ops))
	for i := range ops {
		if _, ok := seen[ops[i].Key]; !ok {
			seen[ops[i].Key] = struct{}{}
			keys = append(keys, ops[i].Key)
		}
	}
	return keys
}

// reportConflicts sends each conflict to the session of the edge whose
// write lost (if it has one; the edge also finds the conflict itself when
// the winning write reaches it).
func (h *Hub) reportConflicts(confl []crdt.Conflict) {
	if len(confl) == 0 {
		return
	}
	byNode := map[string][]crdt.Conflict{}
	for _, c := range confl {
		if n := store.ActorNode(c.Loser.Dot.Node); n != h.opts.NodeID {
			byNode[n] = append(byNode[n], c)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for n, cs := range byNode {
		if s := h.sessions[n]; s != nil {
			select {
			case s.inbox <- sessionMsg{conflicts: cs}:
			default:
				h.m.inboxDropped.Inc()
			}
		}
	}
}

// flush writes the edge's record (durably) and publishes it for pruning.
func (s *hubSession) flush(ctx context.Context) {
	s.flushAt = time.Time{}
	if !s.dirty {
		return
	}
	rec := s.core.rec
	if err := s.h.opts.Store.SetSyncState(ctx, keyHubEdge(s.node), rec.marshal()); err != nil {
		if !errors.Is(err, context.Canceled) {
			s.h.log.Error("persisting the edge's record failed", "edge", s.node, "err", err)
		}
		return
	}
	s.dirty = false
	s.h.mu.Lock()
	s.h.records[s.node] = rec
	s.h.mu.Unlock()
}
