package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// batchState holds the buffers of one HandleMessages call; pooled so the
// steady state allocates nothing per message.
type batchState struct {
	p        *Pipeline
	x        *extractor
	readings []Reading
	received int64
	emit     emitFunc // bound once: a method value allocates
	noClock  int
	future   int
}

func newBatchState(p *Pipeline) *batchState {
	b := &batchState{
		p:        p,
		x:        newExtractor(p.rules, p.opts.MaxValuesPerMessage, p.opts.Location),
		readings: make([]Reading, 0, 256),
	}
	b.emit = b.add
	return b
}

func (b *batchState) add(id, unit []byte, value float64, ts int64, fallback bool) {
	if fallback {
		b.noClock++
	}
	if ts > b.received+int64(b.p.opts.MaxClockSkew) {
		ts = b.received
		b.future++
	}
	r := Reading{Sensor: b.p.ids.get(id), Value: value, Time: time.Unix(0, ts)}
	if len(unit) > 0 {
		r.Unit = b.p.units.get(unit)
	}
	b.readings = append(b.readings, r)
}

func (b *batchState) reset() {
	clear(b.readings) // drop string references for the GC
	b.readings = b.readings[:0]
	b.noClock, b.future = 0, 0
}

// HandleMessages ingests a batch of messages.
//
// When any message is QoS 1/2 (the broker hands those over one at a time)
// every reading goes to the store in one batch, durable under the store's
// policy before it returns (the publisher is acknowledged after). An
// error then wraps ErrRefused and the store's error, and nothing of the
// batch was recorded.
//
// A batch of QoS 0 messages is parsed on the caller's goroutine and its
// readings are queued for the pipeline's writer, which commits everything
// queued as one store batch (see qos0Queue); HandleMessages returns at
// once. Overflow of Options.QueueSize and store refusals drop readings,
// counted in ferrite_ingest_readings_dropped_total.
//
// A message no rule matches is ignored. A message a rule matches but
// cannot parse is counted (ferrite_ingest_malformed_total{rule,reason}),
// logged rate-limited and passed to Options.DeadLetter; it does not fail
// the batch (the broker still delivers it to subscribers).
func (p *Pipeline) HandleMessages(ctx context.Context, msgs []*Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	b := p.batches.Get().(*batchState)
	defer func() {
		b.reset()
		p.batches.Put(b)
	}()
	var now int64
	ingested := 0
	async := true // every message is QoS 0: nothing waits for durability
	for _, m := range msgs {
		if m.QoS > 0 {
			async = false
		}
		if m.Received.IsZero() {
			if now == 0 {
				now = p.opts.Clock.Now().UnixNano()
			}
			b.received = now
		} else {
			b.received = m.Received.UnixNano()
		}
		before := len(b.readings)
		rule, err := b.x.extract(m.Topic, m.Payload, b.received, b.emit)
		switch {
		case rule == nil:
			p.m.ignored.Inc()
		case err != nil:
			b.readings = b.readings[:before]
			p.malformed(m, rule.Name, err)
		default:
			ingested++
		}
	}
	if b.noClock > 0 {
		p.m.tsFallback.WithLabelValues("no_clock").Add(float64(b.noClock))
	}
	if b.future > 0 {
		p.m.tsFallback.WithLabelValues("future").Add(float64(b.future))
	}
	if len(b.readings) == 0 {
		p.m.ingested.Add(float64(ingested))
		return nil
	}
	if async {
		p.m.ingested.Add(float64(ingested))
		if dropped := p.queue.push(ctx, b.readings); dropped > 0 {
			p.m.dropped.WithLabelValues("queue_full").Add(float64(dropped))
		}
		return nil
	}
	start := time.Now()
	n, err := p.ingestion.ingestBatch(ctx, b.readings)
	if err != nil {
		p.m.refused.Add(float64(ingested))
		if errors.Is(err, ErrRefused) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	p.m.storeSeconds.Observe(time.Since(start).Seconds())
	p.m.ingested.Add(float64(ingested))
	p.m.readings.Add(float64(n))
	return nil
}

// writeQueued stores a batch of queued QoS 0 readings (writer goroutine).
// Nobody waits for them, so a refusal drops them (counted, logged).
func (p *Pipeline) writeQueued(ctx context.Context, rs []Reading) {
	start := time.Now()
	n, err := p.ingestion.ingestBatch(ctx, rs)
	if err != nil {
		p.m.dropped.WithLabelValues("store_refused").Add(float64(len(rs)))
		p.refusedLog.Do(func() {
			p.log.Warn("store refused QoS 0 readings; dropped", "readings", len(rs), "err", err)
		})
		return
	}
	p.m.storeSeconds.Observe(time.Since(start).Seconds())
	p.m.readings.Add(float64(n))
}

func (p *Pipeline) malformed(m *Message, rule string, err error) {
	reason := Reason(err)
	p.m.malformedMsgs.Inc()
	p.m.malformed.WithLabelValues(rule, reason).Inc()
	p.badLog.Do(func() {
		p.log.Warn("malformed sensor payload", "rule", rule, "topic", m.Topic, "client", m.ClientID,
			"reason", reason, "err", err, "payload_bytes", len(m.Payload))
	})
	if p.opts.DeadLetter != nil {
		p.opts.DeadLetter(m, rule, reason)
	}
}
