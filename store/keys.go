package store

import (
	"encoding/binary"
	"math"
)

// Key layout: every Pebble key starts with a one-byte prefix naming its
// keyspace (see doc.go). Prefixes are printable so `pebble tool` dumps stay
// readable.
const (
	prefixData     byte = 'd' // d<user key>                      -> record (compact Entry)
	prefixMeta     byte = 'm' // m<name>                          -> metadata
	prefixOp       byte = 'o' // o<be64 seq>                      -> encoded Op
	prefixTTL      byte = 't' // t<be64 expireAt ms><user key>    -> empty
	prefixSeries   byte = 's' // s r<uvarint len><id><be64 idx>  -> reading; s i<id> -> sensor info
	prefixConflict byte = 'c' // c<16-byte conflict id>           -> encoded conflict
	prefixCleared  byte = 'r' // r<16-byte conflict id>           -> uvarint cleared-at ms
	prefixSync     byte = 'x' // x<name>                          -> syncer state (opaque)
	prefixBroker   byte = 'b' // b<key>                           -> broker record (opaque)
)

// Metadata names under prefixMeta.
const (
	metaFormat  = "format"  // uvarint layout version
	metaNode    = "node"    // node id (string)
	metaActor   = "actor"   // actor name (string); absent: the node id
	metaRetired = "retired" // uvarint count, then per actor: uvarint-length name, uvarint last counter
	metaState   = "state"   // counter, HLC high-water, last seq, live keys
	metaContext = "context" // encoded crdt.Context of remote dots
	metaPruned  = "pruned"  // uvarint: op log pruned up to this seq
	metaSynced  = "synced"  // uvarint: ops <= seq are acknowledged upstream
)

// layoutVersion is stored under metaFormat; Open refuses a newer one.
const layoutVersion = 1

// Series sub-prefixes.
const (
	seriesReading byte = 'r'
	seriesInfo    byte = 'i'
)

func dataKey(buf []byte, key string) []byte {
	buf = append(buf[:0], prefixData)
	return append(buf, key...)
}

func metaKey(name string) []byte {
	return append([]byte{prefixMeta}, name...)
}

func opKey(buf []byte, seq uint64) []byte {
	buf = append(buf[:0], prefixOp)
	return binary.BigEndian.AppendUint64(buf, seq)
}

func opSeqFromKey(k []byte) (uint64, bool) {
	if len(k) != 9 || k[0] != prefixOp {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), true
}

// ttlKey orders by expiry time then key. Times before the epoch sort
// first (they are already expired).
func ttlKey(buf []byte, expireAt int64, key string) []byte {
	if expireAt < 0 {
		expireAt = 0
	}
	buf = append(buf[:0], prefixTTL)
	buf = binary.BigEndian.AppendUint64(buf, uint64(expireAt))
	return append(buf, key...)
}

func parseTTLKey(k []byte) (expireAt int64, key string, ok bool) {
	if len(k) < 9 || k[0] != prefixTTL {
		return 0, "", false
	}
	at := binary.BigEndian.Uint64(k[1:9])
	if at > math.MaxInt64 {
		return 0, "", false
	}
	return int64(at), string(k[9:]), true
}

func seriesPrefix(sensor string) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(sensor)+8)
	b = append(b, prefixSeries, seriesReading)
	b = binary.AppendUvarint(b, uint64(len(sensor)))
	return append(b, sensor...)
}

func readingKey(prefix []byte, idx uint64) []byte {
	k := make([]byte, len(prefix), len(prefix)+8)
	copy(k, prefix)
	return binary.BigEndian.AppendUint64(k, idx)
}

func sensorInfoKey(sensor string) []byte {
	return append([]byte{prefixSeries, seriesInfo}, sensor...)
}

func conflictKey(id [16]byte) []byte {
	return append([]byte{prefixConflict}, id[:]...)
}

func clearedKey(id [16]byte) []byte {
	return append([]byte{prefixCleared}, id[:]...)
}

func syncKey(name string) []byte {
	return append([]byte{prefixSync}, name...)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
