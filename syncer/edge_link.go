package syncer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ferrite-edge/ferrite/store"
)

// The edge's link handling: dialing (one goroutine per attempt, its
// result an event for the loop), the link's life cycle, and the messages
// it delivers.

func (r *edgeRun) dial(ctx context.Context) {
	if r.opts.HubURL == "" || r.dialing {
		return // standalone: stay "connecting" forever
	}
	r.dialing = true
	r.linkSeq++
	seq := r.linkSeq
	subs := []string{downTopic(r.opts.TopicPrefix, r.opts.NodeID)}
	if hub := r.core.st.HubID; hub != "" {
		subs = append(subs, statusTopic(r.opts.TopicPrefix, hub))
	}
	cfg := linkConfig{
		URL: r.opts.HubURL, TLS: r.opts.TLS, Username: r.opts.Username, Password: r.opts.Password,
		ClientID:    "ferrite-edge-" + r.opts.NodeID,
		StatusTopic: statusTopic(r.opts.TopicPrefix, r.opts.NodeID),
		Subscribe:   subs, KeepAlive: r.opts.KeepAlive, ConnectTimeout: r.opts.ConnectTimeout,
		WriteTimeout: r.opts.AckTimeout, Counters: &r.e.counters,
		OnMessage: func(in inbound) {
			select {
			case r.inbox <- in:
			default:
				r.e.m.inboxDropped.Inc()
			}
		},
		OnLost: func(err error) {
			select {
			case r.linkEvents <- linkEvent{seq: seq, err: err}:
			case <-ctx.Done():
			}
		},
	}
	hub := r.core.st.HubID
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		l, err := r.opts.dial(ctx, cfg)
		select {
		case r.linkEvents <- linkEvent{seq: seq, link: l, err: err}:
		case <-ctx.Done():
			if l != nil {
				l.Close(true)
			}
		}
	}()
	r.subscribed = hub
}

func (r *edgeRun) onLinkEvent(ctx context.Context, ev linkEvent) {
	if ev.seq != r.linkSeq {
		if ev.link != nil {
			ev.link.Close(false)
		}
		return
	}
	now := r.now()
	if ev.link == nil {
		// A failed dial, or the connection was lost.
		r.dialing = false
		if r.link != nil {
			r.link.Close(false)
			r.link = nil
		}
		r.e.m.connected.Set(0)
		r.core.LinkFailed(now, fmt.Errorf("%w: %w", ErrLinkDown, ev.err))
		return
	}
	r.dialing = false
	if r.core.phase != edgeConnecting {
		ev.link.Close(true)
		return
	}
	r.link = ev.link
	r.dials++
	if r.dials > 1 {
		r.e.m.reconnects.Inc()
		r.core.reconnects++
	}
	r.e.m.connected.Set(1)
	r.newSession(ctx)
}

// newSession gathers what Hello says and starts a session.
func (r *edgeRun) newSession(ctx context.Context) {
	info, err := r.linkInfo(ctx)
	if err != nil {
		r.core.LinkFailed(r.now(), localError{err})
		return
	}
	r.core.LinkUp(r.now(), info)
}

func (r *edgeRun) linkInfo(ctx context.Context) (linkInfo, error) {
	if err := r.st.SyncWAL(ctx); err != nil {
		return linkInfo{}, err
	}
	c := r.st.Context()
	own := c.Max(r.st.Actor())
	first := own + 1
	// The first op of the current actor: the hub's count (HubHas) is of it.
	ops, _, err := r.st.OpsSince(ctx, store.OpsQuery{After: r.st.PrunedSeq(), Limit: 1, Origin: r.st.Actor()})
	if err != nil {
		return linkInfo{}, err
	}
	if len(ops) > 0 {
		first = ops[0].Dot.Counter
	}
	return linkInfo{
		Session: uint64(r.st.Now()), OwnCounter: own, FirstAvail: first,
		Durable: r.st.DurableSeq(), Clock: r.now().UnixMilli(), Context: c,
	}, nil
}

func (r *edgeRun) onInbound(in inbound) {
	now := r.now()
	if in.topic != downTopic(r.opts.TopicPrefix, r.opts.NodeID) {
		// The hub's status: a live "online" means it restarted.
		if !in.retained && string(in.payload) == statusOnline && r.core.st.HubID != "" &&
			in.topic == statusTopic(r.opts.TopicPrefix, r.core.st.HubID) {
			r.core.HubStatus(now, true)
		}
		return
	}
	m, err := Decode(in.payload)
	if err != nil {
		r.e.m.badMessages.Inc()
		logBad.Do(func() { r.log.Warn("undecodable message from the hub", "err", err, "bytes", len(in.payload)) })
		return
	}
	r.e.m.received(m.Type(), len(in.payload))
	if r.log.Enabled(context.Background(), slog.LevelDebug) {
		r.log.Debug("received", "msg", describe(m), "bytes", len(in.payload))
	}
	r.core.Receive(now, m)
}
