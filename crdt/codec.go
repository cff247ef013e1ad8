package crdt

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// formatV1 is the first byte of every encoding made by this package. A
// decoder refuses any other value, so a format change is always noticed.
const formatV1 = 1

// Every decoder in this package is strict: it accepts exactly the canonical
// encoding its encoder produces (minimal varints, sorted and unique
// collections, no unused table entries), so decoding then re-encoding gives
// back the input byte for byte, and two replicas holding the same state hold
// the same bytes.

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// decoder reads a canonical encoding with a sticky error: after the first
// failure every read returns zero values, and err says what and where.
type decoder struct {
	b   []byte
	s   string // the same bytes as a string (or ""): names are cut from it without allocating
	off int
	err error
}

// newOwnedDecoder returns a decoder over private copies of b, so that the
// decoded value never aliases the caller's buffer (store buffers are reused):
// byte values alias one copy, strings another.
func newOwnedDecoder(b []byte) decoder {
	return decoder{b: slices.Clone(b), s: string(b)}
}

func (d *decoder) failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at offset %d", ErrCorrupt, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.failf("unexpected end of input")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.failf("bad uvarint")
		return 0
	}
	if n > 1 && d.b[d.off+n-1] == 0 {
		d.failf("non-minimal uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	// Zig-zag, as binary.AppendVarint writes it.
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 8 {
		d.failf("unexpected end of input")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) float() float64 {
	f := math.Float64frombits(d.u64())
	if math.IsNaN(f) {
		d.failf("NaN")
		return 0
	}
	return f
}

// count reads a collection length and checks it against the bytes left,
// given that every element takes at least minSize bytes, so no allocation is
// ever sized from unchecked input.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minSize) {
		d.failf("count %d exceeds input", n)
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string. The result aliases the
// decoder's buffer; decoders copy their input first.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(d.remaining()) {
		d.failf("length %d exceeds input", n)
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) string() string {
	v := d.bytes()
	if d.err != nil {
		return ""
	}
	if len(d.s) == len(d.b) {
		return d.s[d.off-len(v) : d.off]
	}
	return string(v)
}

// version checks the leading format byte.
func (d *decoder) version(what string) {
	if v := d.byte(); d.err == nil && v != formatV1 {
		d.failf("%s: unknown format version %d", what, v)
	}
}

// finish reports trailing garbage and returns the sticky error.
func (d *decoder) finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.failf("%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}
