package syncer

import (
	"fmt"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// The golden table: one named case per message shape, shared by the
// encode and decode tests (as mochi's packets/tpackets.go) and checked
// against the table in docs/PROTOCOL.md. Regenerate the hex after a
// deliberate format change with: go test ./syncer -run TestGolden -update
// (then copy the printed table into docs/PROTOCOL.md).

// goldenTS is 2024-02-19T00:00:00Z as an HLC reading with logical 0.
const goldenTS = crdt.Timestamp(1708300800000 << 16)

type goldenCase struct {
	name     string
	msg      Message
	compress bool // encode with the default LZ4 threshold
	hex      string
}

func goldenSetDelta(node string, counter uint64, key, value string) []byte {
	m := crdt.Mut{
		Dot:   crdt.Dot{Node: node, Counter: counter},
		Stamp: crdt.Stamp{TS: goldenTS + crdt.Timestamp(counter)<<16, Node: node},
	}
	d, err := new(crdt.Entry).Set(m, []byte(value), false, 0)
	if err != nil {
		panic(err)
	}
	return d.AppendBinary(nil)
}

func goldenContext() *crdt.Context {
	c := crdt.NewContext()
	for i := uint64(1); i <= 3; i++ {
		c.Add(crdt.Dot{Node: "edge-1", Counter: i})
	}
	c.Add(crdt.Dot{Node: "hub", Counter: 1})
	c.Add(crdt.Dot{Node: "hub", Counter: 5})
	return c
}

func goldenOps(n int) []store.Op {
	ops := make([]store.Op, n)
	for i := range ops {
		c := uint64(i + 1)
		key := fmt.Sprintf("sensor:temp:%03d", i%4)
		ops[i] = store.Op{
			Dot:   crdt.Dot{Node: "edge-1", Counter: c},
			Stamp: crdt.Stamp{TS: goldenTS + crdt.Timestamp(c)<<16, Node: "edge-1"},
			Key:   key,
			Delta: goldenSetDelta("edge-1", c, key, fmt.Sprintf("%d.5", 20+i%7)),
		}
	}
	return ops
}

func goldenConflict() crdt.Conflict {
	return crdt.Conflict{
		Key:      "config:mode",
		Strategy: crdt.LastWriteWins,
		Winner: crdt.Head{
			Dot:   crdt.Dot{Node: "edge-2", Counter: 7},
			Stamp: crdt.Stamp{TS: goldenTS + 2<<16, Node: "edge-2"},
			Kind:  crdt.KindString,
			Value: []byte("eco"),
		},
		Loser: crdt.Head{
			Dot:   crdt.Dot{Node: "edge-1", Counter: 4},
			Stamp: crdt.Stamp{TS: goldenTS + 1<<16, Node: "edge-1"},
			Kind:  crdt.KindString,
			Value: []byte("boost"),
		},
	}
}

func goldenCases() []goldenCase {
	relay := goldenOps(2)
	relay[1].Dot = crdt.Dot{Node: "edge-2", Counter: 9}
	relay[1].Stamp = crdt.Stamp{TS: goldenTS, Node: "hub", Role: crdt.RoleHub}
	return []goldenCase{
		{
			name: "hello",
			msg: &Hello{
				Session: 1, Node: "edge-1", Role: crdt.RoleEdge, Software: "0.1.0", Resolver: "ab12",
				HubInc: 0x1234, DownSeq: 42, UpAcked: 17, OwnCounter: 3, Clock: 1708300800000,
				Context: goldenContext(),
			},
		},
		{
			name: "hello-need-full-up",
			msg: &Hello{
				Session: 300, Node: "e", NeedFullUp: true, Clock: -5, Context: crdt.NewContext(),
			},
		},
		{
			name: "hello-actor",
			msg: &Hello{
				Session: 2, Node: "e", Actor: "e$k3q9x2mb", OwnCounter: 1, Context: crdt.NewContext(),
			},
		},
		{
			name: "welcome",
			msg: &Welcome{
				Session: 1, Hub: "hub", HubInc: 0x1234, FullDown: true, Resolver: "ab12",
				HubHas: 3, DownSeq: 42, OldestSeq: 10, Clock: 1708300800001,
			},
		},
		{
			name: "delta-empty-range",
			msg:  &DeltaSync{Session: 1, After: 10, Upto: 20},
		},
		{
			name: "delta-one-op",
			msg:  &DeltaSync{Session: 1, After: 0, Upto: 1, Ops: goldenOps(1)},
		},
		{
			name: "delta-relay",
			msg:  &DeltaSync{Session: 2, After: 100, Upto: 120, Ops: relay},
		},
		{
			name:     "delta-lz4",
			msg:      &DeltaSync{Session: 3, After: 0, Upto: 16, Ops: goldenOps(16)},
			compress: true,
		},
		{
			name: "fullsync-chunk",
			msg: &FullSync{
				Session: 1, Snapshot: 1, Chunk: 0, SnapSeq: 99,
				Entries: []store.StateEntry{
					{Key: "sensor:temp:000", Entry: []byte{1, 2, 3}},
					{Key: "sensor:temp:001", Entry: []byte{4}},
				},
			},
		},
		{
			name: "fullsync-last",
			msg: &FullSync{
				Session: 1, Snapshot: 1, Chunk: 1, Last: true, SnapSeq: 99,
				Entries: []store.StateEntry{{Key: "z", Entry: []byte{9}}},
				Chunks:  2, Keys: 3, Context: goldenContext(),
			},
		},
		{
			name: "ack-delta",
			msg:  &Ack{Session: 1, Stream: StreamDelta, Cursor: 120, Counter: 3},
		},
		{
			name: "ack-gap",
			msg:  &Ack{Session: 1, Stream: StreamDelta, Flags: AckGap, Cursor: 100},
		},
		{
			name: "ack-full-done",
			msg:  &Ack{Session: 1, Stream: StreamFull, Flags: AckDone, Cursor: 99, Snapshot: 1, Chunk: 1, Counter: 3},
		},
		{
			name: "ack-hello",
			msg:  &Ack{Session: 7, Stream: StreamDelta, Flags: AckHello},
		},
		{
			name: "conflict-report",
			msg:  &ConflictReport{Session: 1, Conflicts: []crdt.Conflict{goldenConflict()}},
		},
	}
}

// badMessages are byte strings Decode must refuse, and the error text it
// must give.
var badMessages = []struct {
	name, hex, err string
}{
	{"empty", "", "shorter than the header"},
	{"short", "465301", "shorter than the header"},
	{"bad-magic", "4654010500", "bad magic"},
	{"version-2", "4653020500", "unsupported protocol version"},
	{"unknown-type", "4653010900", "unknown message type 9"},
	{"unknown-flag", "4653010502", "unknown flags"},
	{"truncated-ack", "46530105000101", "truncated"},
	{"trailing", "465301050001010078000000", "trailing bytes"},
	{"bad-stream", "46530105000103007800", "unknown stream"},
	{"ack-unknown-flag", "46530105000101087800", "unknown ack flags"},
	{"non-minimal-uvarint", "4653010500810001007800", "non-minimal uvarint"},
	{"backwards-range", "465301030001140a0000", "backwards"},
	{"ops-in-empty-range", "46530103000105050001000000000000", "ops in an empty range"},
	{"huge-count", "465301030001000100ffffffff0f", "exceeds message"},
	{"lz4-garbage", "4653010501ffffffff0f0102", "out of range"},
	{"lz4-bad-block", "4653010501050f00", "lz4"},
	{"snapshot-zero", "46530104000100000000000000", "snapshot id 0"},
	{"empty-node", "46530101000100", "empty node"},
	{"actor-of-another-node", "4653010100020165000200000000000100030100000a66246b33713978326d62", "not an incarnation of node"},
	{"actor-is-node", "46530101000201650002000000000001000301000001" + "65", "not an incarnation of node"},
	{"hello-unknown-flag", "465301010002016500040000000000010003010000", "unknown hello flags"},
}
