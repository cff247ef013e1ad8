package broker

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/ferrite-edge/ferrite/test/pki"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// connectWith connects an MQTT 5 client with explicit session settings,
// an optional will and an optional receive maximum.
func connectWith(t *testing.T, addr, id string, clean bool, expiry uint32, will *paho.WillMessage, recvMax uint16, recv chan<- *paho.Publish) (*paho.Client, *paho.Connack) {
	t.Helper()
	c := newV5(tcpDial(t, addr), id, recv)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	props := &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	if recvMax > 0 {
		props.ReceiveMaximum = &recvMax
	}
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: clean, Properties: props}
	if will != nil {
		cp.WillMessage = will
	}
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c, ca
}

// A persistent session with a will, taken over by a connection whose
// session ends with it: the old connection's OnWillSent must not rewrite
// the session record after the new one's OnSessionEstablished forgot it
// (it did in 1 to 4 of 40 takeovers).
func TestPersistTakeoverWillDoesNotRestoreSession(t *testing.T) {
	st := openStateStore(t)
	b, _ := runPersistBroker(t, st, DefaultLimits())
	ghosts := 0
	for i := range 40 {
		id := fmt.Sprint("w", i)
		a, _ := connectWith(t, b.Addr(), id, true, 3600, &paho.WillMessage{Topic: "will/" + id, Payload: []byte("gone")}, 0, nil)
		_ = a
		eventually(t, "session stored", func() bool { return len(brokerRecords(t, st, clientKey(kindSession, id))) == 1 })
		bc, _ := connectWith(t, b.Addr(), id, true, 0, nil, 0, nil) // session ends with the connection
		_ = bc.Disconnect(&paho.Disconnect{})
		eventually(t, "both connections gone", func() bool { return atomic.LoadInt64(&b.server.Info.ClientsConnected) == 0 })
		if n := len(brokerRecords(t, st, clientKey(kindSession, id))); n > 0 {
			ghosts++
		}
	}
	if ghosts > 0 {
		t.Fatalf("%d of 40 takeovers left a stored session for a session that ended", ghosts)
	}
}

// A v5 subscriber with Receive Maximum 1 and a persistent session: messages
// mochi queues for the send quota are sent from processPacket's
// NextImmediate path, which deletes them from the inflight table without
// OnQosComplete; their records stay forever.
func TestPersistQueuedMessageRecordsDeleted(t *testing.T) {
	st := openStateStore(t)
	b, stop := runPersistBroker(t, st, DefaultLimits())
	recv := make(chan *paho.Publish, 64)
	c, _ := connectWith(t, b.Addr(), "slow", true, 3600, nil, 1, recv)
	v5Subscribe(t, c, "q/#", 1)
	for i := range 10 {
		if err := b.Publish(&Message{Topic: "q/x", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Drain what mochi sends (it stalls part of the way: its own
	// send-quota bug), then the records must match what mochi holds.
	got := 0
	for done := false; !done; {
		select {
		case <-recv:
			got++
		case <-time.After(time.Second):
			done = true
		}
	}
	cl, _ := b.server.Clients.Get("slow")
	eventually(t, "one message record per message mochi holds", func() bool {
		return len(brokerRecords(t, st, kindMessage)) == cl.State.Inflight.Len()
	})
	_ = c.Disconnect(&paho.Disconnect{})
	stop()
	t.Logf("received %d of 10", got)
}

// Cert-only deployment (no password file, anonymous from loopback): a
// restored session has no connection, so clientInfo has no CertIdentity and
// FileAuth.Identity says "" (anonymous). The certificate owner is refused
// her own client id after a restart, and an anonymous client takes her
// session over and reads the messages queued for her.
func TestPersistRestoredSessionKeepsCertIdentity(t *testing.T) {
	ca := pki.NewCA(t, "test")
	cert, key := ca.Issue("broker", true)
	tlsSt, err := LoadServerTLS(TLSFiles{Cert: cert, Key: key, ClientCA: ca.File})
	if err != nil {
		t.Fatal(err)
	}
	st := openStateStore(t)
	run := func() (*Broker, func()) {
		a, err := NewFileAuth(AuthOptions{AnonymousFromLoopback: true, Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return runPersistBrokerWith(t, st, Options{TLSListen: "127.0.0.1:0", TLS: tlsSt, IdentityAsUsername: true,
			Auth: a, Limits: DefaultLimits()})
	}
	aliceCert, aliceKey := ca.Issue("alice", false)
	dialAlice := func(b *Broker, clean bool) (*paho.Client, byte) {
		conn, err := tlsDial(t, b.TLSAddr(), pki.ClientTLS(t, ca, aliceCert, aliceKey))
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: &lockedConn{Conn: conn}, ClientID: "alice-phone"})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		exp := uint32(3600)
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: "alice-phone", KeepAlive: 30, CleanStart: clean,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}})
		if err != nil {
			if ack != nil {
				return nil, ack.ReasonCode
			}
			t.Fatal(err)
		}
		return c, ack.ReasonCode
	}
	b, stop := run()
	alice, code := dialAlice(b, true)
	if code != 0 {
		t.Fatalf("alice: 0x%02x", code)
	}
	v5Subscribe(t, alice, "alice/#", 1)
	_ = alice.Disconnect(&paho.Disconnect{})
	// Before the restart, the kept session is protected.
	if _, code := dialV5(t, tcpDial(t, b.Addr()), "alice-phone", "", "", nil); code != 0x86 {
		t.Fatalf("before restart, anonymous on alice's id: 0x%02x", code)
	}
	stop()

	b2, _ := run()
	if err := b2.Publish(&Message{Topic: "alice/secret", Payload: []byte("pin 1234"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if _, code := dialAlice(b2, false); code != 0 {
		t.Errorf("after restart alice is refused her own client id: CONNACK 0x%02x", code)
	}
	// An anonymous local client on alice's id.
	recv := make(chan *paho.Publish, 4)
	c := newV5(tcpDial(t, b2.Addr()), "alice-phone", recv)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	exp := uint32(3600)
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: "alice-phone", KeepAlive: 30, CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}})
	if err == nil && ack.SessionPresent {
		select {
		case p := <-recv:
			t.Errorf("anonymous client took alice's restored session and read %s %q", p.Topic, p.Payload)
		case <-time.After(time.Second):
			t.Errorf("anonymous client took alice's restored session")
		}
	}
}

// Two publishers retaining on one topic: mochi updates its retained map and
// then calls OnRetainMessage without a lock, so the store can end with the
// older message while memory holds the newer one.
func TestPersistRetainedConcurrentPublishers(t *testing.T) {
	st := openStateStore(t)
	b, _ := runPersistBroker(t, st, DefaultLimits())
	bad := 0
	for round := range 300 {
		done := make(chan struct{})
		for g := range 2 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range 3 {
					_ = b.Publish(&Message{Topic: "r/t", Payload: []byte(fmt.Sprint(round, "-", g, "-", i)), QoS: 0, Retain: true})
				}
			}()
		}
		<-done
		<-done
		mem, _ := b.server.Topics.Retained.Get("r/t")
		var stored []byte
		_ = st.BrokerRecords(context.Background(), kindRetained+"r/t", func(_ string, rec []byte) error {
			pk, _ := decodeRetained("r/t", rec)
			stored = pk.Payload
			return nil
		})
		if string(mem.Payload) != string(stored) {
			bad++
			t.Logf("round %d: memory %q, store %q", round, mem.Payload, stored)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of 300 rounds: store differs from memory", bad)
	}
}

type slowEstablish struct {
	mqtt.HookBase
	n atomic.Int32
}

func (h *slowEstablish) ID() string           { return "slow" }
func (h *slowEstablish) Provides(b byte) bool { return b == mqtt.OnSessionEstablish }
func (h *slowEstablish) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if h.n.Add(1) == 1 {
		time.Sleep(300 * time.Millisecond) // stands for a slow auth backend or a loaded CPU
	}
}

// A clean-session client whose connection resets before its CONNACK is
// written stays in mochi's client map (attachClient returns on the
// SendConnack error before its Clients.Delete). The next connection with
// that id waits the whole takeoverWait in OnSessionEstablish.
func TestTakeoverOfZombieClient(t *testing.T) {
	b := startBroker(t, Options{})
	if err := b.server.AddHook(&slowEstablish{}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(connectV4); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
	time.Sleep(500 * time.Millisecond)
	z, ok := b.server.Clients.Get("a")
	t.Logf("zombie in the map: %v (closed %v)", ok, ok && z.Closed())
	start := time.Now()
	v3Client(t, "tcp://"+b.Addr(), "a")
	// Without connMeta.ended the hook waited the whole takeoverWait (5 s)
	// for a goroutine that no longer exists; a reconnect takes milliseconds.
	if d := time.Since(start); d >= takeoverWait/2 {
		t.Fatalf("reconnect took %v: the hook waited for a connection that had ended", d)
	}
}

// Every QoS 1 publish FROM a persistent-session client costs a store
// delete: processPublish calls OnQosComplete with its own PUBACK.
func TestPersistInboundQoS1WritesNothing(t *testing.T) {
	st := openStateStore(t)
	b, _ := runPersistBroker(t, st, DefaultLimits())
	c, _ := connectWith(t, b.Addr(), "sensor", false, 3600, nil, 0, nil)
	for i := range 50 {
		if code := publishCode(t, c, "sensors/t", fmt.Sprint(i), nil); code != 0 {
			t.Fatal(code)
		}
	}
	if n := counterValue(b.metrics.persist.WithLabelValues("message", persistDeleted)); n > 0 {
		t.Errorf("50 inbound QoS 1 publishes, nothing queued to the client: %v message deletes written", n)
	}
}

// persistent(cl) reads the session expiry on publisher goroutines while the
// client's goroutine rewrites it on DISCONNECT (MQTT 5 session expiry
// property).
func TestPersistExpiryChangeNoRace(t *testing.T) {
	st := openStateStore(t)
	b, _ := runPersistBroker(t, st, DefaultLimits())
	for range 20 {
		c, _ := connectWith(t, b.Addr(), "r", false, 3600, nil, 0, nil)
		v5Subscribe(t, c, "race/#", 1)
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = b.Publish(&Message{Topic: "race/x", Payload: []byte("x"), QoS: 1})
				}
			}
		}()
		zero := uint32(0)
		_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: &zero}})
		time.Sleep(20 * time.Millisecond)
		close(stop)
	}
}

// A subscription record whose session record is gone (a corrupt session
// record is deleted by load, its subscriptions are not) is loaded into
// mochi's topic index for a client that does not exist; the next client to
// take that id, even with a clean session, receives its messages.
func TestPersistOrphanSubscriptionDropped(t *testing.T) {
	st := openStateStore(t)
	rec := []byte(`{"t":"subscription","client":"ghost","filter":"secret/#","qos":1}`)
	if err := st.SetBrokerRecord(context.Background(), clientKey(kindSubscription, "ghost")+"secret/#", rec); err != nil {
		t.Fatal(err)
	}
	if err := st.SetBrokerRecord(context.Background(), clientKey(kindSession, "ghost"), []byte("{corrupt")); err != nil {
		t.Fatal(err)
	}
	b, _ := runPersistBroker(t, st, DefaultLimits())
	if got := counterValue(b.metrics.persist.WithLabelValues("subscription", persistCorrupt)); got != 1 {
		t.Fatalf("orphan subscriptions dropped: %v", got)
	}
	recv := make(chan *paho.Publish, 4)
	c, _ := v5Client(t, b.Addr(), "ghost", recv) // clean start, session ends with the connection
	v5Subscribe(t, c, "marker", 1)
	for _, topic := range []string{"secret/x", "marker"} {
		if err := b.Publish(&Message{Topic: topic, Payload: []byte("s"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if p := recvOne(t, recv, "marker"); p.Topic != "marker" {
		t.Fatalf("a clean session that did not subscribe to it received %s", p.Topic)
	}
}
