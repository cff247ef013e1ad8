package test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

// Valid CONNECTs the hostile packets follow.
const (
	connectV5Hex = "100e00044d5154540502003c000001" + "78" // MQTT 5, client id "x"
	connectV4Hex = "100d00044d515454040200" + "3c00017a"   // MQTT 3.1.1, client id "z"
)

// hostilePackets is the regression corpus: malformed packets that crashed
// or stalled MQTT brokers, or could. Each is sent on its own connection to
// the running binary; each may close that connection and nothing else.
var hostilePackets = []struct{ name, hex string }{
	{"mochi v2.7.9 truncated MQTT 5 SUBSCRIBE (index out of range)", connectV5Hex + "82050001000000"},
	{"client-sent CONNACK", connectV4Hex + "20020000"},
	{"CONNACK instead of CONNECT", "20020000"},
	{"PUBLISH before CONNECT", "30050003612f62"},
	{"zero-length topic, QoS 0", connectV4Hex + "30020000"},
	{"zero-length topic, QoS 1, MQTT 5, no alias", connectV5Hex + "320500000001" + "00"},
	{"truncated QoS 1 PUBLISH (no packet id)", connectV4Hex + "3205000361 2f62"},
	{"truncated QoS 1 PUBLISH (connection closed mid-body)", connectV4Hex + "320a0003612f62"},
	{"remaining length too short", connectV4Hex + "30010003612f62ffffffff"},
	{"remaining length too long", connectV4Hex + "30ff01" + "0003612f62"},
	{"5-byte remaining length", connectV4Hex + "30ffffffff7f"},
	{"CONNECT declaring 256 MiB", "10ffffff7f"},
	{"CONNECT with a 64 KiB client id length and 1 byte", "101000044d515454040200" + "3cffff61"},
	{"MQTT 5 CONNECT with a huge property length", "101000044d5154540502003c" + "ffffff7f"},
	{"CONNECT with protocol level 9", "100d00044d515454090200" + "3c00017a"},
	{"second CONNECT", connectV4Hex + connectV4Hex},
	{"SUBSCRIBE without filters", connectV4Hex + "82020001"},
	{"SUBSCRIBE with bad flags", connectV4Hex + "8f0600010001612f00"},
	{"SUBSCRIBE to a/#/b", connectV4Hex + "8209000100" + "05612f232f6200"},
	{"UNSUBSCRIBE without filters", connectV4Hex + "a2020001"},
	{"QoS 3 PUBLISH", connectV4Hex + "3605" + "0003612f62"},
	{"AUTH from an MQTT 3.1.1 client", connectV4Hex + "f000"},
	{"packet type 0", connectV4Hex + "0000"},
	{"PUBREL with bad flags", connectV4Hex + "60020001"},
	{"MQTT 5 PUBLISH with a topic alias above the maximum", connectV5Hex + "3009" + "0003612f62" + "0323ffff"},
	{"not MQTT", hex.EncodeToString([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))},
}

// The corpus is sent to the running binary while a paho client keeps
// publishing and receiving: every message it publishes arrives, the process
// survives, and the guard counts what it refused.
func TestHostilePacketCorpus(t *testing.T) {
	p := e2e.Start(t, "")
	addr := p.MQTTAddr()
	stop := keepTraffic(t, addr)
	for _, hp := range hostilePackets {
		b, err := hex.DecodeString(strings.ReplaceAll(hp.hex, " ", ""))
		if err != nil {
			t.Fatalf("%s: %v", hp.name, err)
		}
		sendAndDrain(t, addr, b)
		if !p.Alive() {
			t.Fatalf("ferrite died on %q:\n%s", hp.name, p.Output())
		}
	}
	sent := stop()
	if sent == 0 {
		t.Fatal("no traffic during the attack")
	}
	m := httpGet(t, nil, "http://"+p.Info.HTTP+"/metrics")
	if !strings.Contains(m, "ferrite_broker_panics_recovered_total 0") ||
		!strings.Contains(m, `ferrite_broker_packets_rejected_total{reason="panic"} 1`) {
		t.Fatalf("metrics:\n%s", grep(m, "ferrite_broker_p"))
	}
}

// keepTraffic runs a paho publisher and subscriber until the returned
// function is called; it checks that every QoS 1 message published arrived
// and returns how many were.
func keepTraffic(t *testing.T, addr string) func() int {
	t.Helper()
	recv := make(chan *paho.Publish, 1024)
	sub := e2e.V5Client(t, addr, "bystander-sub", recv)
	e2e.V5Subscribe(t, sub, "bystander/#", 1)
	pub := e2e.V5Client(t, addr, "bystander-pub", nil)
	var sent atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), e2e.Timeout)
			_, err := pub.Publish(ctx, &paho.Publish{Topic: "bystander/t", QoS: 1, Payload: []byte("x")})
			cancel()
			if err != nil {
				errs <- err
				return
			}
			sent.Add(1)
			time.Sleep(2 * time.Millisecond) // pace, not synchronisation
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatalf("bystander publish failed: %v", err)
		default:
		}
		n := int(sent.Load())
		for i := 0; i < n; i++ {
			e2e.Receive(t, recv, "bystander message")
		}
		return n
	}
}

// sendAndDrain sends b on a new connection, half-closes it and reads until
// the broker closes it (or answers and waits: then the read deadline ends it).
func sendAndDrain(t *testing.T, addr string, b []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(b)
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}

// Eight connections declaring huge CONNECTs at once, each holding its
// connection open after a few KiB: the broker allocates only what arrives,
// so its memory grows by kilobytes, not by the declared hundreds of MB.
func TestHugeDeclaredLengthsDoNotAllocate(t *testing.T) {
	p := e2e.Start(t, `
node_id: e2e-node
broker:
  listen: 127.0.0.1:0
  limits:
    max_packet_size: 256mb
http:
  listen: 127.0.0.1:0
`)
	stop := keepTraffic(t, p.MQTTAddr())
	before := e2e.RSSKiB(t, p.Cmd.Process.Pid)
	var conns []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", p.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// CONNECT, remaining length 200 MiB, then 4 KiB of its body.
		hdr := []byte{0x10, 0x80, 0x80, 0x80, 0x64}
		if _, err := c.Write(append(hdr, make([]byte, 4096)...)); err != nil {
			t.Fatal(err)
		}
	}
	// Every connection's bytes have been read by the broker once it answers
	// a new client; then measure.
	e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "probe")
	after := e2e.RSSKiB(t, p.Cmd.Process.Pid)
	for _, c := range conns {
		c.Close()
	}
	stop()
	t.Logf("RSS %d KiB before, %d KiB with 8 CONNECTs declaring 200 MiB each open", before, after)
	if grown := after - before; grown > 64<<10 {
		t.Fatalf("RSS grew by %d KiB", grown)
	}
	if !p.Alive() {
		t.Fatal("ferrite died")
	}
}
