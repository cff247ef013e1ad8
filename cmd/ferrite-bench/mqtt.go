package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// A minimal MQTT 3.1.1 client: CONNECT, PUBLISH (QoS 0/1), PUBACK,
// SUBSCRIBE, DISCONNECT. It exists because a load generator must not be the
// bottleneck: it writes PUBLISH packets into one buffered writer and
// flushes per burst, while paho takes a lock, allocates a token and goes
// through a channel per message (measured with -client paho).

// Packet types (MQTT 3.1.1 §2.2.1).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingresp   = 13
	pktDisconnect = 14
)

var errProtocol = errors.New("bench: MQTT protocol error")

// rawConn is one MQTT connection.
type rawConn struct {
	c  net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
	id uint16
	// scratch for packet bodies
	hdr    [5]byte
	closed bool
}

// dialAddr turns tcp://host:port or host:port into host:port.
func dialAddr(broker string) (string, error) {
	if !strings.Contains(broker, "://") {
		return broker, nil
	}
	u, err := url.Parse(broker)
	if err != nil {
		return "", err
	}
	if u.Scheme != "tcp" && u.Scheme != "mqtt" {
		return "", fmt.Errorf("bench: scheme %q not supported (tcp:// only)", u.Scheme)
	}
	return u.Host, nil
}

// dialRaw connects and completes the MQTT handshake.
func dialRaw(ctx context.Context, broker, clientID string) (*rawConn, error) {
	addr, err := dialAddr(broker)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}
	body := make([]byte, 0, 16+len(clientID))
	body = appendString(body, "MQTT")
	body = append(body, 4, 0x02, 0, 0) // level 4, clean session, keep alive 0 (off)
	body = appendString(body, clientID)
	rc.writePacket(pktConnect<<4, body)
	if err := rc.w.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	typ, b, err := rc.readPacket(nil)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, err
	}
	if typ>>4 != pktConnack || len(b) != 2 || b[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("%w: CONNACK %x %x", errProtocol, typ, b)
	}
	return rc, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (rc *rawConn) writeHeader(typ byte, remaining int) {
	h := rc.hdr[:0]
	h = append(h, typ)
	for {
		d := byte(remaining % 128)
		remaining /= 128
		if remaining > 0 {
			d |= 0x80
		}
		h = append(h, d)
		if remaining == 0 {
			break
		}
	}
	rc.w.Write(h)
}

func (rc *rawConn) writePacket(typ byte, body []byte) {
	rc.writeHeader(typ, len(body))
	rc.w.Write(body)
}

// publish buffers one PUBLISH; it returns the packet id used (0 for QoS 0).
// The caller flushes.
func (rc *rawConn) publish(topic string, payload []byte, qos byte) uint16 {
	n := 2 + len(topic) + len(payload)
	var id uint16
	if qos > 0 {
		n += 2
		rc.id++
		if rc.id == 0 {
			rc.id = 1
		}
		id = rc.id
	}
	rc.writeHeader(pktPublish<<4|qos<<1, n)
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(topic)))
	rc.w.Write(l[:])
	rc.w.WriteString(topic)
	if qos > 0 {
		binary.BigEndian.PutUint16(l[:], id)
		rc.w.Write(l[:])
	}
	rc.w.Write(payload)
	return id
}

func (rc *rawConn) subscribe(filter string, qos byte) error {
	body := []byte{0, 1}
	body = appendString(body, filter)
	body = append(body, qos)
	rc.writePacket(pktSubscribe<<4|0x02, body)
	if err := rc.w.Flush(); err != nil {
		return err
	}
	for {
		typ, b, err := rc.readPacket(nil)
		if err != nil {
			return err
		}
		if typ>>4 == pktSuback {
			if len(b) < 3 || b[2] == 0x80 {
				return fmt.Errorf("%w: subscription to %q refused", errProtocol, filter)
			}
			return nil
		}
	}
}

// readPacket reads one packet into buf (grown as needed).
func (rc *rawConn) readPacket(buf []byte) (byte, []byte, error) {
	typ, err := rc.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, fmt.Errorf("%w: bad remaining length", errProtocol)
		}
		d, err := rc.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(rc.r, buf); err != nil {
		return 0, nil, err
	}
	return typ, buf, nil
}

// publishPayload splits a PUBLISH body into topic and payload.
func publishPayload(typ byte, b []byte) (topic, payload []byte, err error) {
	if len(b) < 2 {
		return nil, nil, errProtocol
	}
	tl := int(binary.BigEndian.Uint16(b))
	off := 2 + tl
	if (typ>>1)&3 > 0 {
		off += 2
	}
	if off > len(b) {
		return nil, nil, errProtocol
	}
	return b[2 : 2+tl], b[off:], nil
}

func (rc *rawConn) puback(id uint16) {
	rc.w.Write([]byte{pktPuback << 4, 2, byte(id >> 8), byte(id)})
}

// close sends DISCONNECT and closes the connection; later calls do nothing.
// Not safe for concurrent use (the publisher goroutine owns the writer).
func (rc *rawConn) close() error {
	if rc.closed {
		return nil
	}
	rc.closed = true
	rc.w.Write([]byte{pktDisconnect << 4, 0})
	rc.w.Flush()
	return rc.c.Close()
}
