package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// openStateStore opens a real store on a temp dir (the node's
// StateStore).
func openStateStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{NodeID: "n1", Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// runPersistBroker starts a broker that persists its state in ss; the
// returned func closes it (a restart is close + runPersistBroker).
func runPersistBroker(t *testing.T, ss StateStore, l Limits) (*Broker, func()) {
	t.Helper()
	return runPersistBrokerWith(t, ss, Options{Limits: l})
}

// runPersistBrokerWith is runPersistBroker with more options (listening on
// 127.0.0.1:0 when o names no listener).
func runPersistBrokerWith(t *testing.T, ss StateStore, o Options) (*Broker, func()) {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	o.Logger, o.Registerer = testLogger(t), prometheus.NewRegistry()
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PersistState(ss); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := false
	stop := func() {
		if closed {
			return
		}
		closed = true
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	t.Cleanup(stop)
	return b, stop
}

func publishRetained(t *testing.T, c *paho.Client, topic, payload string, props *paho.PublishProperties) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload), Properties: props}); err != nil {
		t.Fatal(err)
	}
}

// Retained messages, with their MQTT 5 properties, survive a restart of
// the broker; a cleared one stays cleared and expired ones are not loaded.
func TestRetainedSurvivesRestart(t *testing.T) {
	st := openStateStore(t)
	b, stop := runPersistBroker(t, st, DefaultLimits())
	pub, _ := v5Client(t, b.Addr(), "pub", nil)
	publishRetained(t, pub, "home/light/state", "ON", &paho.PublishProperties{
		ContentType: "text/plain", User: paho.UserProperties{{Key: "room", Value: "hall"}}})
	publishRetained(t, pub, "home/door/state", "open", nil)
	publishRetained(t, pub, "home/door/state", "", nil) // clears it
	if got := counterValue(b.metrics.persist.WithLabelValues("retained", persistStored)); got != 2 {
		t.Fatalf("stored = %v", got)
	}
	stop()
	// Two records the restart must not load: one past its MQTT 5 expiry,
	// one older than a broker.limits.message_expiry cap of 24h.
	now := time.Now().Unix()
	for topic, pk := range map[string]packets.Packet{
		"home/flash/state": {Payload: []byte("gone"), Created: now - 20, Expiry: now - 10, ProtocolVersion: 5},
		"home/old/state":   {Payload: []byte("old"), Created: now - 25*3600},
	} {
		if err := st.SetBrokerRecord(context.Background(), kindRetained+topic, encodeRetained(pk)); err != nil {
			t.Fatal(err)
		}
	}
	capped := DefaultLimits()
	capped.MessageExpiry = 24 * time.Hour
	b2, _ := runPersistBroker(t, st, capped)
	if got := counterValue(b2.metrics.persist.WithLabelValues("retained", persistLoaded)); got != 1 {
		t.Fatalf("loaded = %v", got)
	}
	recv := make(chan *paho.Publish, 8)
	sub, _ := v5Client(t, b2.Addr(), "sub", recv)
	v5Subscribe(t, sub, "home/#", 1)
	p := recvOne(t, recv, "retained after restart")
	if p.Topic != "home/light/state" || string(p.Payload) != "ON" || !p.Retain ||
		p.Properties.ContentType != "text/plain" || p.Properties.User.Get("room") != "hall" {
		t.Fatalf("got %s %q retain=%v %+v", p.Topic, p.Payload, p.Retain, p.Properties)
	}
	// Nothing else was retained: the next message is a live one.
	if err := b2.Publish(&Message{Topic: "home/marker", Payload: []byte("m"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if p := recvOne(t, recv, "marker"); p.Topic != "home/marker" {
		t.Fatalf("unexpected %s %q", p.Topic, p.Payload)
	}
	// The expired record was removed from the store too.
	var topics []string
	if err := st.BrokerRecords(context.Background(), kindRetained, func(key string, _ []byte) error {
		topics = append(topics, key[1:])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(topics) != 1 || topics[0] != "home/light/state" {
		t.Fatalf("stored topics %q", topics)
	}
}

// A record that does not decode is skipped, counted and removed; the
// broker starts.
func TestRetainedCorruptRecord(t *testing.T) {
	st := openStateStore(t)
	if err := st.SetBrokerRecord(context.Background(), kindRetained+"bad/topic", []byte{1, 0x80}); err != nil {
		t.Fatal(err)
	}
	b, _ := runPersistBroker(t, st, DefaultLimits())
	if got := counterValue(b.metrics.persist.WithLabelValues("retained", persistCorrupt)); got != 1 {
		t.Fatalf("corrupt = %v", got)
	}
	err := st.BrokerRecords(context.Background(), "", func(key string, _ []byte) error {
		return errors.New("still stored: " + key)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRetainedRecordRoundTrip(t *testing.T) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:       "a/b",
		Payload:         []byte("payload"),
		Origin:          "client-1",
		Created:         1795805108,
		Expiry:          1795808708,
		ProtocolVersion: 5,
		Properties: packets.Properties{
			PayloadFormat: 1, PayloadFormatFlag: true, ContentType: "application/json",
			ResponseTopic: "r/t", CorrelationData: []byte{0, 1, 2},
			User: []packets.UserProperty{{Key: "k", Val: "v"}, {Key: "k", Val: "w"}},
		},
	}
	got, err := decodeRetained("a/b", encodeRetained(pk))
	if err != nil {
		t.Fatal(err)
	}
	if got.TopicName != pk.TopicName || !bytes.Equal(got.Payload, pk.Payload) || got.Origin != pk.Origin ||
		got.Created != pk.Created || got.Expiry != pk.Expiry || got.ProtocolVersion != 5 ||
		got.FixedHeader.Qos != 1 || !got.FixedHeader.Retain ||
		got.Properties.PayloadFormat != 1 || !got.Properties.PayloadFormatFlag ||
		got.Properties.ContentType != pk.Properties.ContentType || got.Properties.ResponseTopic != "r/t" ||
		!bytes.Equal(got.Properties.CorrelationData, []byte{0, 1, 2}) || len(got.Properties.User) != 2 ||
		got.Properties.User[1].Val != "w" {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, pk)
	}
}

// Garbage records are errors, never panics.
func FuzzDecodeRetained(f *testing.F) {
	f.Add(encodeRetained(packets.Packet{TopicName: "t", Payload: []byte("x"), Created: 1}))
	f.Add([]byte{1, 0x80})
	f.Add([]byte{1, 2, 2, 1, 5, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, rec []byte) {
		pk, err := decodeRetained("t", rec)
		if err == nil && len(pk.Payload) == 0 {
			t.Fatal("empty payload accepted")
		}
	})
}

// connectPersistent connects an MQTT 5 client with a session that outlives
// its connection by expiry seconds (0: it ends with the connection).
func connectPersistent(t *testing.T, addr, id string, clean bool, expiry uint32, recv chan<- *paho.Publish) (*paho.Client, *paho.Connack) {
	t.Helper()
	return connectWith(t, addr, id, clean, expiry, nil, 0, recv)
}

// brokerRecords lists the stored record keys under prefix.
func brokerRecords(t *testing.T, st *store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.BrokerRecords(context.Background(), prefix, func(key string, _ []byte) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A persistent session survives a restart of the broker: its subscription
// and the QoS 1 message queued for it while it was away. Sessions that end
// with their connection are never written, and a clean start forgets a
// stored session.
// At the Critical resource level the store refuses writes; a session's
// update was refused too, and the old record deleted, so a restart lost
// persistent sessions (from the resources audit). Updates of stored
// sessions go through; new sessions are refused, so clients cannot grow
// the store past its limit.
func TestSessionPersistedWhileWritesRefused(t *testing.T) {
	st := openStateStore(t)
	b, stop := runPersistBroker(t, st, DefaultLimits())
	keeper, _ := connectPersistent(t, b.Addr(), "keeper", true, 3600, nil)
	v5Subscribe(t, keeper, "q/#", 1)
	eventually(t, "session stored", func() bool { return len(brokerRecords(t, st, kindSession)) == 1 })
	st.SetRefuseWrites("critical: disk")
	_ = keeper.Disconnect(&paho.Disconnect{})
	eventually(t, "keeper offline", func() bool {
		cl, ok := b.server.Clients.Get("keeper")
		return ok && cl.Closed()
	})
	keeper, _ = connectPersistent(t, b.Addr(), "keeper", false, 3600, nil) // resumes: updates the record
	_ = keeper.Disconnect(&paho.Disconnect{})
	newcomer, _ := connectPersistent(t, b.Addr(), "newcomer", true, 3600, nil)
	_ = newcomer.Disconnect(&paho.Disconnect{})
	eventually(t, "both offline", func() bool {
		k, ok1 := b.server.Clients.Get("keeper")
		n, ok2 := b.server.Clients.Get("newcomer")
		return ok1 && ok2 && k.Closed() && n.Closed()
	})
	if got := brokerRecords(t, st, kindSession); len(got) != 1 || len(brokerRecords(t, st, kindSubscription)) != 1 {
		t.Fatalf("sessions stored at Critical: %q (want keeper's only)", got)
	}
	stop()
	b2, _ := runPersistBroker(t, st, DefaultLimits())
	if _, ca := connectPersistent(t, b2.Addr(), "keeper", false, 3600, nil); !ca.SessionPresent {
		t.Fatal("session lost across a restart at Critical")
	}
}

func TestPersistentSessionSurvivesRestart(t *testing.T) {
	st := openStateStore(t)
	b, stop := runPersistBroker(t, st, DefaultLimits())
	keeper, _ := connectPersistent(t, b.Addr(), "keeper", true, 3600, nil)
	v5Subscribe(t, keeper, "q/#", 1)
	transient, _ := connectPersistent(t, b.Addr(), "transient", true, 0, nil)
	v5Subscribe(t, transient, "q/#", 1)
	_ = keeper.Disconnect(&paho.Disconnect{})
	_ = transient.Disconnect(&paho.Disconnect{})
	eventually(t, "keeper offline", func() bool {
		cl, ok := b.server.Clients.Get("keeper")
		return ok && cl.Closed()
	})
	if err := b.Publish(&Message{Topic: "q/1", Payload: []byte("while away"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "queued message stored", func() bool { return len(brokerRecords(t, st, kindMessage)) == 1 })
	if got := len(brokerRecords(t, st, kindSession)); got != 1 {
		t.Fatalf("%d sessions stored, want only the persistent one", got)
	}
	stop()

	b2, _ := runPersistBroker(t, st, DefaultLimits())
	for kind, want := range map[string]float64{"session": 1, "subscription": 1, "message": 1} {
		if got := counterValue(b2.metrics.persist.WithLabelValues(kind, persistLoaded)); got != want {
			t.Errorf("%s loaded = %v, want %v", kind, got, want)
		}
	}
	recv := make(chan *paho.Publish, 8)
	c, ca := connectPersistent(t, b2.Addr(), "keeper", false, 3600, recv)
	if !ca.SessionPresent {
		t.Fatal("session not present after the restart")
	}
	if p := recvOne(t, recv, "queued message"); p.Topic != "q/1" || string(p.Payload) != "while away" {
		t.Fatalf("got %s %q", p.Topic, p.Payload)
	}
	if err := b2.Publish(&Message{Topic: "q/2", Payload: []byte("live"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if p := recvOne(t, recv, "message to the restored subscription"); p.Topic != "q/2" {
		t.Fatalf("got %s %q", p.Topic, p.Payload)
	}
	eventually(t, "acknowledged messages deleted", func() bool { return len(brokerRecords(t, st, kindMessage)) == 0 })
	_ = c.Disconnect(&paho.Disconnect{})

	// A clean start with a session ending with the connection forgets it.
	c2, ca := connectPersistent(t, b2.Addr(), "keeper", true, 0, nil)
	if ca.SessionPresent {
		t.Fatal("clean start: session present")
	}
	eventually(t, "session forgotten", func() bool { return len(brokerRecords(t, st, "")) == 0 })
	_ = c2.Disconnect(&paho.Disconnect{})
	// mochi's loaders do not count what they load: the subscription
	// count must not go negative when the restored subscription ends. (The
	// in-flight count drifts in any takeover with messages in flight,
	// restored or not: see the gauge in metrics.go.)
	if s := atomic.LoadInt64(&b2.server.Info.Subscriptions); s != 0 {
		t.Fatalf("subscriptions gauge %d after the session ended", s)
	}
}

// Without a message_expiry cap (the default, as in mosquitto) a retained
// message is kept however old it is.
func TestRetainedKeptWithoutCap(t *testing.T) {
	st := openStateStore(t)
	old := packets.Packet{Payload: []byte("set last year"), Created: time.Now().Unix() - 365*24*3600}
	if err := st.SetBrokerRecord(context.Background(), kindRetained+"home/old/state", encodeRetained(old)); err != nil {
		t.Fatal(err)
	}
	b, _ := runPersistBroker(t, st, DefaultLimits())
	recv := make(chan *paho.Publish, 2)
	c, _ := v5Client(t, b.Addr(), "reader", recv)
	v5Subscribe(t, c, "home/#", 1)
	if p := recvOne(t, recv, "old retained message"); string(p.Payload) != "set last year" {
		t.Fatalf("got %s %q", p.Topic, p.Payload)
	}
}

// A resumed session gets its queued messages in the order they were
// published, after a reconnect and after a restart (mochi resent them in
// an order shuffled within each second).
func TestResumeKeepsOrder(t *testing.T) {
	st := openStateStore(t)
	b, stop := runPersistBroker(t, st, DefaultLimits())
	c, _ := connectPersistent(t, b.Addr(), "orderly", true, 3600, nil)
	v5Subscribe(t, c, "o/#", 1)
	queue := func(b *Broker, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := b.Publish(&Message{Topic: "o/x", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := func(recv chan *paho.Publish, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if p := recvOne(t, recv, "queued message"); string(p.Payload) != fmt.Sprint(i) {
				t.Fatalf("message %d: got %q", i, p.Payload)
			}
		}
	}
	_ = c.Disconnect(&paho.Disconnect{})
	eventually(t, "offline", func() bool {
		cl, ok := b.server.Clients.Get("orderly")
		return ok && cl.Closed()
	})
	queue(b, 0, 40)
	recv := make(chan *paho.Publish, 64)
	c, _ = connectPersistent(t, b.Addr(), "orderly", false, 3600, recv)
	expect(recv, 0, 40)
	// paho acknowledges after its handler returned: wait for the broker to
	// have every PUBACK, or the unacknowledged ones stay queued (rightly)
	// and are redelivered before the next 40.
	eventually(t, "the 40 acknowledged", func() bool {
		cl, ok := b.server.Clients.Get("orderly")
		return ok && cl.State.Inflight.Len() == 0
	})
	_ = c.Disconnect(&paho.Disconnect{})
	eventually(t, "offline again", func() bool {
		cl, ok := b.server.Clients.Get("orderly")
		return ok && cl.Closed()
	})
	queue(b, 40, 40)
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(2 * time.Millisecond) {
		stored := brokerRecords(t, st, kindMessage)
		if len(stored) == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queued messages stored, want 40: %q", len(stored), stored)
		}
	}
	stop()
	b2, _ := runPersistBroker(t, st, DefaultLimits())
	recv2 := make(chan *paho.Publish, 64)
	connectPersistent(t, b2.Addr(), "orderly", false, 3600, recv2)
	expect(recv2, 40, 40)
}

// A session that expired while the broker was down is not restored; one
// still alive keeps only what is left of its expiry (mochi counts a
// restored session's expiry from the restart).
func TestRestoredSessionExpiry(t *testing.T) {
	st := openStateStore(t)
	now := time.Now().Unix()
	for id, left := range map[string]int64{"gone": -600, "alive": 600} {
		rec := fmt.Sprintf(`{"id":%q,"t":"client","protocolVersion":5,"properties":{"sessionExpiryInterval":3600,"sessionExpiryIntervalFlag":true},"disconnected":%d}`,
			id, now-3600+left)
		if err := st.SetBrokerRecord(context.Background(), clientKey(kindSession, id), []byte(rec)); err != nil {
			t.Fatal(err)
		}
		sub := fmt.Sprintf(`{"t":"subscription","client":%q,"filter":"x/#","qos":1}`, id)
		if err := st.SetBrokerRecord(context.Background(), clientKey(kindSubscription, id)+"x/#", []byte(sub)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := runPersistBroker(t, st, DefaultLimits())
	if _, ok := b.server.Clients.Get("gone"); ok {
		t.Error("a session expired while the broker was down was restored")
	}
	if n := len(brokerRecords(t, st, clientKey(kindSession, "gone"))) + len(brokerRecords(t, st, clientKey(kindSubscription, "gone"))); n != 0 {
		t.Errorf("%d records of the expired session left", n)
	}
	cl, ok := b.server.Clients.Get("alive")
	if !ok {
		t.Fatal("live session not restored")
	}
	if got := cl.Properties.Props.SessionExpiryInterval; got > 600 || got < 590 {
		t.Errorf("restored expiry %d s, want what was left (600 s)", got)
	}
	if got := counterValue(b.metrics.persist.WithLabelValues("subscription", persistLoaded)); got != 1 {
		t.Errorf("subscriptions loaded = %v, want the live session's only", got)
	}
}
