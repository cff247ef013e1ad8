package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func compressible(n int) []byte {
	return bytes.Repeat([]byte("abcd"), n/4+1)[:n]
}

func random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestValueCodecBoundaries(t *testing.T) {
	tests := []struct {
		name   string
		level  int
		value  []byte
		header byte
		size   int // encoded size, -1: only "smaller than plain"
	}{
		{"empty", 3, nil, 0, 1},
		{"inline 1", 3, []byte("x"), 1, 2},
		{"inline 23", 3, compressible(23), 23, 24},
		{"plain 24", 3, compressible(24), tagPlain, 25},
		{"plain 63 compressible", 3, compressible(63), tagPlain, 64},
		{"lz4 64 compressible", 3, compressible(64), tagLZ4, -1},
		{"plain 64 incompressible", 3, random(64, 1), tagPlain, 65},
		{"plain 64 compression off", 0, compressible(64), tagPlain, 65},
		{"lz4 fast 1000", 1, compressible(1000), tagLZ4, -1},
		{"lz4 hc9 1000", 9, compressible(1000), tagLZ4, -1},
		{"plain 4096 random", 9, random(4096, 2), tagPlain, 4097},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newValueCodec(tc.level)
			enc := c.appendValue(nil, tc.value)
			if enc[0] != tc.header {
				t.Fatalf("header 0x%02x, want 0x%02x", enc[0], tc.header)
			}
			if tc.size >= 0 && len(enc) != tc.size {
				t.Fatalf("encoded %d bytes, want %d", len(enc), tc.size)
			}
			if tc.size < 0 && len(enc) >= 1+len(tc.value) {
				t.Fatalf("lz4 encoding of %d bytes is %d bytes: not smaller than plain", len(tc.value), len(enc))
			}
			dec, err := decodeValue(nil, enc, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dec, tc.value) {
				t.Fatalf("round trip: got %q, want %q", dec, tc.value)
			}
		})
	}
}

func TestValueCodecAppends(t *testing.T) {
	c := newValueCodec(3)
	prefix := []byte("prefix")
	enc := c.appendValue(append([]byte(nil), prefix...), compressible(200))
	if !bytes.HasPrefix(enc, prefix) {
		t.Fatal("appendValue clobbered dst")
	}
	dec, err := decodeValue(nil, enc[len(prefix):], 1<<20)
	if err != nil || !bytes.Equal(dec, compressible(200)) {
		t.Fatalf("round trip after prefix: %v", err)
	}
}

func TestDecodeValueCorrupt(t *testing.T) {
	c := newValueCodec(3)
	good := c.appendValue(nil, compressible(500))
	tests := []struct {
		name string
		enc  []byte
		max  int
	}{
		{"empty", nil, 1 << 20},
		{"inline short", []byte{5, 'a'}, 1 << 20},
		{"inline long", []byte{1, 'a', 'b'}, 1 << 20},
		{"unknown header", []byte{0x42, 1, 2}, 1 << 20},
		{"lz4 no length", []byte{tagLZ4}, 1 << 20},
		{"lz4 huge length", []byte{tagLZ4, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}, 1 << 40},
		{"lz4 length below 64", []byte{tagLZ4, 10, 0}, 1 << 20},
		{"lz4 over max", good, 100},
		{"lz4 truncated", good[:len(good)-3], 1 << 20},
		{"lz4 wrong length", append([]byte{tagLZ4, 0x90, 0x04}, good[3:]...), 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeValue(nil, tc.enc, tc.max)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestDecodeValueNoAllocInline(t *testing.T) {
	c := newValueCodec(3)
	small := c.appendValue(nil, []byte("23.5"))
	plain := c.appendValue(nil, random(40, 3))
	lz := c.appendValue(nil, compressible(300))
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = decodeValue(nil, small, 1<<20)
		_, _ = decodeValue(nil, plain, 1<<20)
		_, _ = decodeValue(buf, lz, 1<<20)
	})
	if allocs != 0 {
		t.Fatalf("decode allocated %.0f times per run", allocs)
	}
}

func FuzzDecodeValue(f *testing.F) {
	c := newValueCodec(3)
	for _, v := range [][]byte{nil, []byte("23.5"), compressible(24), compressible(64), compressible(1000), random(100, 4)} {
		f.Add(c.appendValue(nil, v))
	}
	f.Add([]byte{tagLZ4, 0xff, 0x01, 0x1f, 'a'})
	f.Fuzz(func(t *testing.T, enc []byte) {
		dec, err := decodeValue(nil, enc, 1<<20)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes to the
		// same payload.
		again, err := decodeValue(nil, c.appendValue(nil, dec), 1<<20)
		if err != nil || !bytes.Equal(again, dec) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

func BenchmarkDecodeValue(b *testing.B) {
	c := newValueCodec(3)
	for _, bc := range []struct {
		name string
		v    []byte
	}{{"inline", []byte("23.5")}, {"plain", random(48, 5)}, {"lz4-1k", compressible(1024)}} {
		enc := c.appendValue(nil, bc.v)
		buf := make([]byte, 0, 2048)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.v)))
			for b.Loop() {
				if _, err := decodeValue(buf, enc, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
