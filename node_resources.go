package ferrite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/resources"
)

// applyRuntime sets GOMAXPROCS (cpu_budget) and GOMEMLIMIT (memory_limit)
// for the process; Close restores them (tests run several nodes in one
// process).
func (n *Node) applyRuntime() {
	rs := resources.ApplyRuntime(n.cfg.Edge.Resources, n.log.With(LogKeyComponent, "resources"))
	n.runtime = &rs
	n.push("runtime limits", func(context.Context) error { rs.Restore(); return nil })
}

// startMonitor runs the resource monitor with its levers wired to the
// store, the ingestion pipeline and the syncer.
func (n *Node) startMonitor(ctx context.Context) error {
	cfg := n.cfg
	st := n.store
	rc := cfg.Edge.Resources // defaults applied before the YAML: a 0 there is meant
	rc.ExplicitZeros()
	opts := resources.Options{
		Config:       rc,
		Logger:       n.log.With(LogKeyComponent, "resources"),
		Registerer:   n.reg,
		DataDir:      cfg.DataDir,
		StorageUsage: func() (int64, error) { return int64(st.DiskUsage()), nil },
		Runtime:      n.runtime,
		Evictor:      storeEvictor{n},
		Compactor:    st,
		Offloader:    st,
		WriteGate:    writeGate{n},
		// Raising compression trades CPU for flash at High.
		CompressionRaiser: st,
		MemoryReleaser:    memoryReleaser{n},
		OnChange:          n.publishResources,
	}
	if n.pipeline != nil {
		opts.RollUp = n.pipeline
	}
	if n.edge != nil {
		opts.SyncController = n.edge
		opts.LinkStats = edgeLink{n}
		opts.BaseSyncInterval = cfg.Edge.SyncInterval.D()
	}
	m, err := resources.New(opts)
	if err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	n.monitor = m
	for _, c := range resources.Commands(m) {
		if err := n.register(c.Name, c.MinArgs, c.MaxArgs, c.ReadOnly, c.Help, c.Run); err != nil {
			return err
		}
	}
	n.goBG(ctx, "resource monitor", m.Run)
	return nil
}

// storeEvictor adapts the store's Evict to the monitor's Evictor.
type storeEvictor struct{ n *Node }

func (e storeEvictor) Evict(ctx context.Context, bytes int64) (int64, error) {
	r, err := e.n.store.Evict(ctx, bytes)
	return r.Bytes, err
}

// memoryReleaser sheds the store's hot cache, then the pipeline's buffers.
type memoryReleaser struct{ n *Node }

func (r memoryReleaser) ReleaseMemory(ctx context.Context, bytes int64) (int64, error) {
	freed, err := r.n.store.ReleaseMemory(ctx, bytes)
	if err != nil || freed >= bytes || r.n.pipeline == nil {
		return freed, err
	}
	more, err := r.n.pipeline.ReleaseMemory(ctx, bytes-freed)
	return freed + more, err
}

// writeGate refuses writes in the store (commands, QoS 1/2 readings get
// the reason; MQTT 5 publishers see reason code 0x97) and counts refused
// QoS 0 readings in the pipeline.
type writeGate struct{ n *Node }

func (g writeGate) SetRefuseWrites(reason string) { g.n.store.SetRefuseWrites(reason) }

// edgeLink reports the hub link's quality to the monitor.
type edgeLink struct{ n *Node }

func (l edgeLink) LinkStats() resources.LinkStats {
	s := l.n.edge.LinkStats()
	return resources.LinkStats{Connected: s.Connected, RTT: s.RTT, ConsecutiveFailures: s.ConsecutiveFailures, Throughput: s.Throughput}
}

// publishResources keeps the retained $ferrite/status/<node>/resources
// topic current (called by the monitor on notable changes).
func (n *Node) publishResources(s resources.Snapshot) {
	b, err := json.Marshal(s)
	if err != nil {
		return
	}
	topic := n.cfg.Sync.TopicPrefix + "/status/" + n.cfg.NodeID + "/resources"
	_ = n.broker.Publish(&broker.Message{Topic: topic, Payload: b, QoS: 1, Retain: true})
}
