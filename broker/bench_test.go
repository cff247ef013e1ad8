package broker

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
)

// BenchmarkPublishQoS1ToHandler is one QoS 1 publish over TCP from a paho
// MQTT 5 client, through the guard and mochi, delivered synchronously to a
// handler, until the PUBACK is back (sequential round trips).
func BenchmarkPublishQoS1ToHandler(b *testing.B) {
	br := startBroker(b, Options{})
	n := 0
	if err := br.Handle("sensors/#", HandlerFunc(func(_ context.Context, msgs []*Message) error {
		n += len(msgs)
		return nil
	}), HandlerOptions{}); err != nil {
		b.Fatal(err)
	}
	c, _ := v5Client(b, br.Addr(), "bench", nil)
	p := &paho.Publish{Topic: "sensors/t1", QoS: 1, Payload: []byte("22.5")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Publish(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandRoundTrip is one PING request over MQTT 5 (Response Topic
// and Correlation Data) until its reply arrives.
func BenchmarkCommandRoundTrip(b *testing.B) {
	br := startBroker(b, Options{})
	recv := make(chan *paho.Publish, 16)
	c, _ := v5Client(b, br.Addr(), "bench", recv)
	v5Subscribe(b, c, "reply/bench", 0)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		corr := []byte(strconv.Itoa(i))
		_, err := c.Publish(ctx, &paho.Publish{Topic: CommandTopic, Payload: []byte("PING"),
			Properties: &paho.PublishProperties{ResponseTopic: "reply/bench", CorrelationData: corr}})
		if err != nil {
			b.Fatal(err)
		}
		if r := recvOne(b, recv, "reply"); string(r.Properties.CorrelationData) != string(corr) {
			b.Fatalf("reply %q for %q", r.Properties.CorrelationData, corr)
		}
	}
}

// BenchmarkRetainedPublish: the broker's own retained publishes, which
// pass the retained-index gate (retaingate.go) and mochi's index.
func BenchmarkRetainedPublish(b *testing.B) {
	br := startBroker(b, Options{})
	topics := make([]string, 64)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench/retained/%d", i)
	}
	payload := []byte("21.5")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := br.Publish(&Message{Topic: topics[i%len(topics)], Payload: payload, Retain: true}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
