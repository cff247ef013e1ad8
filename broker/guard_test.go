package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The mochi decoder itself panics on the hazard packet: if this test fails,
// mochi fixed it and the guard's regression test below proves less.
func TestMochiDecoderPanicsOnHazardPacket(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Log("mochi's SubscribeDecode no longer panics on the hazard packet")
		}
	}()
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1, Remaining: 5}}
	_ = pk.SubscribeDecode(hazardSubscribe[2:])
	t.Error("expected a panic")
}

func TestGuardHazardSubscribeClosesOnlyThatConnection(t *testing.T) {
	b := startBroker(t, Options{})
	// A healthy subscriber connected before the attack.
	recv := make(chan *paho.Publish, 4)
	sub, _ := v5Client(t, b.Addr(), "sub", recv)
	v5Subscribe(t, sub, "sensors/#", 0)

	c := rawConnect(t, b.Addr(), connectV5)
	if _, err := c.Write(hazardSubscribe); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if got := counterValue(b.metrics.packetsRejected.WithLabelValues(reasonPanic)); got != 1 {
		t.Fatalf("rejected{panic} = %v, want 1", got)
	}

	// The broker still serves: old and new clients.
	pub, _ := v5Client(t, b.Addr(), "pub", nil)
	if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: "sensors/t1", Payload: []byte("22.5")}); err != nil {
		t.Fatal(err)
	}
	got := recvOne(t, recv, "message after attack")
	if string(got.Payload) != "22.5" {
		t.Fatalf("payload %q", got.Payload)
	}
}

func TestGuardRefusesBadStreams(t *testing.T) {
	cases := []struct {
		name    string
		connect []byte // nil: send data as the first bytes
		data    []byte
		reason  string
	}{
		{"first packet not CONNECT", nil, []byte{0xc0, 0x00}, reasonProtocol},
		{"garbage", nil, []byte("GET / HTTP/1.1\r\n\r\n"), reasonFraming},
		{"five length bytes", connectV4, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, reasonFraming},
		{"bad flags", connectV4, []byte{0xc1, 0x00}, reasonFraming},
		{"declares 256 MiB", nil, []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, reasonTooLarge},
		{"truncated publish topic", connectV4, []byte{0x30, 0x02, 0x00, 0x05}, reasonMalformed},
		{"hazard subscribe", connectV5, hazardSubscribe, reasonPanic},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Options{})
			var c net.Conn
			if tc.connect != nil {
				c = rawConnect(t, b.Addr(), tc.connect)
			} else {
				var err error
				if c, err = net.Dial("tcp", b.Addr()); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if _, err := c.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			eventually(t, "rejection counted", func() bool {
				return counterValue(b.metrics.packetsRejected.WithLabelValues(tc.reason)) == 1
			})
			// Still serving.
			v3Client(t, "tcp://"+b.Addr(), "after")
		})
	}
}

func TestDecodeRemainingLength(t *testing.T) {
	cases := []struct {
		in       []byte
		value, n int
		ok       bool
		err      bool
	}{
		{[]byte{0x00}, 0, 1, true, false},
		{[]byte{0x7f}, 127, 1, true, false},
		{[]byte{0x80, 0x01}, 128, 2, true, false},
		{[]byte{0xff, 0x7f}, 16383, 2, true, false},
		{[]byte{0xff, 0xff, 0xff, 0x7f}, maxRemainingLength, 4, true, false},
		{[]byte{0x80}, 0, 0, false, false},
		{[]byte{}, 0, 0, false, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0, false, true},
	}
	for _, tc := range cases {
		v, n, ok, err := decodeRemainingLength(tc.in)
		if v != tc.value || n != tc.n || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("%x: got (%d, %d, %v, %v)", tc.in, v, n, ok, err)
		}
	}
}

// byteConn serves a fixed byte stream in chunks of at most chunk bytes.
type byteConn struct {
	net.Conn
	r     *bytes.Reader
	chunk int
}

func (c *byteConn) Read(p []byte) (int, error) {
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}

// A valid stream passes through the guard unchanged, however it is split.
func TestGuardPassesValidStreamsUnchanged(t *testing.T) {
	publish := []byte{0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'x', 'y', 'z'} // QoS 1, v3.1.1
	sub := []byte{0x82, 0x08, 0x00, 0x02, 0x00, 0x03, 'a', '/', '#', 0x01}
	big := append([]byte{0x30, 0x80, 0x80, 0x01, 0x00, 0x01, 't'}, bytes.Repeat([]byte{'p'}, 16384-3)...)
	stream := bytes.Join([][]byte{connectV4, publish, sub, {0xc0, 0x00}, big, {0xe0, 0x00}}, nil)
	for _, chunk := range []int{1, 2, 3, 7, 100, 5000, 1 << 20} {
		for _, rbuf := range []int{1, 5, 2048} {
			gc := newGuardConn(&byteConn{r: bytes.NewReader(stream), chunk: chunk}, &guardPolicy{maxPacketSize: 1 << 20})
			var out bytes.Buffer
			buf := make([]byte, rbuf)
			for {
				n, err := gc.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatalf("chunk %d rbuf %d: %v", chunk, rbuf, err)
					}
					break
				}
			}
			if !bytes.Equal(out.Bytes(), stream) {
				t.Fatalf("chunk %d rbuf %d: stream changed (%d of %d bytes)", chunk, rbuf, out.Len(), len(stream))
			}
		}
	}
}

// Packets before a bad one are delivered; the bad one is not.
func TestGuardDeliversPacketsBeforeTheBadOne(t *testing.T) {
	ping := []byte{0xc0, 0x00}
	stream := bytes.Join([][]byte{connectV5, ping, hazardSubscribe, ping}, nil)
	var rejected *guardError
	gc := newGuardConn(&byteConn{r: bytes.NewReader(stream), chunk: len(stream)},
		&guardPolicy{maxPacketSize: 1 << 20, onReject: func(_ net.Conn, e *guardError) { rejected = e }})
	out, err := io.ReadAll(gc)
	if !errors.Is(err, ErrPacketRejected) {
		t.Fatalf("err = %v", err)
	}
	if want := len(connectV5) + len(ping); len(out) != want {
		t.Fatalf("delivered %d bytes, want %d", len(out), want)
	}
	if rejected == nil || rejected.reason != reasonPanic {
		t.Fatalf("rejection %+v", rejected)
	}
}

// FuzzGuard feeds arbitrary bytes after a valid CONNECT (v5 or 3.1.1) into a
// real mochi server through the guard, over loopback TCP. The client
// half-closes after writing, so mochi processes every byte it was given
// (and can still answer) before it reads EOF. There is no recover of our
// own here: any panic in mochi's handling of what the guard let through
// fails the fuzz run.
func FuzzGuard(f *testing.F) {
	f.Add(true, hazardSubscribe)
	f.Add(false, hazardSubscribe)
	f.Add(true, []byte{0x82, 0x08, 0x00, 0x02, 0x00, 0x03, 'a', '/', '#', 0x01})
	f.Add(false, []byte{0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'x', 'y', 'z'})
	f.Add(true, []byte{0x30, 0x05, 0x00, 0x01, 't', 0x00, 'x', 0xe0, 0x00})
	f.Add(true, []byte{0xa2, 0x04, 0x00, 0x01, 0x00, 0x00})
	f.Add(false, []byte{0xf0, 0x00})

	srv := mqtt.New(&mqtt.Options{
		Capabilities: DefaultLimits().capabilities(),
		Logger:       testLogger(f),
	})
	_ = srv.AddHook(new(allowHook), nil)
	policy := &guardPolicy{maxPacketSize: DefaultLimits().MaxPacketSize, topicAliasMaximum: DefaultLimits().TopicAliasMaximum}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, v5 bool, data []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = server.SetDeadline(time.Now().Add(10 * time.Second)) // until CONNECT; then mochi's keepalive
			_ = srv.EstablishConnection("fuzz", newGuardConn(server, policy))
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		connect := connectV4
		if v5 {
			connect = connectV5
		}
		_, _ = client.Write(append(append([]byte{}, connect...), data...))
		_ = client.(*net.TCPConn).CloseWrite()
		<-done
	})
}

type allowHook struct{ mqtt.HookBase }

func (h *allowHook) ID() string { return "allow" }
func (h *allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (h *allowHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *allowHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }
