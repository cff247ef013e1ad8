package crdt

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestVersionVectorCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b VersionVector
		want Ordering
	}{
		{"both empty", nil, VersionVector{}, Equal},
		{"identical", VersionVector{"a": 2, "b": 1}, VersionVector{"a": 2, "b": 1}, Equal},
		{"zero entry equals absent", VersionVector{"a": 2, "b": 0}, VersionVector{"a": 2}, Equal},
		{"before", VersionVector{"a": 1}, VersionVector{"a": 2}, Before},
		{"before by missing node", VersionVector{"a": 2}, VersionVector{"a": 2, "b": 1}, Before},
		{"after", VersionVector{"a": 3, "b": 1}, VersionVector{"a": 2}, After},
		{"concurrent", VersionVector{"a": 3}, VersionVector{"a": 2, "b": 1}, Concurrent},
		{"concurrent disjoint", VersionVector{"a": 1}, VersionVector{"b": 1}, Concurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Fatalf("Compare = %s, want %s", got, tt.want)
			}
			inverse := map[Ordering]Ordering{Equal: Equal, Before: After, After: Before, Concurrent: Concurrent}
			if got := tt.b.Compare(tt.a); got != inverse[tt.want] {
				t.Fatalf("reverse Compare = %s, want %s", got, inverse[tt.want])
			}
		})
	}
}

func TestVersionVectorMergeCovers(t *testing.T) {
	var v VersionVector // nil vector must work
	v.Merge(VersionVector{"a": 3, "b": 1})
	v.Merge(VersionVector{"a": 2, "c": 4})
	want := VersionVector{"a": 3, "b": 1, "c": 4}
	if v.Compare(want) != Equal {
		t.Fatalf("Merge = %v", v)
	}
	if !v.Covers(Dot{"a", 3}) || v.Covers(Dot{"a", 4}) || v.Covers(Dot{"z", 1}) || v.Covers(Dot{"a", 0}) {
		t.Fatal("Covers wrong")
	}
	c := v.Clone()
	c.Set("a", 9)
	if v["a"] != 3 {
		t.Fatal("Clone shares storage")
	}
	c.Set("a", 0)
	if _, ok := c["a"]; ok {
		t.Fatal("Set(0) must remove the node")
	}
}

func TestVersionVectorEncoding(t *testing.T) {
	v := VersionVector{"edge-1": 300, "hub": 1, "zero": 0}
	b := v.AppendBinary(nil)
	got, err := DecodeVersionVector(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(v) != Equal || len(got) != 2 {
		t.Fatalf("round trip: %v", got)
	}
	// Deterministic: the same vector built in another order encodes the same.
	v2 := VersionVector{}
	v2.Set("hub", 1)
	v2.Set("edge-1", 300)
	if string(v2.AppendBinary(nil)) != string(b) {
		t.Fatal("encoding not deterministic")
	}
	for _, bad := range [][]byte{
		nil,
		{2, 0},                         // unknown version
		{1, 2, 1, 'b', 1, 1, 'a', 1},   // unsorted
		{1, 1, 1, 'a', 0},              // zero counter
		{1, 1, 1, 'a', 0x80, 0x00},     // non-minimal varint
		{1, 0, 0},                      // trailing byte
		{1, 0xff, 0xff, 0xff, 0xff, 1}, // huge count
	} {
		if _, err := DecodeVersionVector(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeVersionVector(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestContextModel checks Context against a plain set of dots under random
// additions and merges, including gaps that later fill in.
func TestContextModel(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	nodes := []string{"a", "b", "c"}
	for round := range 200 {
		var c, o Context
		model := map[Dot]bool{}
		for range r.IntN(40) {
			d := Dot{nodes[r.IntN(3)], uint64(1 + r.IntN(12))}
			if r.IntN(2) == 0 {
				c.Add(d)
			} else {
				o.Add(d)
			}
			model[d] = true
		}
		c.Merge(&o)
		for _, n := range nodes {
			for k := uint64(0); k <= 14; k++ {
				d := Dot{n, k}
				if got := c.Contains(d); got != model[d] {
					t.Fatalf("seed %d round %d: Contains(%s) = %v, want %v (ctx %s)", seed, round, d, got, model[d], &c)
				}
			}
		}
		// Canonical form: the cloud holds no dot the vector could absorb.
		for _, d := range c.Cloud() {
			if d.Counter <= c.vv[d.Node]+1 {
				t.Fatalf("seed %d: cloud dot %s not compacted (ctx %s)", seed, d, &c)
			}
		}
		dec, err := DecodeContext(c.AppendBinary(nil))
		if err != nil || !dec.Equal(&c) {
			t.Fatalf("seed %d: round trip %v: %s vs %s", seed, err, dec, &c)
		}
	}
}

func TestContextCompaction(t *testing.T) {
	var c Context
	c.AddDots([]Dot{{"a", 3}, {"a", 2}, {"a", 5}})
	if c.Contains(Dot{"a", 1}) || !c.Contains(Dot{"a", 2}) {
		t.Fatal("gap handling wrong")
	}
	if c.Max("a") != 5 || c.VersionVector()["a"] != 0 {
		t.Fatalf("Max/VersionVector wrong: %s", &c)
	}
	c.Add(Dot{"a", 1})
	if c.VersionVector()["a"] != 3 || len(c.Cloud()) != 1 {
		t.Fatalf("not compacted: %s", &c)
	}
	c.Add(Dot{"a", 4})
	if c.VersionVector()["a"] != 5 || len(c.Cloud()) != 0 {
		t.Fatalf("not compacted: %s", &c)
	}
	if got := c.String(); got != "{a:5}" {
		t.Fatalf("String = %q", got)
	}
	cl := c.Clone()
	cl.Add(Dot{"b", 1})
	if c.Contains(Dot{"b", 1}) {
		t.Fatal("Clone shares storage")
	}
}

func TestDecodeContextRejectsNonCanonical(t *testing.T) {
	var c Context
	c.AddDots([]Dot{{"a", 1}, {"a", 3}})
	good := c.AppendBinary(nil)
	if _, err := DecodeContext(good); err != nil {
		t.Fatal(err)
	}
	// A cloud dot that continues the prefix must have been absorbed.
	bad := VersionVector{"a": 1}.AppendBinary(nil)
	bad = append(bad, 1, 1, 'a', 1, 2)
	if _, err := DecodeContext(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("want ErrCorrupt, got %v", err)
	}
}
