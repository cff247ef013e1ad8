package broker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// gateIdle reports whether no write or scan holds the retained-index gate.
func (g *retainGate) idle() (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ok := g.writers == 0 && g.scans == 0 && g.scanWait == 0 && len(g.held) == 0 && g.timeouts == 0
	return ok, fmt.Sprintf("writers=%d scans=%d waiting=%d held=%d timeouts=%d",
		g.writers, g.scans, g.scanWait, len(g.held), g.timeouts)
}

func waitGateIdle(t *testing.T, g *retainGate) {
	t.Helper()
	var last string
	eventually(t, "an idle retained gate", func() bool {
		ok, s := g.idle()
		last = s
		return ok
	})
	if ok, s := g.idle(); !ok {
		t.Fatalf("gate %s (last %s)", s, last)
	}
}

func v3Wait(t *testing.T, tok pahov3.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// TestRetainedScanRace: retained writes (new topics, updates, deletes that
// trim the index) race wildcard subscriptions that scan it. Under -race
// this reported mochi's unguarded read of retainPath before the gate; it
// also checks that every bracket closes.
func TestRetainedScanRace(t *testing.T) {
	b := startBroker(t, Options{})
	url := "tcp://" + b.Addr()
	const rounds = 150
	var wg sync.WaitGroup
	for p := range 2 {
		pub := v3Client(t, url, fmt.Sprintf("gate-pub-%d", p))
		wg.Go(func() {
			for i := range rounds {
				topic := fmt.Sprintf("gate/%d/%d", p, i%20)
				payload := []byte("v")
				if i%3 == 2 {
					payload = nil // delete: trims the topic's node
				}
				pub.Publish(topic, 0, true, payload).Wait()
			}
		})
	}
	for s := range 2 {
		sub := v3Client(t, url, fmt.Sprintf("gate-sub-%d", s))
		wg.Go(func() {
			for i := range rounds / 3 {
				f := []string{"gate/#", "gate/+/+", "+/0/#"}[i%3]
				if !sub.Subscribe(f, 0, func(pahov3.Client, pahov3.Message) {}).WaitTimeout(waitTimeout) {
					t.Errorf("subscribe %s timed out", f)
					return
				}
				// Two filters in one SUBSCRIBE hold the gate longer.
				two := map[string]byte{"gate/0/+": 0, "gate/+/1": 1}
				if !sub.SubscribeMultiple(two, func(pahov3.Client, pahov3.Message) {}).WaitTimeout(waitTimeout) {
					t.Errorf("subscribe %v timed out", two)
					return
				}
				sub.Unsubscribe(f, "gate/0/+", "gate/+/1").WaitTimeout(waitTimeout)
			}
		})
	}
	// The broker's own retained publishes (Home Assistant discovery,
	// status) take the same path through the inline client.
	wg.Go(func() {
		for i := range rounds {
			if err := b.Publish(&Message{Topic: fmt.Sprintf("gate/inline/%d", i%10), Payload: []byte("x"), Retain: true}); err != nil {
				t.Errorf("inline publish: %v", err)
				return
			}
		}
	})
	wg.Wait()
	waitGateIdle(t, b.gate)

	// The index is intact: a new subscriber gets exactly what is retained.
	got := make(chan string, 100)
	sub := v3Client(t, url, "gate-check")
	v3Wait(t, sub.Subscribe("gate/#", 0, func(_ pahov3.Client, m pahov3.Message) { got <- m.Topic() }), "subscribe")
	want := 2*20 - 2*countDeleted(rounds) + 10
	seen := map[string]bool{}
	deadline := time.After(waitTimeout)
	for len(seen) < want {
		select {
		case tp := <-got:
			seen[tp] = true
		case <-deadline:
			t.Fatalf("got %d retained messages, want %d: %v", len(seen), want, seen)
		}
	}
	waitGateIdle(t, b.gate)
}

// countDeleted returns how many of a publisher's 20 topics end deleted
// after rounds publishes (topic i%20, deleted when i%3 == 2).
func countDeleted(rounds int) int {
	last := map[int]bool{}
	for i := range rounds {
		last[i%20] = i%3 == 2
	}
	n := 0
	for _, d := range last {
		if d {
			n++
		}
	}
	return n
}

// TestRetainGateBrackets: every way a publish can end leaves the gate
// idle, including those where mochi never writes the retained message.
func TestRetainGateBrackets(t *testing.T) {
	l := DefaultLimits()
	l.MaxPublishRate, l.PublishBurst = 0.001, 2
	b := startBroker(t, Options{Limits: l})
	url := "tcp://" + b.Addr()
	c := v3Client(t, url, "brackets")
	// Retained publish to the command topic: the ferrite hook ends the
	// OnPublish chain (CodeSuccessIgnore), nothing is retained.
	v3Wait(t, c.Publish(CommandTopic, 1, true, []byte("PING")), "command publish")
	// Rate-limited retained publishes: refused before the gate hook.
	for range 5 {
		c.Publish("gate/limited", 0, true, []byte("x"))
	}
	// A retained will, sent at once when the client drops.
	o := pahov3.NewClientOptions().AddBroker(url).SetClientID("will").SetAutoReconnect(false).
		SetBinaryWill("gate/will", []byte("gone"), 0, true)
	w := pahov3.NewClient(o)
	v3Wait(t, w.Connect(), "connect will client")
	got := make(chan string, 4)
	v3Wait(t, c.Subscribe("gate/will", 0, func(_ pahov3.Client, m pahov3.Message) { got <- string(m.Payload()) }), "subscribe will")
	cl, ok := b.server.Clients.Get("will")
	if !ok {
		t.Fatal("will client not found")
	}
	_ = cl.Net.Conn.Close() // an abrupt drop sends the will
	select {
	case p := <-got:
		if p != "gone" {
			t.Fatalf("will payload %q", p)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no will")
	}
	waitGateIdle(t, b.gate)
}

// TestRetainGateScanWindow: which SUBSCRIBEs hold the gate, and until when.
func TestRetainGateScanWindow(t *testing.T) {
	g := newRetainGate(testLogger(t))
	h := &gateEnterHook{g: g}
	m := &connMeta{}
	cl := &mqtt.Client{}
	cl.Net.Conn = &guardConn{meta: m}
	scans := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.scans
	}
	subscribe := func(codes []byte, filters ...packets.Subscription) packets.Packet {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, Filters: filters}
		h.OnSubscribed(cl, pk, codes)
		h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}}, nil)
		return pk
	}
	retained := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}}

	// One filter: the scan is over once its first retained message is out.
	pk := subscribe([]byte{0}, packets.Subscription{Filter: "a/#"})
	if scans() != 1 {
		t.Fatalf("one filter: %d scans after the SUBACK", scans())
	}
	h.OnRetainPublished(cl, retained)
	if scans() != 0 {
		t.Fatalf("one filter: %d scans after its first retained message", scans())
	}
	h.OnRetainPublished(cl, retained)
	h.OnPacketProcessed(cl, pk, nil)
	if ok, s := g.idle(); !ok {
		t.Fatalf("one filter: gate %s", s)
	}

	// Two filters: mochi may still scan the second, so the gate is held
	// until the SUBSCRIBE has been processed.
	pk = subscribe([]byte{0, 1}, packets.Subscription{Filter: "a/#"}, packets.Subscription{Filter: "b/+"})
	h.OnRetainPublished(cl, retained)
	if scans() != 1 {
		t.Fatalf("two filters: %d scans after the first retained message", scans())
	}
	h.OnPacketProcessed(cl, pk, nil)
	if ok, s := g.idle(); !ok {
		t.Fatalf("two filters: gate %s", s)
	}

	// Nothing to scan: shared, retain handling 2, refused.
	for _, c := range []struct {
		code byte
		sub  packets.Subscription
	}{
		{0, packets.Subscription{Filter: "$share/g/a/#"}},
		{0, packets.Subscription{Filter: "a/#", RetainHandling: 2}},
		{packets.ErrNotAuthorized.Code, packets.Subscription{Filter: "a/#"}},
	} {
		pk = subscribe([]byte{c.code}, c.sub)
		if scans() != 0 {
			t.Fatalf("%+v (code %#x) entered the gate", c.sub, c.code)
		}
		h.OnPacketProcessed(cl, pk, nil)
	}
	if ok, s := g.idle(); !ok {
		t.Fatalf("gate %s", s)
	}
}
