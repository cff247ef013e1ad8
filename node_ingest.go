package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
)

// MQTT 5 reason code a refused publish gets at the Critical resource level
// (and whenever the store refuses writes).
const reasonQuotaExceeded = 0x97

// startIngest builds the ingestion pipeline over the store and hands it,
// through the broker's publish hook, every message an ingest rule matches.
func (n *Node) startIngest(ctx context.Context) error {
	ic := &n.cfg.Ingest
	if !ic.Enabled {
		return nil
	}
	agg := ic.aggregatorConfig()
	agg.Node = n.cfg.NodeID
	opts := ingest.Options{
		Rules:              ic.Rules,
		Store:              ingest.NewStoreBackend(n.store),
		Aggregator:         agg,
		MaxSensors:         ic.MaxSensors,
		QueueSize:          ic.QueueSize,
		CheckpointInterval: ic.CheckpointInterval.D(),
		Logger:             n.log,
		Registerer:         n.reg,
	}
	if t := ic.DeadLetterTopic; t != "" {
		opts.DeadLetter = n.deadLetter(t)
	}
	p, err := ingest.New(ctx, opts)
	if err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	n.pipeline = p
	n.push("ingest", p.Close)

	rules := p.Rules()
	h := broker.HandlerFunc(func(ctx context.Context, msgs []*broker.Message) error {
		err := p.HandleMessages(ctx, toIngest(msgs))
		if errors.Is(err, ingest.ErrRefused) {
			return &broker.RejectError{Code: reasonQuotaExceeded, Reason: err.Error()}
		}
		return err
	})
	// One handler for every rule (a message matching two rules must be
	// ingested once); the pipeline queues and batches QoS 0 readings itself,
	// so they are handed over inline: a saturated store slows publishers down
	// instead of dropping their readings.
	if err := n.broker.Handle("#", h, broker.HandlerOptions{Name: "ingest", Match: rules.Matches, Inline: true}); err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	for _, c := range ingest.Commands(p) {
		if err := n.register(c.Name, c.MinArgs, c.MaxArgs, c.ReadOnly, c.Help, c.Run); err != nil {
			return err
		}
	}
	return nil
}

// toIngest converts broker messages without copying payloads.
func toIngest(msgs []*broker.Message) []*ingest.Message {
	in := make([]*ingest.Message, len(msgs))
	back := make([]ingest.Message, len(msgs))
	for i, m := range msgs {
		back[i] = ingest.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, ClientID: m.ClientID, Received: m.Received}
		in[i] = &back[i]
	}
	return in
}

// deadLetterMsg is the JSON payload republished for a message a rule
// matched but could not parse.
type deadLetterMsg struct {
	Topic    string `json:"topic"`
	Rule     string `json:"rule"`
	Reason   string `json:"reason"`
	ClientID string `json:"client_id,omitempty"`
	Payload  string `json:"payload"`
}

// deadLetter republishes unparseable sensor messages (QoS 0, not retained)
// so an operator can subscribe and see what a device sends.
func (n *Node) deadLetter(topic string) func(m *ingest.Message, rule, reason string) {
	return func(m *ingest.Message, rule, reason string) {
		const maxPayload = 1024
		p := m.Payload
		if len(p) > maxPayload {
			p = p[:maxPayload]
		}
		b, err := json.Marshal(deadLetterMsg{Topic: m.Topic, Rule: rule, Reason: reason, ClientID: m.ClientID, Payload: string(p)})
		if err != nil {
			return
		}
		_ = n.broker.Publish(&broker.Message{Topic: topic, Payload: b})
	}
}
