package broker

import (
	"io"
	"testing"
	"time"
)

// readPacket reads one MQTT packet (fixed header with a one-byte remaining
// length, enough for these tests) and returns its type byte and body.
func readPacket(t *testing.T, c io.Reader) (byte, []byte) {
	t.Helper()
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return hdr[0], body
}

// A client's SUBSCRIBE may reuse the packet id of a QoS 1 message the
// broker has in flight to it [MQTT-2.3.1]: mochi v2.7.9 refuses that
// subscription unless the broker remaps the id (packetid.go).
func TestSubscribeIDCollidingWithInflightPublish(t *testing.T) {
	b := startBroker(t, Options{})
	c := rawConnect(t, b.Addr(), connectV4)
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	// SUBSCRIBE id 1 to "t" at QoS 1.
	if _, err := c.Write([]byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x01}); err != nil {
		t.Fatal(err)
	}
	if typ, body := readPacket(t, c); typ != 0x90 || body[1] != 1 || body[2] != 0x01 {
		t.Fatalf("first SUBACK %x %x", typ, body)
	}
	// Another client publishes at QoS 1: the broker sends PUBLISH id 1 to c,
	// which does not acknowledge it (it stays in flight).
	pub := v3Client(t, "tcp://"+b.Addr(), "pub")
	if tok := pub.Publish("t", 1, false, "x"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	typ, body := readPacket(t, c)
	if typ&0xf0 != 0x30 {
		t.Fatalf("want a PUBLISH, got %x", typ)
	}
	topicLen := int(body[0])<<8 | int(body[1])
	inflightID := uint16(body[2+topicLen])<<8 | uint16(body[3+topicLen])
	// SUBSCRIBE again, to "u", with the same packet id as the in-flight PUBLISH.
	if _, err := c.Write([]byte{0x82, 0x06, byte(inflightID >> 8), byte(inflightID), 0x00, 0x01, 'u', 0x01}); err != nil {
		t.Fatal(err)
	}
	typ, body = readPacket(t, c)
	if typ != 0x90 {
		t.Fatalf("want a SUBACK, got %x %x", typ, body)
	}
	if id := uint16(body[0])<<8 | uint16(body[1]); id != inflightID || body[2] != 0x01 {
		t.Fatalf("SUBACK id %d (want %d), return code %#x (want 0x01)", id, inflightID, body[2])
	}
	if got := counterValue(b.metrics.packetIDRemaps); got != 1 {
		t.Fatalf("remaps = %v", got)
	}
}
