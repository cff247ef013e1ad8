package ferrite

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/ferrite-edge/ferrite/syncer"
)

// goBG runs fn on a goroutine the node owns: Close (in reverse start
// order, like every subsystem) cancels its context and waits for it. An
// error other than that cancellation is logged.
func (n *Node) goBG(ctx context.Context, name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("background task stopped", "task", name, "error", err)
		}
	}()
	n.push(name, func(stop context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-stop.Done():
			return fmt.Errorf("%s still running: %w", name, stop.Err())
		}
	})
}

// batchOptions maps sync: onto the syncer's batching knobs.
func (sc *SyncConfig) batchOptions() syncer.BatchOptions {
	return syncer.BatchOptions{
		BatchBytes:        int(sc.BatchBytes),
		BatchOps:          sc.BatchOps,
		Window:            sc.Window,
		AckTimeout:        sc.AckTimeout.D(),
		CompressThreshold: max(1, int(sc.CompressThreshold)), // 0: every body (the syncer's 0 is its default)
	}
}

// startEdgeSync runs the edge side of the sync protocol. It runs without a
// hub too: the syncer still bounds the offline queue, and EDGE.QUEUE,
// EDGE.SYNC (which then fails fast) and EDGE.CONFLICTS work.
func (n *Node) startEdgeSync(ctx context.Context) error {
	cfg := n.cfg
	pol, err := syncer.ParsePolicy(cfg.Edge.SyncPolicy)
	if err != nil {
		return fmt.Errorf("ferrite: edge.sync_policy: %w", err)
	}
	res, err := cfg.Edge.resolver()
	if err != nil {
		return err
	}
	tlsCfg, err := cfg.Sync.hubTLS(cfg.Edge.HubURL)
	if err != nil {
		return err
	}
	e, err := syncer.NewEdge(syncer.EdgeOptions{
		Store:         n.store,
		NodeID:        cfg.NodeID,
		HubURL:        cfg.Edge.HubURL,
		TLS:           tlsCfg,
		Username:      cfg.Sync.Username,
		Password:      cfg.Sync.Password,
		TopicPrefix:   cfg.Sync.TopicPrefix,
		Policy:        pol,
		Interval:      cfg.Edge.SyncInterval.D(),
		QueueCapacity: int(cfg.Edge.OfflineQueueSize),
		BatchOptions:  cfg.Sync.batchOptions(),
		BackoffMin:    cfg.Sync.BackoffMin.D(),
		BackoffMax:    cfg.Sync.BackoffMax.D(),
		MaxClockSkew:  cfg.Sync.MaxClockSkew.D(),
		Resolver:      res,
		Software:      Version,
		Logger:        n.log,
		Registerer:    n.reg,
	})
	if err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	n.edge = e
	for _, c := range syncer.Commands(e) {
		if err := n.register(c.Name, c.MinArgs, c.MaxArgs, c.ReadOnly, c.Help, c.Run); err != nil {
			return err
		}
	}
	n.AddStatus("sync", func(context.Context) map[string]any { return e.StatusFields() })
	n.goBG(ctx, "edge syncer", func(ctx context.Context) error { defer e.Close(); return e.Run(ctx) })
	return nil
}

// startHubSync runs the hub side: it attaches to this node's own broker
// (or hub.broker_url), applies edges' changes, relays them and republishes
// merged sensor buckets for cloud subscribers.
func (n *Node) startHubSync(ctx context.Context) error {
	cfg := n.cfg
	res, err := cfg.Edge.resolver()
	if err != nil {
		return err
	}
	url := cfg.Hub.BrokerURL
	user, pass := cfg.Sync.Username, cfg.Sync.Password
	if url == "" {
		url = "mqtt://" + dialable(n.broker.Addr())
		if user == "" {
			// On its embedded broker the hub logs in as the node's internal
			// user: anonymous access and the ACL do not apply to it.
			user, pass = n.internalCredentials()
		}
	}
	tlsCfg, err := cfg.Sync.hubTLS(url)
	if err != nil {
		return err
	}
	opts := syncer.HubOptions{
		Store:          n.store,
		NodeID:         cfg.NodeID,
		BrokerURL:      url,
		TLS:            tlsCfg,
		Username:       user,
		Password:       pass,
		TopicPrefix:    cfg.Sync.TopicPrefix,
		BatchOptions:   cfg.Sync.batchOptions(),
		RetentionBytes: int64(cfg.Hub.RetentionBytes),
		RetentionAge:   cfg.Hub.RetentionAge.D(),
		MaxEdges:       cfg.Hub.MaxEdges,
		IdleTimeout:    cfg.Hub.IdleTimeout.D(),
		MaxClockSkew:   cfg.Sync.MaxClockSkew.D(),
		BackoffMin:     cfg.Sync.BackoffMin.D(),
		BackoffMax:     cfg.Sync.BackoffMax.D(),
		Resolver:       res,
		Software:       Version,
		Logger:         n.log,
		Registerer:     n.reg,
	}
	if cfg.Hub.DataTopic != "" {
		if opts.OnApplied, err = n.republishBuckets(ctx, cfg.Hub.DataTopic); err != nil {
			return err
		}
	}
	h, err := syncer.NewHub(opts)
	if err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	n.hub = h
	c := syncer.ConflictsCommand(n.store)
	if err := n.register(c.Name, c.MinArgs, c.MaxArgs, c.ReadOnly, c.Help, c.Run); err != nil {
		return err
	}
	n.AddStatus("hub", func(context.Context) map[string]any { return h.StatusFields() })
	n.goBG(ctx, "hub syncer", func(ctx context.Context) error { defer h.Close(); return h.Run(ctx) })
	return nil
}

// dialable turns a bound listen address into one a local client can dial
// (":1884" or "[::]:1884" → "127.0.0.1:1884").
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Sync pushes every pending change to the hub now and returns when the hub
// has acknowledged them (the feature document's node.sync()). It fails with
// syncer.ErrNoHub when no hub is configured and with the link's error while
// the hub is unreachable; the changes stay queued either way.
func (n *Node) Sync(ctx context.Context) error {
	if n.edge == nil {
		if n.cfg.Mode == ModeHub {
			return errors.New("ferrite: Sync: a hub does not sync upstream")
		}
		return ErrNodeNotStarted
	}
	return n.edge.SyncNow(ctx)
}
