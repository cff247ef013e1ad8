package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Conflict records a write that was discarded by conflict resolution: two
// concurrent writes to one slot (a key, or a field of a hash) that could not
// merge, the winner chosen by Strategy, and the loser. Heads that merge
// (concurrent updates of one collection or counter under CrdtMerge),
// identical values, and Deleted versus Deleted are not conflicts.
type Conflict struct {
	Key       string // filled in by the store
	HashField bool   // the slot is a hash field, named by Field
	Field     string
	Winner    Head // an element-carrying head has an empty Value
	Loser     Head
	Strategy  Strategy
}

// ID returns a deterministic identifier: a hash of (key, field, winner dot,
// loser dot), so the same conflict detected again (a re-delivered delta, or
// on another replica) has the same id.
func (c *Conflict) ID() [16]byte {
	b := make([]byte, 0, 64+len(c.Key)+len(c.Field))
	b = appendString(b, c.Key)
	if c.HashField {
		b = append(b, 1)
		b = appendString(b, c.Field)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, c.Winner.Dot.Node)
	b = appendUvarint(b, c.Winner.Dot.Counter)
	b = appendString(b, c.Loser.Dot.Node)
	b = appendUvarint(b, c.Loser.Dot.Counter)
	sum := sha256.Sum256(b)
	var id [16]byte
	copy(id[:], sum[:])
	return id
}

// IDString returns ID as 32 hex digits.
func (c *Conflict) IDString() string {
	id := c.ID()
	return hex.EncodeToString(id[:])
}

func (c Conflict) String() string {
	slot := fmt.Sprintf("%q", c.Key)
	if c.HashField {
		slot += fmt.Sprintf(" field %q", c.Field)
	}
	return fmt.Sprintf("%s [%s]: %s beat %s", slot, c.Strategy, c.Winner, c.Loser)
}

// AppendBinary appends the canonical encoding of c.
func (c *Conflict) AppendBinary(b []byte) []byte {
	b = append(b, formatV1)
	b = appendString(b, c.Key)
	if c.HashField {
		b = append(b, 1)
		b = appendString(b, c.Field)
	} else {
		b = append(b, 0)
	}
	b = append(b, byte(c.Strategy))
	b = appendConflictHead(b, &c.Winner)
	return appendConflictHead(b, &c.Loser)
}

func appendConflictHead(b []byte, h *Head) []byte {
	b = appendString(b, h.Dot.Node)
	b = appendUvarint(b, h.Dot.Counter)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Stamp.TS))
	b = appendString(b, h.Stamp.Node)
	b = append(b, byte(h.Stamp.Role), byte(h.Kind))
	return appendBytes(b, h.Value)
}

// DecodeConflict decodes the encoding made by Conflict.AppendBinary. The
// result does not alias b.
func DecodeConflict(b []byte) (Conflict, error) {
	d := newOwnedDecoder(b)
	d.version("conflict")
	var c Conflict
	c.Key = d.string()
	switch d.byte() {
	case 0:
	case 1:
		c.HashField = true
		c.Field = d.string()
	default:
		d.failf("bad field flag")
	}
	c.Strategy = Strategy(d.byte())
	if d.err == nil && !c.Strategy.Valid() {
		d.failf("unknown strategy %d", c.Strategy)
	}
	c.Winner = decodeConflictHead(&d)
	c.Loser = decodeConflictHead(&d)
	if err := d.finish(); err != nil {
		return Conflict{}, err
	}
	return c, nil
}

func decodeConflictHead(d *decoder) Head {
	var h Head
	h.Dot.Node = d.string()
	h.Dot.Counter = d.uvarint()
	h.Stamp.TS = Timestamp(d.u64())
	h.Stamp.Node = d.string()
	h.Stamp.Role = Role(d.byte())
	h.Kind = Kind(d.byte())
	h.Value = d.bytes()
	if d.err == nil && (h.Stamp.Role > RoleHub || !h.Kind.validHead() || h.Dot.Counter == 0) {
		d.failf("bad conflict head")
	}
	return h
}
