package crdt

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for every decoder. Each checks that garbage is rejected with
// ErrCorrupt (never a panic), that whatever decodes re-encodes to exactly the
// same bytes (decoding is strict: canonical input only), and, for entries
// and deltas, that a decoded value is safe to join, view and mutate.

func addGoldenSeeds(f *testing.F) {
	for _, o := range goldenObjects(f) {
		f.Add(o.enc)
	}
	f.Add([]byte{})
	f.Add([]byte{formatV1})
}

func checkRoundTrip(t *testing.T, in []byte, err error, reenc func() []byte) bool {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error is not ErrCorrupt: %v", err)
		}
		return false
	}
	if out := reenc(); !bytes.Equal(out, in) {
		t.Fatalf("decode/encode not identical:\n in  %x\n out %x", in, out)
	}
	return true
}

// exercise joins, views and mutators on a decoded entry.
func exercise(t *testing.T, e *Entry) {
	other := goldenEntry(t)
	ctx := NewContext()
	ctx.AddDots(e.Dots())
	for _, s := range strategies() {
		x := e.Clone()
		x.MergeState(other, ctx, NewContext(), s)
		x.MergeState(e, ctx, ctx, s)
		renderView(x, 1_708_300_000_000)
		x.Range(-3, 5)
		x.HGet("city")
		x.IsMember("red")
		x.OriginPartial("edge-001")
		x.Int()
		x.Len()
		m := Mut{Dot: Dot{"fuzz", 1}, Stamp: Stamp{TS: 1 << 40, Node: "fuzz"}, Strategy: s, Now: 1_708_300_000_000}
		for _, f := range []func(*Entry, Mut) (*Delta, error){
			set("v"), del(), incr(1), sadd("red"), srem("blue"), lpush("x"), ltrim(0, 0),
			hset("city", "x"), hdel("city"), hincr("n", 1), expire(5), aggAdd(Partial{Count: 1}),
		} {
			d, err := f(x, m)
			if err != nil || d == nil {
				continue
			}
			y := x.Clone()
			y.ApplyDelta(d, ctx, s)
			renderView(y, 0)
			if _, err := DecodeDelta(d.AppendBinary(nil)); err != nil {
				t.Fatalf("delta made from a decoded entry does not decode: %v", err)
			}
		}
	}
}

var goldenEntryBytes []byte

func goldenEntry(t *testing.T) *Entry {
	if goldenEntryBytes == nil {
		for _, o := range goldenObjects(t) {
			if o.name == "crdt_merge/entry/store:42" {
				goldenEntryBytes = o.enc
			}
		}
	}
	e, err := DecodeEntry(goldenEntryBytes)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func FuzzDecodeEntry(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if checkRoundTrip(t, b, err, func() []byte { return e.AppendBinary(nil) }) {
			exercise(t, e)
		}
	})
}

func FuzzDecodeDelta(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b)
		if !checkRoundTrip(t, b, err, func() []byte { return d.AppendBinary(nil) }) {
			return
		}
		for _, s := range strategies() {
			var e Entry
			ctx := NewContext()
			e.ApplyDelta(d, ctx, s)
			ctx.AddDots(d.Ctx)
			renderView(&e, 0)
			g := goldenEntry(t)
			g.ApplyDelta(d, ctx, s)
			exercise(t, &e)
		}
	})
}

func FuzzDecodeContext(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeContext(b)
		if checkRoundTrip(t, b, err, func() []byte { return c.AppendBinary(nil) }) {
			c2 := c.Clone()
			c2.Merge(c)
			if !c2.Equal(c) {
				t.Fatal("c ⊔ c != c")
			}
		}
	})
}

func FuzzDecodeVersionVector(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVersionVector(b)
		if checkRoundTrip(t, b, err, func() []byte { return v.AppendBinary(nil) }) && v.Compare(v) != Equal {
			t.Fatal("v not Equal to itself")
		}
	})
}

func FuzzDecodeConflict(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeConflict(b)
		if checkRoundTrip(t, b, err, func() []byte { return c.AppendBinary(nil) }) {
			_ = c.IDString()
			_ = DisplayValue(c.Winner.Kind, c.Winner.Value)
		}
	})
}

func FuzzDecodeTimestamp(f *testing.F) {
	f.Add(NewTimestamp(1, 2).AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := DecodeTimestamp(b)
		checkRoundTrip(t, b, err, func() []byte { return ts.AppendBinary(nil) })
	})
}

// FuzzDecodeBlock tries every building block's decoder on the input.
func FuzzDecodeBlock(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, re := range []func([]byte) ([]byte, error){reReg, reCounter, reSet, reList, reMap, reAgg} {
			out, err := re(b)
			checkRoundTrip(t, b, err, func() []byte { return out })
		}
	})
}
