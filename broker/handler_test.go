package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
)

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"sensors/#", "sensors/t1", true},
		{"sensors/#", "sensors", true},
		{"sensors/#", "sensors/a/b/c", true},
		{"sensors/+", "sensors/t1", true},
		{"sensors/+", "sensors/t1/x", false},
		{"sensors/+", "sensors/", true},
		{"sensors/+/state", "sensors/a/state", true},
		{"sensors/+/state", "sensors/a/other", false},
		{"#", "anything/at/all", true},
		{"#", "$ferrite/cmd", false},
		{"+/cmd", "$ferrite/cmd", false},
		{"$ferrite/#", "$ferrite/cmd", true},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"+", "a", true},
		{"+/+", "a/b", true},
	}
	for _, tc := range cases {
		if got := matchTopic(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matchTopic(%q, %q) = %v", tc.filter, tc.topic, got)
		}
	}
	for _, f := range []string{"", "a/#/b", "a#", "a/+b", "$share/g/a"} {
		if validFilter(f) {
			t.Errorf("validFilter(%q) = true", f)
		}
	}
}

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu    sync.Mutex
	msgs  []*Message
	calls int
	err   error
	block chan struct{} // if set, QoS 0 batches wait for it
}

func (r *recorder) HandleMessages(ctx context.Context, msgs []*Message) error {
	if r.block != nil && msgs[0].QoS == 0 {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func TestHandlerQoS0And1(t *testing.T) {
	b := startBroker(t, Options{})
	rec := &recorder{}
	if err := b.Handle("sensors/#", rec, HandlerOptions{Name: "rec"}); err != nil {
		t.Fatal(err)
	}
	c, _ := v5Client(t, b.Addr(), "pub", nil)
	ctx := context.Background()
	for i := range 50 {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("sensors/t%d", i), Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "50 QoS 0 messages", func() bool { return rec.count() == 50 })

	// QoS 1: the handler has the message when PUBACK arrives.
	props := &paho.PublishProperties{User: paho.UserProperties{{Key: "unit", Value: "C"}}}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "sensors/q1", QoS: 1, Payload: []byte("22.5"), Properties: props}); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 51 {
		t.Fatalf("PUBACK before handler: %d messages", rec.count())
	}
	rec.mu.Lock()
	m := rec.msgs[50]
	rec.mu.Unlock()
	if m.Topic != "sensors/q1" || string(m.Payload) != "22.5" || m.QoS != 1 || m.ClientID != "pub" ||
		m.ProtocolVersion != 5 || len(m.UserProperties) != 1 || m.UserProperties[0].Value != "C" {
		t.Fatalf("message %+v", m)
	}
	// Not matching: not delivered.
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "other", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 51 {
		t.Fatal("non-matching topic delivered")
	}
	if got := counterValue(b.metrics.handlerMessages.WithLabelValues("rec", outcomeDelivered)); got != 51 {
		t.Fatalf("delivered = %v", got)
	}
}

func TestHandlerRejectMQTT5(t *testing.T) {
	b := startBroker(t, Options{})
	rec := &recorder{err: &RejectError{Code: CodeQuotaExceeded, Reason: "storage critical"}}
	if err := b.Handle("sensors/#", rec, HandlerOptions{}); err != nil {
		t.Fatal(err)
	}
	recv := make(chan *paho.Publish, 4)
	sub, _ := v5Client(t, b.Addr(), "sub", recv)
	v5Subscribe(t, sub, "#", 1)
	c, _ := v5Client(t, b.Addr(), "pub", nil)
	ctx := context.Background()

	resp, err := c.Publish(ctx, &paho.Publish{Topic: "sensors/a", QoS: 1, Payload: []byte("1")})
	if err == nil || resp == nil || resp.ReasonCode != CodeQuotaExceeded {
		t.Fatalf("QoS 1: resp %+v err %v", resp, err)
	}
	if resp.Properties == nil || resp.Properties.ReasonString != "storage critical" {
		t.Fatalf("reason string %+v", resp.Properties)
	}
	resp, err = c.Publish(ctx, &paho.Publish{Topic: "sensors/b", QoS: 2, Payload: []byte("1")})
	if err != nil || resp == nil || resp.ReasonCode != CodeQuotaExceeded {
		t.Fatalf("QoS 2: resp %+v err %v", resp, err)
	}
	// Any other error is refused with 0x80: the message was not stored.
	rec.mu.Lock()
	rec.err = errors.New("disk on fire")
	rec.mu.Unlock()
	resp, err = c.Publish(ctx, &paho.Publish{Topic: "sensors/c", QoS: 1, Payload: []byte("1")})
	if err == nil || resp.ReasonCode != CodeUnspecifiedError {
		t.Fatalf("plain error: resp %+v err %v", resp, err)
	}
	// Refused messages were not forwarded; an accepted one is.
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "elsewhere", QoS: 1, Payload: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	if got := recvOne(t, recv, "forwarded message"); got.Topic != "elsewhere" {
		t.Fatalf("subscriber got refused message on %s", got.Topic)
	}
}

func TestHandlerRejectMQTT311IsNotAcknowledged(t *testing.T) {
	b := startBroker(t, Options{})
	rec := &recorder{err: &RejectError{Code: CodeQuotaExceeded, Reason: "full"}}
	if err := b.Handle("sensors/#", rec, HandlerOptions{}); err != nil {
		t.Fatal(err)
	}
	c := v3Client(t, "tcp://"+b.Addr(), "pub3")
	tok := c.Publish("sensors/a", 1, false, "1")
	eventually(t, "handler call", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.calls == 1
	})
	// The ack never comes while the handler refuses: the ack of a later
	// publish on the same connection proves the broker processed the first
	// one and stayed silent.
	if tok2 := c.Publish("probe", 1, false, "x"); !tok2.WaitTimeout(waitTimeout) {
		t.Fatal("probe not acknowledged")
	}
	select {
	case <-tok.Done():
		t.Fatalf("refused 3.1.1 publish was acknowledged (err %v)", tok.Error())
	default:
	}
}

func TestHandlerQueueOverflowIsCounted(t *testing.T) {
	b := startBroker(t, Options{})
	rec := &recorder{block: make(chan struct{})}
	if err := b.Handle("s/#", rec, HandlerOptions{Name: "slow", QueueSize: 4, BatchSize: 1}); err != nil {
		t.Fatal(err)
	}
	c, _ := v5Client(t, b.Addr(), "pub", nil)
	for range 20 {
		if _, err := c.Publish(context.Background(), &paho.Publish{Topic: "s/x", Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	dropped := b.metrics.handlerMessages.WithLabelValues("slow", outcomeDropped)
	eventually(t, "drops", func() bool { return counterValue(dropped) > 0 })
	// The publisher is not stalled: a QoS 1 round trip on another topic works.
	if _, err := c.Publish(context.Background(), &paho.Publish{Topic: "other", QoS: 1, Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	close(rec.block)
	eventually(t, "queued messages delivered", func() bool {
		return float64(rec.count())+counterValue(dropped) == 20
	})
}

func TestHandlerDrainsQueueOnClose(t *testing.T) {
	b := startBroker(t, Options{})
	rec := &recorder{block: make(chan struct{})}
	if err := b.Handle("s/#", rec, HandlerOptions{Name: "drain", QueueSize: 100, BatchSize: 10}); err != nil {
		t.Fatal(err)
	}
	c, _ := v5Client(t, b.Addr(), "pub", nil)
	for range 30 {
		if _, err := c.Publish(context.Background(), &paho.Publish{Topic: "s/x", Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	// A QoS 1 publish after them proves the QoS 0 ones were read and queued.
	if _, err := c.Publish(context.Background(), &paho.Publish{Topic: "s/q", QoS: 1, Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	close(rec.block)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 31 {
		t.Fatalf("after Close: %d of 31 messages delivered", rec.count())
	}
	if err := b.Handle("x", rec, HandlerOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Handle after Close: %v", err)
	}
}
