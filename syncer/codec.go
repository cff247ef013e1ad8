package syncer

import (
	"encoding/binary"
	"fmt"

	"github.com/ferrite-edge/ferrite/store"
	"github.com/pierrec/lz4/v4"
)

// The envelope of every sync message (docs/PROTOCOL.md):
//
//	'F' 'S' | version u8 | type u8 | flags u8 | body
//
// flags bit 0: the body is an LZ4 block, preceded by the uvarint length of
// the uncompressed body. No other flag bit is defined; a set unknown bit is
// an error (a future incompatible change bumps the version instead).

const (
	magic0 = 'F'
	magic1 = 'S'
	// Version is the protocol version this package speaks.
	Version     = 1
	headerLen   = 5
	flagLZ4     = 1 << 0
	knownFlags  = flagLZ4
	lz4MaxRatio = 255 // an LZ4 block cannot expand more than this

	// MaxMessageSize bounds an encoded message and its uncompressed body.
	MaxMessageSize = 64 << 20
	// MaxNodeID bounds a node id on the wire (and in Options).
	MaxNodeID = 128
	// maxActor bounds an actor name: a node id and its incarnation.
	maxActor = MaxNodeID + store.ActorSuffixLen
	maxKey   = 64 << 10
	maxText  = 255
)

// MessageType identifies a message.
type MessageType uint8

// Message types.
const (
	TypeHello          MessageType = 1 // edge → hub, first message of a session
	TypeWelcome        MessageType = 2 // hub → edge, answer to Hello
	TypeDeltaSync      MessageType = 3 // ops, both directions
	TypeFullSync       MessageType = 4 // one chunk of a full state, both directions
	TypeAck            MessageType = 5 // acknowledgement, both directions
	TypeConflictReport MessageType = 6 // hub → edge, conflicts the edge's writes lost
)

func (t MessageType) String() string {
	switch t {
	case TypeHello:
		return "Hello"
	case TypeWelcome:
		return "Welcome"
	case TypeDeltaSync:
		return "DeltaSync"
	case TypeFullSync:
		return "FullSync"
	case TypeAck:
		return "Ack"
	case TypeConflictReport:
		return "ConflictReport"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is one protocol message. The concrete types are *Hello,
// *Welcome, *DeltaSync, *FullSync, *Ack and *ConflictReport.
type Message interface {
	Type() MessageType
	// SessionID is the edge session the message belongs to.
	SessionID() uint64
	appendBody(b []byte) []byte
	decodeBody(r *reader)
}

// DefaultCompressThreshold is the body size from which Encoder tries LZ4.
const DefaultCompressThreshold = 512

// Encoder encodes messages, compressing bodies of at least Threshold bytes
// with LZ4 when that makes them smaller. Not safe for concurrent use; it
// reuses its buffers (the returned slice is valid until the next call).
type Encoder struct {
	// Threshold is the body size from which LZ4 is tried (0: the default;
	// negative: never compress).
	Threshold int

	comp lz4.Compressor
	body []byte
	out  []byte
}

// Encode returns the encoding of m, valid until the next call.
func (e *Encoder) Encode(m Message) []byte {
	e.body = m.appendBody(e.body[:0])
	th := e.Threshold
	if th == 0 {
		th = DefaultCompressThreshold
	}
	out := append(e.out[:0], magic0, magic1, Version, byte(m.Type()), 0)
	if th > 0 && len(e.body) >= th {
		bound := lz4.CompressBlockBound(len(e.body))
		start := len(out) + uvarintLen(uint64(len(e.body)))
		if cap(out) < start+bound {
			out = append(make([]byte, 0, start+bound), out...)
		}
		out = binary.AppendUvarint(out, uint64(len(e.body)))
		n, err := e.comp.CompressBlock(e.body, out[start:start+bound])
		if err == nil && n > 0 && start+n < headerLen+len(e.body) {
			out[4] = flagLZ4
			e.out = out[:start+n]
			return e.out
		}
		out = out[:headerLen]
	}
	e.out = append(out, e.body...)
	return e.out
}

// Encode encodes m without compression (tests, tools); see Encoder.
func Encode(m Message) []byte {
	e := Encoder{Threshold: -1}
	return append([]byte(nil), e.Encode(m)...)
}

// Decode decodes one message. The result does not alias b. Garbage gives
// an error wrapping ErrCorrupt (or ErrVersion), never a panic.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes over the %d limit", ErrCorrupt, len(b), MaxMessageSize)
	}
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrCorrupt, len(b))
	}
	if b[0] != magic0 || b[1] != magic1 {
		return nil, fmt.Errorf("%w: bad magic %#02x%02x", ErrCorrupt, b[0], b[1])
	}
	if b[2] != Version {
		return nil, fmt.Errorf("%w: version %d (this node speaks %d)", ErrVersion, b[2], Version)
	}
	m := newMessage(MessageType(b[3]))
	if m == nil {
		return nil, fmt.Errorf("%w: unknown message type %d", ErrCorrupt, b[3])
	}
	flags := b[4]
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#02x", ErrCorrupt, flags)
	}
	// Decoded byte strings alias body, so body must be the message's own:
	// a fresh decompression, or a copy.
	var body []byte
	if flags&flagLZ4 != 0 {
		var err error
		if body, err = decompress(b[headerLen:]); err != nil {
			return nil, err
		}
	} else {
		body = append([]byte(nil), b[headerLen:]...)
	}
	r := reader{b: body}
	m.decodeBody(&r)
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Type(), err)
	}
	return m, nil
}

func decompress(src []byte) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || k != uvarintLen(n) {
		return nil, fmt.Errorf("%w: bad compressed length", ErrCorrupt)
	}
	block := src[k:]
	if n == 0 || n > MaxMessageSize || n > uint64(len(block))*lz4MaxRatio {
		return nil, fmt.Errorf("%w: compressed body length %d out of range", ErrCorrupt, n)
	}
	dst := make([]byte, n)
	got, err := lz4.UncompressBlock(block, dst)
	if err != nil {
		return nil, fmt.Errorf("%w: lz4: %v", ErrCorrupt, err)
	}
	if uint64(got) != n {
		return nil, fmt.Errorf("%w: lz4 body is %d bytes, header says %d", ErrCorrupt, got, n)
	}
	return dst, nil
}

func newMessage(t MessageType) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeDeltaSync:
		return new(DeltaSync)
	case TypeFullSync:
		return new(FullSync)
	case TypeAck:
		return new(Ack)
	case TypeConflictReport:
		return new(ConflictReport)
	}
	return nil
}
