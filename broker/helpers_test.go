package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const waitTimeout = 10 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = t.Output()
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startBroker starts a broker on 127.0.0.1:0 and closes it when the test ends.
func startBroker(t testing.TB, opts Options) *Broker {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setupHooks {
		f(b)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

var setupHooks []func(*Broker)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// v3Client connects an MQTT 3.1.1 paho client.
func v3Client(t testing.TB, url, id string) pahov3.Client {
	t.Helper()
	o := pahov3.NewClientOptions().AddBroker(url).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second)
	c := pahov3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("v3 connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// newV5 makes a paho.golang client on conn whose received publishes go
// to recv (if not nil).
func newV5(conn net.Conn, id string, recv chan<- *paho.Publish) *paho.Client {
	cfg := paho.ClientConfig{Conn: &lockedConn{Conn: conn}, ClientID: id}
	if recv != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				recv <- pr.Packet
				return true, nil
			},
		}
	}
	return paho.NewClient(cfg)
}

// v5Client connects an MQTT 5 paho.golang client; received publishes go to recv.
func v5Client(t testing.TB, addr, id string, recv chan<- *paho.Publish) (*paho.Client, *paho.Connack) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := newV5(conn, id, recv)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true})
	if err != nil {
		t.Fatalf("v5 connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ack
}

func v5Subscribe(t testing.TB, c *paho.Client, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

func recvOne[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// Raw packets used by the guard tests.
var (
	// MQTT 5 CONNECT, client id "a", keepalive 60, clean start.
	connectV5 = []byte{0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'a'}
	// MQTT 3.1.1 CONNECT, client id "a".
	connectV4 = []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'a'}
	// The SUBSCRIBE that crashes mochi v2.7.9's decoder after a v5 CONNECT:
	// no subscription-options byte after the (empty) filter.
	hazardSubscribe = []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}
)

// rawConnect dials addr and sends pkt, returning the conn after reading CONNACK.
func rawConnect(t testing.TB, addr string, connect []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("no CONNACK: %x %v", hdr, err)
	}
	if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectClosed reads until the server closes c.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

// counterValue reads a counter or gauge.
func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// lockedConn makes paho.golang write each packet atomically. paho.golang
// v0.23.0 writes a packet's fixed header and body as net.Buffers and locks
// around them only when the connection implements sync.Locker; on a
// *tls.Conn net.Buffers.WriteTo is several Write calls, so a keepalive
// PINGREQ written concurrently lands inside a PUBLISH (seen: `32 13 c0 00
// 00 0d ...`), and the broker rightly closes that connection as malformed.
type lockedConn struct {
	net.Conn
	sync.Mutex
}

// held is the number of sockets holding a pending slot, over all addresses.
func (p *pendingConns) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.n {
		n += v
	}
	return n
}
