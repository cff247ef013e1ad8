package syncer

import (
	"encoding/binary"
	"fmt"
)

// Low-level wire helpers: appenders and a bounds-checked reader. Every
// count read from the wire is checked against the bytes left before
// anything is allocated from it, so garbage never makes the decoder
// allocate more than the message itself could describe.

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// reader decodes a message body. The first error sticks; every method
// returns a zero value once it is set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s (at byte %d)", ErrCorrupt, fmt.Sprintf(format, args...), r.off)
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	// Canonical: no redundant continuation bytes, so every message has one
	// encoding and decode→encode gives back the input.
	if n != uvarintLen(v) {
		r.fail("non-minimal uvarint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func appendVarint(b []byte, v int64) []byte {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return binary.AppendUvarint(b, u)
}

// count reads an element count and checks that count elements of at
// least minSize bytes each fit in what is left.
func (r *reader) count(minSize int, what string) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(r.left()/minSize) {
		r.fail("%s count %d exceeds message", what, n)
		return 0
	}
	return int(n)
}

// bytes returns the next length-prefixed byte string (aliasing r.b) of at
// most max bytes.
func (r *reader) bytes(max int, what string) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail("%s length %d over limit %d", what, n, max)
		return nil
	}
	if n > uint64(r.left()) {
		r.fail("%s length %d exceeds message", what, n)
		return nil
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v
}

func (r *reader) str(max int, what string) string { return string(r.bytes(max, what)) }

func (r *reader) bool(what string) bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("%s: bad boolean", what)
	return false
}

// done reports the sticky error, or trailing bytes.
func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
