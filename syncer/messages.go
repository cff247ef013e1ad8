package syncer

import (
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Hello opens a session: the edge says who it is and where it stands.
// Sent on every (re)connect, and again when the hub asks for it.
type Hello struct {
	Session    uint64 // fresh per session, increasing (the edge's HLC)
	Node       string
	Actor      string // the name in the edge's dots (store.Store.Actor); "": the node id
	Role       crdt.Role
	NeedFullUp bool   // the edge dropped unacknowledged ops: it will send FullSync
	Software   string // software version, for the logs
	Resolver   string // digest of the conflict resolver (crdt.Resolver.Digest)
	HubInc     uint64 // the hub incarnation DownSeq refers to (0: none)
	DownSeq    uint64 // the last hub op-log seq applied here
	UpAcked    uint64 // the edge op-log seq up to which the hub acknowledged
	OwnCounter uint64 // the edge's highest own dot counter
	Clock      int64  // the edge's wall clock, unix ms (skew report)
	Context    *crdt.Context
}

// Welcome answers Hello.
type Welcome struct {
	Session   uint64
	Hub       string
	HubInc    uint64 // the hub's incarnation (new data directory → new value)
	FullDown  bool   // the hub sends a FullSync down before deltas
	Resolver  string
	HubHas    uint64 // the highest contiguous dot counter of the edge the hub holds
	DownSeq   uint64 // the hub op-log seq the down stream resumes after
	OldestSeq uint64 // the oldest seq in the hub's op log
	Clock     int64  // the hub's wall clock, unix ms
}

// DeltaSync carries the ops of the sender's op log in (After, Upto]: every
// op of that range the receiver needs (an edge sends its own ops, a hub
// the ops of other origins the edge lacks). An empty range-only DeltaSync
// moves the receiver's cursor.
type DeltaSync struct {
	Session uint64
	After   uint64
	Upto    uint64
	Ops     []store.Op // Seq is not transmitted (zero after decoding)
}

// FullSync is one chunk of a full-state transfer. Chunks of one snapshot
// are numbered from 0; the last one carries the snapshot's causal context,
// which the receiver needs before it merges anything.
type FullSync struct {
	Session  uint64
	Snapshot uint64 // snapshot id, unique per sender session
	Chunk    uint64
	Last     bool
	SnapSeq  uint64 // the sender's op-log seq the snapshot covers
	Entries  []store.StateEntry
	// Last chunk only.
	Chunks  uint64 // number of chunks
	Keys    uint64 // number of entries in all chunks
	Context *crdt.Context
}

// Stream names what an Ack acknowledges.
type Stream uint8

// Streams.
const (
	StreamDelta Stream = 1
	StreamFull  Stream = 2
)

// AckFlags qualify an Ack.
type AckFlags uint8

// Ack flags.
const (
	// AckGap: the message did not follow the receiver's cursor (a loss or
	// a reordering); resend from Cursor.
	AckGap AckFlags = 1 << 0
	// AckDone: the FullSync snapshot is merged (Cursor = its SnapSeq).
	AckDone AckFlags = 1 << 1
	// AckHello: the receiver does not know this session; send Hello.
	AckHello AckFlags = 1 << 2

	knownAckFlags = AckGap | AckDone | AckHello
)

// Ack acknowledges DeltaSyncs up to Cursor (everything in the sender's
// log up to Cursor is durable at the receiver), or one FullSync chunk.
type Ack struct {
	Session  uint64
	Stream   Stream
	Flags    AckFlags
	Cursor   uint64
	Snapshot uint64 // StreamFull only
	Chunk    uint64 // StreamFull only
	Counter  uint64 // hub → edge: the highest contiguous dot counter of the edge the hub holds
}

// ConflictReport tells an edge about conflicts its writes lost.
type ConflictReport struct {
	Session   uint64
	Conflicts []crdt.Conflict
}

func (*Hello) Type() MessageType          { return TypeHello }
func (*Welcome) Type() MessageType        { return TypeWelcome }
func (*DeltaSync) Type() MessageType      { return TypeDeltaSync }
func (*FullSync) Type() MessageType       { return TypeFullSync }
func (*Ack) Type() MessageType            { return TypeAck }
func (*ConflictReport) Type() MessageType { return TypeConflictReport }

func (m *Hello) SessionID() uint64          { return m.Session }
func (m *Welcome) SessionID() uint64        { return m.Session }
func (m *DeltaSync) SessionID() uint64      { return m.Session }
func (m *FullSync) SessionID() uint64       { return m.Session }
func (m *Ack) SessionID() uint64            { return m.Session }
func (m *ConflictReport) SessionID() uint64 { return m.Session }

func appendContext(b []byte, c *crdt.Context) []byte {
	if c == nil {
		c = crdt.NewContext()
	}
	n := len(b)
	b = append(b, 0, 0, 0, 0, 0)          // room for the length
	b = c.AppendBinary(b)                 // encode in place
	return fixLength(b, n, len(b)-n-5, 5) // then move it left
}

// fixLength replaces the room of size room at b[at:] with the uvarint of
// n (the length of what follows the room) and closes the gap.
func fixLength(b []byte, at, n, room int) []byte {
	var tmp [10]byte
	k := putUvarint(tmp[:], uint64(n))
	copy(b[at:], tmp[:k])
	copy(b[at+k:], b[at+room:])
	return b[:len(b)-(room-k)]
}

func putUvarint(b []byte, v uint64) int {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return i + 1
}

func (r *reader) context(what string) *crdt.Context {
	raw := r.bytes(MaxMessageSize, what)
	if r.err != nil {
		return nil
	}
	c, err := crdt.DecodeContext(raw)
	if err != nil {
		r.fail("%s: %v", what, err)
		return nil
	}
	return c
}

func (r *reader) node(what string) string { return r.name(MaxNodeID, what) }

// actor reads an actor name: a node id with its incarnation.
func (r *reader) actor(what string) string { return r.name(maxActor, what) }

// name reads a non-empty string of at most max bytes.
func (r *reader) name(max int, what string) string {
	s := r.str(max, what)
	if r.err == nil && s == "" {
		r.fail("empty %s", what)
	}
	return s
}

func (r *reader) role() crdt.Role {
	v := crdt.Role(r.byte())
	if r.err == nil && v > crdt.RoleHub {
		r.fail("unknown role %d", v)
	}
	return v
}

func (r *reader) flags(known byte, what string) byte {
	v := r.byte()
	if r.err == nil && v&^known != 0 {
		r.fail("unknown %s flags %#02x", what, v)
	}
	return v
}

// Hello body: session, node, role, flags (bit 0 NeedFullUp, bit 1 actor
// follows), software, resolver, hub incarnation, down seq, up acked, own
// counter, clock (zigzag), context, [actor].
func (m *Hello) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Session)
	b = appendString(b, m.Node)
	b = append(b, byte(m.Role))
	var flags byte
	if m.NeedFullUp {
		flags |= helloNeedFullUp
	}
	if m.Actor != "" && m.Actor != m.Node {
		flags |= helloActor
	}
	b = append(b, flags)
	b = appendString(b, m.Software)
	b = appendString(b, m.Resolver)
	b = appendUvarint(b, m.HubInc)
	b = appendUvarint(b, m.DownSeq)
	b = appendUvarint(b, m.UpAcked)
	b = appendUvarint(b, m.OwnCounter)
	b = appendVarint(b, m.Clock)
	b = appendContext(b, m.Context)
	if flags&helloActor != 0 {
		b = appendString(b, m.Actor)
	}
	return b
}

const (
	helloNeedFullUp = 1 << 0
	helloActor      = 1 << 1
)

// ActorName returns the name of the edge's writes: Actor, or the node id.
func (m *Hello) ActorName() string {
	if m.Actor != "" {
		return m.Actor
	}
	return m.Node
}

func (m *Hello) decodeBody(r *reader) {
	m.Session = r.uvarint()
	m.Node = r.node("node")
	m.Role = r.role()
	flags := r.flags(helloNeedFullUp|helloActor, "hello")
	m.NeedFullUp = flags&helloNeedFullUp != 0
	m.Software = r.str(maxText, "software")
	m.Resolver = r.str(maxText, "resolver")
	m.HubInc = r.uvarint()
	m.DownSeq = r.uvarint()
	m.UpAcked = r.uvarint()
	m.OwnCounter = r.uvarint()
	m.Clock = r.varint()
	m.Context = r.context("context")
	if flags&helloActor != 0 {
		m.Actor = r.actor("actor")
		if r.err == nil && (m.Actor == m.Node || store.ActorNode(m.Actor) != m.Node) {
			r.fail("actor %q is not an incarnation of node %q", m.Actor, m.Node)
		}
	}
}

// Welcome body: session, hub, hub incarnation, flags (bit 0 FullDown),
// resolver, hub has, down seq, oldest seq, clock (zigzag).
func (m *Welcome) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Session)
	b = appendString(b, m.Hub)
	b = appendUvarint(b, m.HubInc)
	b = appendBool(b, m.FullDown)
	b = appendString(b, m.Resolver)
	b = appendUvarint(b, m.HubHas)
	b = appendUvarint(b, m.DownSeq)
	b = appendUvarint(b, m.OldestSeq)
	return appendVarint(b, m.Clock)
}

func (m *Welcome) decodeBody(r *reader) {
	m.Session = r.uvarint()
	m.Hub = r.node("hub")
	m.HubInc = r.uvarint()
	m.FullDown = r.flags(1, "welcome")&1 != 0
	m.Resolver = r.str(maxText, "resolver")
	m.HubHas = r.uvarint()
	m.DownSeq = r.uvarint()
	m.OldestSeq = r.uvarint()
	m.Clock = r.varint()
}

// Ack body: session, stream, flags, cursor, [snapshot, chunk if
// StreamFull], counter.
func (m *Ack) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Session)
	b = append(b, byte(m.Stream), byte(m.Flags))
	b = appendUvarint(b, m.Cursor)
	if m.Stream == StreamFull {
		b = appendUvarint(b, m.Snapshot)
		b = appendUvarint(b, m.Chunk)
	}
	return appendUvarint(b, m.Counter)
}

func (m *Ack) decodeBody(r *reader) {
	m.Session = r.uvarint()
	m.Stream = Stream(r.byte())
	if r.err == nil && m.Stream != StreamDelta && m.Stream != StreamFull {
		r.fail("unknown stream %d", m.Stream)
	}
	m.Flags = AckFlags(r.flags(byte(knownAckFlags), "ack"))
	m.Cursor = r.uvarint()
	if m.Stream == StreamFull {
		m.Snapshot = r.uvarint()
		m.Chunk = r.uvarint()
	}
	m.Counter = r.uvarint()
}

// ConflictReport body: session, count, then each conflict's crdt encoding
// (length-prefixed).
func (m *ConflictReport) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Session)
	b = appendUvarint(b, uint64(len(m.Conflicts)))
	for i := range m.Conflicts {
		at := len(b)
		b = append(b, 0, 0, 0, 0, 0)
		b = m.Conflicts[i].AppendBinary(b)
		b = fixLength(b, at, len(b)-at-5, 5)
	}
	return b
}

func (m *ConflictReport) decodeBody(r *reader) {
	m.Session = r.uvarint()
	n := r.count(8, "conflict")
	if n > 0 {
		m.Conflicts = make([]crdt.Conflict, 0, n)
	}
	for range n {
		raw := r.bytes(MaxMessageSize, "conflict")
		if r.err != nil {
			return
		}
		c, err := crdt.DecodeConflict(raw)
		if err != nil {
			r.fail("conflict: %v", err)
			return
		}
		m.Conflicts = append(m.Conflicts, c)
	}
}
