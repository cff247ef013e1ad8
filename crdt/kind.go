package crdt

import (
	"bytes"
	"fmt"
	"strconv"
)

// Kind is the type of a key's value (or of a hash field's value).
type Kind uint8

// Kinds. KindNone is never stored: views return it for a key that does not
// exist (never written, deleted, expired, or an emptied collection).
const (
	KindNone      Kind = 0
	KindString    Kind = 1
	KindCounter   Kind = 2
	KindHash      Kind = 3
	KindList      Kind = 4
	KindSet       Kind = 5
	KindAggregate Kind = 6
	KindDeleted   Kind = 7
)

var kindNames = [...]string{"none", "string", "counter", "hash", "list", "set", "aggregate", "deleted"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// mergeable reports whether a head of kind k can carry elements (and so
// merge with concurrent heads of the same kind).
func (k Kind) mergeable() bool { return k >= KindCounter && k <= KindAggregate }

// validHead reports whether k may be stored in a key's head.
func (k Kind) validHead() bool { return k >= KindString && k <= KindDeleted }

// validField reports whether k may be stored in a hash field's head.
func (k Kind) validField() bool { return k == KindString || k == KindCounter || k == KindDeleted }

// Head is one incarnation of a slot (a key, or a field of a hash): the
// write that created it (Dot, Stamp), its kind, and its value. A head written
// under CrdtMerge for a mergeable kind has an empty Value: its data lives in
// elements tagged with its dot. Otherwise Value holds the whole value (a
// string, a decimal counter, or an encoded collection for the
// LastWriteWins family). Heads are immutable.
type Head struct {
	Dot   Dot
	Stamp Stamp
	Kind  Kind
	Value []byte
}

// carriesElements reports whether h keeps its data in elements.
func (h *Head) carriesElements() bool { return h.Kind.mergeable() && len(h.Value) == 0 }

func (h Head) String() string {
	v := strconv.Quote(string(h.Value))
	if h.carriesElements() {
		v = "<elements>"
	}
	return fmt.Sprintf("%s %s %s %s", h.Dot, h.Kind, v, h.Stamp)
}

// sameWrite reports whether a and b record the same value: then neither
// loses anything and no conflict is reported.
func sameWrite(a, b *Head) bool {
	return a.Kind == b.Kind && !a.carriesElements() && bytes.Equal(a.Value, b.Value)
}

// parseInt parses a canonical base-10 int64 as Redis does: an optional '-',
// no '+', no spaces, no leading zeros.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	var buf [20]byte
	if !bytes.Equal(strconv.AppendInt(buf[:0], v, 10), b) {
		return 0, false
	}
	return v, true
}

func formatInt(v int64) []byte { return strconv.AppendInt(nil, v, 10) }

// addInt returns a+b or ErrOverflow.
func addInt(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, ErrOverflow
	}
	return s, nil
}
