package broker

import (
	"errors"
	"fmt"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The packet guard sits between a client's net.Conn and mochi. mochi reads
// packets straight off the wire and decodes them without a recover (a panic in
// its decoder kills the whole process), and it allocates the length a packet
// declares before reading it. The guard frames every control packet itself,
// bounds its size before buffering it, and decodes it with mochi's own packets
// decoder under recover. Only complete, decodable packets are handed to mochi;
// anything else ends that one connection.

const (
	guardInitialBuffer = 4 << 10  // first buffer of a connection
	guardKeepBuffer    = 64 << 10 // larger buffers are released once drained
	maxRemainingLength = 268_435_455
)

// Rejection reasons, used as metric labels.
const (
	reasonPanic     = "panic"     // mochi's decoder panicked on the packet
	reasonMalformed = "malformed" // mochi's decoder returned an error
	reasonFraming   = "framing"   // invalid fixed header or remaining length
	reasonTooLarge  = "too_large" // declared size above the packet size limit
	reasonProtocol  = "protocol"  // first packet is not CONNECT
)

// guardError is the error a guarded connection returns to mochi once it has
// refused a packet. It wraps ErrPacketRejected.
type guardError struct {
	reason string
	kind   byte // packet type, 0 if unknown
	err    error
}

func (e *guardError) Error() string {
	return fmt.Sprintf("%v (%s, packet type %d): %v", ErrPacketRejected, e.reason, e.kind, e.err)
}

func (e *guardError) Unwrap() error { return ErrPacketRejected }

// guardPolicy is what every guarded connection of a broker shares.
type guardPolicy struct {
	maxPacketSize     uint32 // as mochi counts it: remaining length + 1
	topicAliasMaximum uint16
	onReject          func(c net.Conn, e *guardError)
}

// guardConn is a net.Conn whose Read only ever returns bytes of complete
// control packets that mochi's decoder has already accepted.
//
// buf[r:v] holds validated bytes not yet read by mochi, buf[v:w] bytes read
// from the network but not yet validated.
type guardConn struct {
	net.Conn
	policy    *guardPolicy
	buf       []byte
	r, v, w   int
	need      int  // total size of the packet at buf[v:], 0 if not yet known
	version   byte // protocol version, learnt from CONNECT as mochi does
	connected bool // a CONNECT has been validated
	rejected  bool
	err       error     // sticky: a read error or the rejection
	meta      *connMeta // the broker's per-connection state (nil in guard tests)
}

func newGuardConn(c net.Conn, p *guardPolicy) *guardConn {
	return &guardConn{Conn: c, policy: p, version: 4} // mochi assumes 4 until CONNECT
}

// Read implements net.Conn. Validated bytes are always delivered before an
// error, so packets that arrived before a bad one are processed normally.
func (c *guardConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for c.r == c.v {
		if !c.rejected {
			if gerr := c.scan(); gerr != nil {
				c.rejected = true
				c.err = gerr
				if c.policy.onReject != nil {
					c.policy.onReject(c.Conn, gerr)
				}
			}
			if c.r < c.v {
				break
			}
		}
		if c.err != nil {
			return 0, c.err
		}
		// Bytes that arrive together with an error are scanned first.
		c.err = c.readMore()
	}
	n := copy(p, c.buf[c.r:c.v])
	c.r += n
	return n, nil
}

// scan validates every complete packet in buf[v:w] and advances v past them.
func (c *guardConn) scan() *guardError {
	for {
		b := c.buf[c.v:c.w]
		if len(b) == 0 {
			return nil
		}
		var fh packets.FixedHeader
		if err := fh.Decode(b[0]); err != nil {
			return &guardError{reason: reasonFraming, kind: b[0] >> 4, err: err}
		}
		if !c.connected && fh.Type != packets.Connect {
			// [MQTT-3.1.0-1] the first packet must be CONNECT.
			return &guardError{reason: reasonProtocol, kind: fh.Type, err: packets.ErrProtocolViolationRequireFirstConnect}
		}
		remaining, lenBytes, ok, err := decodeRemainingLength(b[1:])
		if err != nil {
			return &guardError{reason: reasonFraming, kind: fh.Type, err: err}
		}
		if !ok {
			return nil
		}
		// Same test as mochi's ReadFixedHeader, so the boundary is identical.
		if max := c.policy.maxPacketSize; max > 0 && uint64(remaining)+1 > uint64(max) {
			return &guardError{reason: reasonTooLarge, kind: fh.Type, err: packets.ErrPacketTooLarge}
		}
		total := 1 + lenBytes + remaining
		if len(b) < total {
			c.need = total
			return nil
		}
		c.need = 0
		fh.Remaining = remaining
		version, reason, err := validatePacket(fh, b[1+lenBytes:total], c.version, c.policy.topicAliasMaximum)
		if err != nil {
			return &guardError{reason: reason, kind: fh.Type, err: err}
		}
		if fh.Type == packets.Connect && !c.connected {
			c.connected = true
			c.version = version
		}
		c.v += total
	}
}

// readMore reads from the network into free space after w, compacting and
// growing the buffer as the packet being framed needs. Only called when every
// validated byte has been delivered (r == v).
func (c *guardConn) readMore() error {
	if c.buf == nil {
		c.buf = make([]byte, guardInitialBuffer)
	}
	if c.v > 0 {
		n := copy(c.buf, c.buf[c.v:c.w])
		c.r, c.v, c.w = 0, 0, n
	}
	if c.w == 0 && len(c.buf) > guardKeepBuffer {
		c.buf = make([]byte, guardInitialBuffer) // do not pin a big buffer on an idle connection
	}
	if c.w == len(c.buf) {
		// Grow by doubling, never beyond what the current packet needs: a
		// declared length only costs memory as its bytes actually arrive.
		size := 2 * len(c.buf)
		if c.need > 0 && size > c.need {
			size = c.need
		}
		if size <= len(c.buf) {
			size = len(c.buf) + guardInitialBuffer
		}
		nb := make([]byte, size)
		copy(nb, c.buf[:c.w])
		c.buf = nb
	}
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	return err
}

// decodeRemainingLength decodes an MQTT Variable Byte Integer. ok is false
// while more bytes are needed. At most four bytes are allowed (mochi keeps
// reading continuation bytes forever).
func decodeRemainingLength(b []byte) (value, n int, ok bool, err error) {
	multiplier := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, false, nil
		}
		value += int(b[i]&0x7f) * multiplier
		if b[i]&0x80 == 0 {
			return value, i + 1, true, nil
		}
		multiplier *= 128
	}
	return 0, 0, false, packets.ErrMalformedVariableByteInteger
}

// errDecoderPanic marks a packet that made mochi's decoder panic.
var errDecoderPanic = errors.New("decoder panic")

// validatePacket decodes one packet body exactly as mochi's Client.ReadPacket
// does, then runs the packet's validation method, all under recover. It
// returns the protocol version a CONNECT declares.
func validatePacket(fh packets.FixedHeader, body []byte, version byte, topicAliasMaximum uint16) (v byte, reason string, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, reason, err = 0, reasonPanic, fmt.Errorf("%w: %v", errDecoderPanic, r)
		}
	}()
	pk := packets.Packet{ProtocolVersion: version, FixedHeader: fh}
	switch fh.Type {
	case packets.Connect:
		err = pk.ConnectDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Subscribe:
		err = pk.SubscribeDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pingreq, packets.Pingresp:
	case packets.Auth:
		err = pk.AuthDecode(body)
	default:
		err = fmt.Errorf("invalid packet type %d", fh.Type)
	}
	if err != nil {
		return 0, reasonMalformed, err
	}
	// The validators only read the decoded packet; mochi calls them on the
	// read goroutine too, so a panic in one of them is just as fatal. Their
	// verdicts are left to mochi, which answers with the right reason code.
	switch fh.Type {
	case packets.Connect:
		_ = pk.ConnectValidate()
	case packets.Publish:
		_ = pk.PublishValidate(topicAliasMaximum)
	case packets.Subscribe:
		_ = pk.SubscribeValidate()
	case packets.Unsubscribe:
		_ = pk.UnsubscribeValidate()
	case packets.Auth:
		_ = pk.AuthValidate()
	}
	return pk.ProtocolVersion, "", nil
}
