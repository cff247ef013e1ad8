package ferrite

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
)

// StatusFunc contributes fields to the EDGE.STATUS reply. Its keys are
// merged at the top level of the reply (the syncer adds sync_status,
// pending_ops, last_sync ...); keys of the node itself cannot be replaced.
// It must be fast and safe for concurrent use.
type StatusFunc func(ctx context.Context) map[string]any

// ReadyCheck returns an error while a subsystem is not ready; /readyz
// reports 503 with the error text.
type ReadyCheck func(ctx context.Context) error

type namedStatus struct {
	name string
	fn   StatusFunc
}

type namedCheck struct {
	name string
	fn   ReadyCheck
}

// AddStatus registers a contributor to EDGE.STATUS.
func (n *Node) AddStatus(name string, fn StatusFunc) {
	n.statusMu.Lock()
	defer n.statusMu.Unlock()
	n.status = append(n.status, namedStatus{name, fn})
}

// AddReadyCheck registers a readiness check for /readyz.
func (n *Node) AddReadyCheck(name string, fn ReadyCheck) {
	n.statusMu.Lock()
	defer n.statusMu.Unlock()
	n.checks = append(n.checks, namedCheck{name, fn})
}

// readiness lists why the node is not ready (empty when it is).
func (n *Node) readiness(ctx context.Context) []string {
	if !n.ready.Load() {
		return []string{"node not started or shutting down"}
	}
	n.statusMu.RLock()
	checks := append([]namedCheck(nil), n.checks...)
	n.statusMu.RUnlock()
	var out []string
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", c.name, err))
		}
	}
	return out
}

// Status is the EDGE.STATUS reply: the node's own fields plus those of
// every StatusFunc.
func (n *Node) Status(ctx context.Context) map[string]any {
	st := n.broker.Stats()
	out := map[string]any{
		"node_id":        n.cfg.NodeID,
		"mode":           n.cfg.Mode,
		"version":        Version,
		"uptime_seconds": int64(n.Uptime() / time.Second),
		"ready":          n.ready.Load(),
		"hub_url":        n.cfg.Edge.HubURL,
		"broker": map[string]any{
			"clients_connected": st.ClientsConnected,
			"subscriptions":     st.Subscriptions,
			"retained":          st.Retained,
			"inflight":          st.Inflight,
			"messages_received": st.MessagesReceived,
			"messages_sent":     st.MessagesSent,
			"messages_dropped":  st.MessagesDropped,
			"bytes_received":    st.BytesReceived,
			"bytes_sent":        st.BytesSent,
		},
	}
	if n.ready.Load() {
		out["started_at"] = n.startAt.UTC().Format(time.RFC3339)
	}
	if n.store != nil {
		// The name of this data directory's writes (store/actor.go).
		out["actor"] = n.store.Actor()
	}
	own := maps.Clone(out)
	n.statusMu.RLock()
	providers := append([]namedStatus(nil), n.status...)
	n.statusMu.RUnlock()
	for _, p := range providers {
		for k, v := range p.fn(ctx) {
			if _, taken := own[k]; taken {
				n.log.Warn("status field ignored: the node owns it", "provider", p.name, "field", k)
				continue
			}
			out[k] = v
		}
	}
	return out
}

func (n *Node) registerCommands() error {
	return n.broker.Router().Register(broker.Command{
		Name:     "EDGE.STATUS",
		ReadOnly: true,
		Help:     "— node id, mode, version, uptime, broker clients and message counts and, on an edge, the sync state (sync_status, pending_ops, last_sync, hub_connected, rtt)",
		Func: func(ctx context.Context, _ *broker.Request) (any, error) {
			return n.Status(ctx), nil
		},
	})
}
