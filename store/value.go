package store

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// Compact value encoding (the feature document's "Compact Storage").
//
// A compact value is a one-byte header followed by the payload:
//
//	0x00..0x17  inline: the header is the payload length n (0..23), followed
//	            by exactly n bytes. Small values cost one byte of overhead and
//	            decode without allocating.
//	0x80        plain: the payload follows, its length is the rest of the
//	            value (24 bytes or more, or any value when compression is off
//	            or does not pay).
//	0x81        lz4: uvarint of the decoded length, then one LZ4 block. Used
//	            only for payloads of at least 64 bytes when compression is on,
//	            and only when the result is smaller than the plain form.
//
// The boundaries (23/24 and 63/64) are part of the format and tested.
const (
	inlineMax        = 23
	compressMin      = 64
	tagPlain    byte = 0x80
	tagLZ4      byte = 0x81

	// lz4MaxRatio bounds the decoded size an LZ4 block of n bytes can
	// claim (LZ4's best case is ~255:1), so a corrupt length never sizes an
	// allocation.
	lz4MaxRatio = 255
)

// valueCodec encodes compact values. It keeps the LZ4 compressor state and a
// scratch buffer, so it is not safe for concurrent use: the store uses one
// under its write mutex.
type valueCodec struct {
	level   int // 0 off, 1 fast, 2..9 LZ4-HC
	fast    lz4.Compressor
	hc      lz4.CompressorHC
	scratch []byte
}

// maxCompressionLevel is the strongest level (the iot preset's, and what
// SetHighCompression switches to).
const maxCompressionLevel = 9

func newValueCodec(level int) *valueCodec {
	c := &valueCodec{level: level}
	if level >= 2 {
		// Levels follow the lz4 tool: level n of LZ4-HC tries 2^(n-1)
		// matches per position (lz4hc.c's table: 3 -> 4, 6 -> 32,
		// 9 -> 256). pierrec's lz4.LevelN constants are search depths of
		// 2^(8+n), a level-3 depth of 2048: far slower than lz4's own
		// level 3 for the small entries written here.
		c.hc.Level = lz4.CompressionLevel(1 << (level - 1))
	}
	return c
}

// appendValue appends the compact encoding of v to dst.
func (c *valueCodec) appendValue(dst, v []byte) []byte {
	switch {
	case len(v) <= inlineMax:
		dst = append(dst, byte(len(v)))
		return append(dst, v...)
	case len(v) < compressMin || c.level == 0:
		dst = append(dst, tagPlain)
		return append(dst, v...)
	}
	bound := lz4.CompressBlockBound(len(v))
	if cap(c.scratch) < bound {
		c.scratch = make([]byte, bound)
	}
	buf := c.scratch[:bound]
	var n int
	var err error
	if c.level == 1 {
		n, err = c.fast.CompressBlock(v, buf)
	} else {
		n, err = c.hc.CompressBlock(v, buf)
	}
	if err != nil || n == 0 || 1+uvarintLen(uint64(len(v)))+n >= 1+len(v) {
		// Incompressible (or the compressor gave up): plain is smaller.
		dst = append(dst, tagPlain)
		return append(dst, v...)
	}
	dst = append(dst, tagLZ4)
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, buf[:n]...)
}

// decodeValue returns the payload of the compact value enc. Inline and plain
// payloads alias enc (no allocation); LZ4 payloads are decoded into dst,
// which is grown if needed. max bounds the decoded size of an LZ4 payload.
func decodeValue(dst, enc []byte, max int) ([]byte, error) {
	if len(enc) == 0 {
		return nil, fmt.Errorf("%w: empty value", ErrCorrupt)
	}
	h := enc[0]
	switch {
	case h <= inlineMax:
		if len(enc) != 1+int(h) {
			return nil, fmt.Errorf("%w: inline length %d, have %d bytes", ErrCorrupt, h, len(enc)-1)
		}
		return enc[1:], nil
	case h == tagPlain:
		return enc[1:], nil
	case h == tagLZ4:
		return decodeLZ4(dst, enc[1:], max)
	}
	return nil, fmt.Errorf("%w: unknown value header 0x%02x", ErrCorrupt, h)
}

func decodeLZ4(dst, src []byte, max int) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad lz4 length", ErrCorrupt)
	}
	block := src[k:]
	if n < compressMin || n > uint64(max) || n > uint64(len(block))*lz4MaxRatio {
		return nil, fmt.Errorf("%w: lz4 length %d out of range", ErrCorrupt, n)
	}
	if uint64(cap(dst)) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	got, err := lz4.UncompressBlock(block, dst)
	if err != nil {
		return nil, fmt.Errorf("%w: lz4: %v", ErrCorrupt, err)
	}
	if uint64(got) != n {
		return nil, fmt.Errorf("%w: lz4 decoded %d bytes, want %d", ErrCorrupt, got, n)
	}
	return dst, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
