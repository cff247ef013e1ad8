package ferrite

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
)

// The node's side of Home Assistant discovery: starting the publisher and
// the haSource it reads (ingestion, syncer, resource monitor).

// startHomeAssistant runs the discovery publisher on the node's broker
// (after the broker, ingestion, syncer and monitor have started: it reads
// them all) until bgCtx ends. Before it returns, the entities of sensors
// forgotten while the gateway was down are cleared (repair), so a Home
// Assistant connecting after Start does not get them.
func (n *Node) startHomeAssistant(ctx, bgCtx context.Context) error {
	hc := n.cfg.HomeAssistant
	if !hc.Enabled {
		return nil
	}
	var refresh time.Duration
	if exp := n.cfg.Broker.Limits.MessageExpiry.D(); exp > 0 {
		refresh = max(exp/2, hc.PublishInterval.D())
	}
	model := "Ferrite Edge gateway"
	if n.cfg.Mode == ModeHub {
		model = "Ferrite Edge hub"
	}
	// QoS 0: mochi v2.7.9 answers a SUBSCRIBE whose packet id equals the id
	// of a QoS 1/2 message it has in flight towards that client with 0x91
	// "packet identifier in use" (server.go processSubscribe checks the
	// client's outbound inflight map), so a burst of retained QoS 1 configs
	// makes Home Assistant's next subscriptions fail. The broker is local
	// and reached over TCP; QoS 0 loses nothing a republication would not
	// restore.
	publish := func(topic string, payload []byte) error {
		return n.broker.Publish(&broker.Message{Topic: topic, Payload: payload, QoS: 0, Retain: true})
	}
	p, err := newHAPublisher(hc, n.cfg.NodeID, model, nodeHASource{n}, publish, refresh,
		n.log.With(LogKeyComponent, "homeassistant"), n.reg)
	if err != nil {
		return err
	}
	if err := n.broker.Handle(hc.DiscoveryPrefix+"/status", p, broker.HandlerOptions{Name: "homeassistant", QueueSize: 16}); err != nil {
		return fmt.Errorf("ferrite: homeassistant: %w", err)
	}
	p.drain = func() { drainBroker(n.broker) }
	p.slugStore = storeSlugs{n.store}
	p.retained = n.broker.Retained
	if err := p.loadSlugs(ctx); err != nil {
		return fmt.Errorf("ferrite: homeassistant: %w", err)
	}
	if err := p.repair(ctx); err != nil {
		return fmt.Errorf("ferrite: homeassistant: %w", err)
	}
	if n.pipeline != nil {
		n.pipeline.OnForget(n.forgetHAEntity(p))
	}
	n.goBG(bgCtx, "homeassistant", p.run)
	return nil
}

// forgetHAEntity is SENSOR.FORGET's callback: it returns once the
// sensor's entity is cleared and that is durable, or says why not (the
// reply's warning). The forget's store batch is fsynced; the broker
// writes the empty retained messages without an fsync (its records,
// store/broker_records.go), so a crash right after the reply would bring
// the entity back with its sensor gone: the WAL is synced first. A clear
// that did not happen or was lost is done by the publisher's next poll,
// or by repair at the next start.
func (n *Node) forgetHAEntity(p *haPublisher) func(ctx context.Context, sensor string) error {
	return func(ctx context.Context, sensor string) error {
		if err := p.forgotten(ctx, sensor); err != nil {
			return fmt.Errorf("homeassistant: entity not removed yet (retried at the next poll and at start): %w", err)
		}
		if !n.cfg.Broker.Persistence {
			return nil // retained messages do not outlive the process
		}
		if err := n.store.SyncWAL(ctx); err != nil {
			return fmt.Errorf("homeassistant: entity removal not durable yet (redone at start if lost): %w", err)
		}
		return nil
	}
}

// drainBroker waits, at most 300 ms, until the broker has stopped writing
// messages to clients for 20 ms after having written at least one (or for
// 100 ms if it writes none: nobody subscribed). mochi's Server.Close
// disconnects clients without flushing their outbound queues, so a message
// published just before the broker closes is otherwise often lost.
func drainBroker(b *broker.Broker) {
	const tick = 5 * time.Millisecond
	start := time.Now()
	first := b.Stats().MessagesSent
	last, quiet := first, time.Duration(0)
	for time.Since(start) < 300*time.Millisecond {
		time.Sleep(tick) // a bounded grace period at shutdown, like paho's Disconnect(quiesce)
		if s := b.Stats().MessagesSent; s != last {
			last, quiet = s, 0
			continue
		}
		quiet += tick
		if (last != first && quiet >= 20*time.Millisecond) || quiet >= 100*time.Millisecond {
			return
		}
	}
}

// nodeHASource reads the node's subsystems for the publisher.
type nodeHASource struct{ n *Node }

func (s nodeHASource) Sensors() []ingest.SensorInfo {
	if s.n.pipeline == nil {
		return nil
	}
	return s.n.pipeline.Ingestion().Sensors("")
}

func (s nodeHASource) CurrentBucket(sensor string) (ingest.Bucket, bool) {
	if s.n.pipeline == nil || s.n.pipeline.Aggregator() == nil {
		return ingest.Bucket{}, false
	}
	// Newest start first, then the narrowest width; late partials are
	// fragments of a bucket, not the bucket.
	for _, b := range s.n.pipeline.Aggregator().Buckets(sensor, 8) {
		if !b.Late {
			return b, true
		}
	}
	return ingest.Bucket{}, false
}

func (s nodeHASource) Gateway() haGatewayState {
	var g haGatewayState
	if e := s.n.edge; e != nil {
		st := e.Status()
		g.SyncStatus, g.PendingOps, g.HubConnected = &st.SyncStatus, &st.PendingOps, &st.HubConnected
		if !st.LastSync.IsZero() {
			ls := st.LastSync.UTC().Format(time.RFC3339)
			g.LastSync = &ls
		}
	}
	if m := s.n.monitor; m != nil {
		snap := m.Snapshot()
		level := snap.Level.String()
		mem, disk := round1(snap.Memory.Percent), round1(snap.Disk.Percent)
		g.ResourceLevel, g.MemoryPercent, g.DiskPercent = &level, &mem, &disk
	}
	return g
}

// round1 keeps one decimal, so that noise does not make the gateway state
// change every interval.
func round1(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*10) / 10
}
