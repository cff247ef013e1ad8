package broker

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A rate so low the bucket never refills during a test: only the burst
// passes, so the outcome does not depend on timing.
func rateLimitedBroker(t *testing.T) *Broker {
	l := DefaultLimits()
	l.MaxPublishRate, l.PublishBurst = 0.001, 2
	return startBroker(t, Options{Limits: l})
}

func TestPublishRateLimitV5(t *testing.T) {
	b := rateLimitedBroker(t)
	c, _ := v5Client(t, b.Addr(), "fast", nil)
	for i, want := range []byte{0, 0, 0x96, 0x96} {
		if got := publishCode(t, c, "t/x", "1", nil); got != want {
			t.Fatalf("publish %d: 0x%02x, want 0x%02x", i, got, want)
		}
	}
	// QoS 2 is refused in the PUBREC.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, _ := c.Publish(ctx, &paho.Publish{Topic: "t/x", QoS: 2, Payload: []byte("1")})
	if r == nil || r.ReasonCode != 0x96 {
		t.Fatalf("QoS 2 over the limit: %+v", r)
	}
	// QoS 0 is dropped, and the client stays connected.
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "t/x", QoS: 0, Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dropped QoS 0 counted", func() bool {
		return counterValue(b.metrics.rateLimited.WithLabelValues(rateDropped)) == 1
	})
	if v := counterValue(b.metrics.rateLimited.WithLabelValues(rateRefused)); v != 3 {
		t.Fatalf("refused %v", v)
	}
	// Another client has its own bucket.
	other, _ := v5Client(t, b.Addr(), "other", nil)
	if got := publishCode(t, other, "t/x", "1", nil); got != 0 {
		t.Fatalf("other client: 0x%02x", got)
	}
}

func TestPublishRateLimitV3Disconnects(t *testing.T) {
	b := rateLimitedBroker(t)
	lost := make(chan error, 1)
	o := pahov3.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("v3fast").
		SetAutoReconnect(false).SetConnectionLostHandler(func(_ pahov3.Client, err error) { lost <- err })
	c := pahov3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	for range 3 {
		c.Publish("t/x", 1, false, "1")
	}
	recvOne(t, lost, "disconnect of the 3.1.1 client")
	if v := counterValue(b.metrics.rateLimited.WithLabelValues(rateDisconnected)); v != 1 {
		t.Fatalf("disconnected %v", v)
	}
}

// The limits that existed before the rate limit are enforced and counted.
func TestLimitsCounted(t *testing.T) {
	l := DefaultLimits()
	l.MaxClients = 1
	b := startBroker(t, Options{Limits: l})
	v5Client(t, b.Addr(), "first", nil)
	c := paho.NewClient(paho.ClientConfig{Conn: tcpDial(t, b.Addr()), ClientID: "second"})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, _ := c.Connect(ctx, &paho.Connect{ClientID: "second", CleanStart: true})
	if ack == nil || ack.ReasonCode != packets.ErrServerBusy.Code {
		t.Fatalf("over max_clients: %+v", ack)
	}
	eventually(t, "max_clients refusal counted", func() bool {
		return counterValue(b.metrics.connectRefused.WithLabelValues("max_clients")) == 1
	})
}

// rawSubscriber connects with MQTT 3.1.1, subscribes to a/b at qos and
// then never reads nor acknowledges anything.
func rawSubscriber(t *testing.T, addr string, qos byte) {
	t.Helper()
	c := rawConnect(t, addr, connectV4)
	if _, err := c.Write([]byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', qos}); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x90 {
		t.Fatalf("SUBACK: %x %v", hdr, err)
	}
}

// A subscriber that does not acknowledge gets at most max_inflight QoS 1
// messages; the others are not sent to it and are counted.
func TestMaxInflightEnforcedAndCounted(t *testing.T) {
	l := DefaultLimits()
	l.MaxInflight = 2
	b := startBroker(t, Options{Limits: l})
	rawSubscriber(t, b.Addr(), 1)
	pub, _ := v5Client(t, b.Addr(), "pub", nil)
	for range 5 {
		publishCode(t, pub, "a/b", "x", nil)
	}
	eventually(t, "inflight drops counted", func() bool {
		return atomic.LoadInt64(&b.server.Info.InflightDropped) == 3
	})
}

// A subscriber that stops reading fills its socket, then its queue of
// max_queued_messages; further messages to it are dropped and counted, and
// the publisher is never blocked.
func TestMaxQueuedMessagesEnforcedAndCounted(t *testing.T) {
	l := DefaultLimits()
	l.MaxQueuedMessages = 4
	b := startBroker(t, Options{Limits: l})
	rawSubscriber(t, b.Addr(), 0)
	pub, _ := v5Client(t, b.Addr(), "pub", nil)
	payload := make([]byte, 64<<10)
	ctx := context.Background()
	eventually(t, "queued-message drops counted", func() bool {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "a/b", QoS: 0, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		return b.Stats().MessagesDropped > 0
	})
}
