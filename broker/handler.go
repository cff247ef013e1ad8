package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Handler receives the messages published on the topics it registered for.
//
// QoS 0 messages are queued (bounded, per handler) and delivered in batches
// by the handler's own worker goroutine; when the queue is full they are
// dropped and counted. QoS 1 and 2 messages are delivered one at a time,
// synchronously, on the publishing client's read goroutine, before the
// broker acknowledges them: the PUBACK/PUBREC is sent only after
// HandleMessages returned nil, so a handler that stores the message durably
// gives the publisher an end-to-end guarantee.
//
// A handler refuses messages by returning a *RejectError (see its doc for what
// each protocol version sees); any other error is treated as a refusal with
// reason code 0x80. A refused QoS 1/2 message is not forwarded to subscribers.
// QoS 1 is at-least-once: a retried publish (Dup set) can be delivered twice.
// When several handlers match a QoS 1/2 message they are called in
// registration order and the first refusal ends the dispatch: handlers
// before it have the message, and will see it again when the client resends.
//
// HandleMessages must not keep the slice after it returns and must not modify
// the messages; it may keep the messages themselves. It is called from one
// goroutine at a time for QoS 0 batches, but QoS 1/2 calls come from the
// publishing clients' goroutines concurrently.
type Handler interface {
	HandleMessages(ctx context.Context, msgs []*Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msgs []*Message) error

// HandleMessages implements Handler.
func (f HandlerFunc) HandleMessages(ctx context.Context, msgs []*Message) error { return f(ctx, msgs) }

// UserProperty is an MQTT 5 user property.
type UserProperty struct {
	Key, Value string
}

// Message is one PUBLISH as a handler sees it.
type Message struct {
	Topic           string
	Payload         []byte // shared with the broker: read only
	QoS             byte
	Retain          bool
	Dup             bool
	ClientID        string
	Username        string
	ProtocolVersion byte // 3, 4 (MQTT 3.1.1) or 5
	// MQTT 5 properties (empty for 3.1.1 clients).
	ResponseTopic   string
	CorrelationData []byte
	ContentType     string
	UserProperties  []UserProperty
	// Received is when the broker read the message.
	Received time.Time
}

func newMessage(cl *mqtt.Client, pk *packets.Packet, now time.Time) *Message {
	m := &Message{
		Topic:           pk.TopicName,
		Payload:         pk.Payload,
		QoS:             pk.FixedHeader.Qos,
		Retain:          pk.FixedHeader.Retain,
		Dup:             pk.FixedHeader.Dup,
		ClientID:        cl.ID,
		Username:        string(cl.Properties.Username),
		ProtocolVersion: cl.Properties.ProtocolVersion,
		ResponseTopic:   pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData,
		ContentType:     pk.Properties.ContentType,
		Received:        now,
	}
	if n := len(pk.Properties.User); n > 0 {
		m.UserProperties = make([]UserProperty, n)
		for i, u := range pk.Properties.User {
			m.UserProperties[i] = UserProperty{Key: u.Key, Value: u.Val}
		}
	}
	return m
}

// HandlerOptions tune one registered handler.
type HandlerOptions struct {
	// Name labels the handler's metrics and logs (default: the filter).
	Name string
	// QueueSize bounds the QoS 0 queue (default 4096).
	QueueSize int
	// BatchSize is the most QoS 0 messages per HandleMessages call (default 256).
	BatchSize int
	// Match, if set, narrows the filter: a message is handed over only when
	// the filter matches its topic and Match returns true. It runs on the
	// publisher's goroutine for every message the filter matches, so it must
	// be fast and safe for concurrent use.
	Match func(topic string) bool
	// Inline delivers QoS 0 messages on the publisher's goroutine, one at a
	// time, instead of through the broker's queue and worker. For handlers
	// that queue (and batch) on their own and apply backpressure there: a
	// slow Inline handler slows the publishing client down, as TCP flow
	// control would, rather than dropping its messages. QueueSize and
	// BatchSize are then unused; errors are counted as refusals.
	Inline bool
}

const (
	defaultHandlerQueue = 4096
	defaultHandlerBatch = 256
)

// Handler outcomes, used as metric labels.
const (
	outcomeDelivered = "delivered" // the handler accepted the message
	outcomeDropped   = "dropped"   // QoS 0 queue full, or broker closing
	outcomeRejected  = "rejected"  // the handler refused the message
)

// route is one registered handler with its QoS 0 queue and worker.
type route struct {
	filter  string
	match   func(topic string) bool
	inline  bool
	name    string
	h       Handler
	queue   chan *Message
	batch   int
	stop    chan struct{} // closed to make the worker drain and exit
	done    chan struct{} // closed when the worker has exited
	log     *slog.Logger
	logErrs rate.Sometimes

	delivered, dropped, rejected prometheus.Counter
}

// enqueue hands a QoS 0 message to the worker without blocking.
func (r *route) enqueue(m *Message) {
	select {
	case r.queue <- m:
	default:
		r.dropped.Inc()
	}
}

// deliverInline hands one QoS 0 message to an Inline handler.
func (r *route) deliverInline(ctx context.Context, m *Message) {
	one := [1]*Message{m}
	if err := r.h.HandleMessages(ctx, one[:]); err != nil {
		r.rejected.Inc()
		r.logErrs.Do(func() {
			r.log.Warn("handler refused a QoS 0 message", "handler", r.name, "error", err)
		})
		return
	}
	r.delivered.Inc()
}

// deliverSync calls the handler for one QoS 1/2 message.
func (r *route) deliverSync(ctx context.Context, m *Message, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	one := [1]*Message{m}
	if err := r.h.HandleMessages(ctx, one[:]); err != nil {
		r.rejected.Inc()
		return err
	}
	r.delivered.Inc()
	return nil
}

// run is the worker: it delivers queued QoS 0 messages in batches until stop
// is closed, then delivers what is still queued (with ctx, which Close cancels
// when its deadline passes) and exits.
func (r *route) run(ctx context.Context) {
	defer close(r.done)
	batch := make([]*Message, 0, r.batch)
	for {
		select {
		case m := <-r.queue:
			batch = r.collect(append(batch[:0], m))
			r.deliverBatch(ctx, batch)
		case <-r.stop:
			for {
				batch = r.collect(batch[:0])
				if len(batch) == 0 {
					return
				}
				r.deliverBatch(ctx, batch)
			}
		}
	}
}

// collect appends queued messages to batch without blocking.
func (r *route) collect(batch []*Message) []*Message {
	for len(batch) < r.batch {
		select {
		case m := <-r.queue:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

func (r *route) deliverBatch(ctx context.Context, batch []*Message) {
	if ctx.Err() != nil {
		r.dropped.Add(float64(len(batch)))
		clear(batch)
		return
	}
	err := r.h.HandleMessages(ctx, batch)
	if err != nil {
		r.rejected.Add(float64(len(batch)))
		r.logErrs.Do(func() {
			r.log.Warn("handler refused QoS 0 messages", "handler", r.name, "count", len(batch), "error", err)
		})
	} else {
		r.delivered.Add(float64(len(batch)))
	}
	clear(batch) // do not pin payloads until the next batch
}

// routes is the copy-on-write set of registered handlers.
type routes []*route

// Handle registers h for every message published on a topic matching filter
// (MQTT wildcards '+' and '#'; a filter starting with a wildcard does not
// match '$' topics). Messages from the broker's own Publish are not
// dispatched to handlers. Handle may be called before or after Start.
func (b *Broker) Handle(filter string, h Handler, o HandlerOptions) error {
	if !validFilter(filter) {
		return fmt.Errorf("%w: %q", ErrInvalidFilter, filter)
	}
	if o.Name == "" {
		o.Name = filter
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultHandlerQueue
	}
	if o.BatchSize <= 0 {
		o.BatchSize = defaultHandlerBatch
	}
	r := &route{
		filter:    filter,
		match:     o.Match,
		inline:    o.Inline,
		name:      o.Name,
		h:         h,
		queue:     make(chan *Message, o.QueueSize),
		batch:     o.BatchSize,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		log:       b.log,
		logErrs:   rate.Sometimes{Interval: 10 * time.Second},
		delivered: b.metrics.handlerMessages.WithLabelValues(o.Name, outcomeDelivered),
		dropped:   b.metrics.handlerMessages.WithLabelValues(o.Name, outcomeDropped),
		rejected:  b.metrics.handlerMessages.WithLabelValues(o.Name, outcomeRejected),
	}
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	if b.closing.Load() {
		return ErrClosed
	}
	cur := b.loadRoutes()
	next := make(routes, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, r)
	b.routes.Store(&next)
	if r.inline {
		close(r.done) // no worker
		return nil
	}
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		r.run(b.ctx)
	}()
	return nil
}

func (b *Broker) loadRoutes() routes {
	if p := b.routes.Load(); p != nil {
		return *p
	}
	return nil
}

// stopRoutes makes every worker drain its queue and waits for them.
func (b *Broker) stopRoutes(ctx context.Context) error {
	b.routeMu.Lock()
	rs := b.loadRoutes()
	b.routeMu.Unlock()
	for _, r := range rs {
		close(r.stop)
	}
	for _, r := range rs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return fmt.Errorf("broker: handler %q still draining: %w", r.name, ctx.Err())
		}
	}
	return nil
}

// dispatch hands one publish to the matching handlers. For QoS 1/2 it
// returns the first handler error.
func (b *Broker) dispatch(cl *mqtt.Client, pk *packets.Packet) error {
	rs := b.loadRoutes()
	var msg *Message
	for _, r := range rs {
		if !matchTopic(r.filter, pk.TopicName) || (r.match != nil && !r.match(pk.TopicName)) {
			continue
		}
		if msg == nil {
			msg = newMessage(cl, pk, time.Now())
		}
		if pk.FixedHeader.Qos == 0 {
			if r.inline {
				r.deliverInline(b.ctx, msg)
			} else {
				r.enqueue(msg)
			}
			continue
		}
		if err := r.deliverSync(b.ctx, msg, b.opts.Limits.HandlerTimeout); err != nil {
			return err
		}
	}
	return nil
}
