package crdt

import (
	"errors"
	"testing"
)

func TestStrategyCompareTotalOrder(t *testing.T) {
	stamps := []Stamp{
		{TS: NewTimestamp(1000, 0), Node: "a", Role: RoleEdge},
		{TS: NewTimestamp(1000, 0), Node: "b", Role: RoleEdge},
		{TS: NewTimestamp(1000, 0), Node: "h", Role: RoleHub},
		{TS: NewTimestamp(999, 5), Node: "h", Role: RoleHub},
		{TS: NewTimestamp(2000, 0), Node: "a", Role: RoleEdge},
		{TS: NewTimestamp(2000, 0), Node: "a", Role: RoleHub},
	}
	for _, s := range []Strategy{LastWriteWins, CrdtMerge, CloudWins, EdgeWins} {
		for _, a := range stamps {
			if s.Compare(a, a) != 0 {
				t.Fatalf("%s: Compare(a,a) != 0", s)
			}
			for _, b := range stamps {
				if a != b && s.Compare(a, b) == 0 {
					t.Fatalf("%s: distinct stamps %s %s tie", s, a, b)
				}
				if s.Compare(a, b) != -s.Compare(b, a) {
					t.Fatalf("%s: not antisymmetric for %s %s", s, a, b)
				}
				for _, c := range stamps {
					if s.Compare(a, b) > 0 && s.Compare(b, c) > 0 && s.Compare(a, c) <= 0 {
						t.Fatalf("%s: not transitive %s %s %s", s, a, b, c)
					}
				}
			}
		}
	}
}

func TestStrategyCompareRules(t *testing.T) {
	edgeLate := Stamp{TS: NewTimestamp(2000, 0), Node: "e", Role: RoleEdge}
	hubEarly := Stamp{TS: NewTimestamp(1000, 0), Node: "h", Role: RoleHub}
	if LastWriteWins.Compare(edgeLate, hubEarly) <= 0 {
		t.Fatal("LWW: later timestamp must win")
	}
	if CloudWins.Compare(hubEarly, edgeLate) <= 0 {
		t.Fatal("CloudWins: hub must win whatever the clocks")
	}
	if EdgeWins.Compare(edgeLate, hubEarly) <= 0 || EdgeWins.Compare(Stamp{TS: 1, Role: RoleEdge}, Stamp{TS: 9, Role: RoleHub}) <= 0 {
		t.Fatal("EdgeWins: edge must win whatever the clocks")
	}
	tieA := Stamp{TS: NewTimestamp(1000, 0), Node: "a"}
	tieB := Stamp{TS: NewTimestamp(1000, 0), Node: "b"}
	if LastWriteWins.Compare(tieB, tieA) <= 0 {
		t.Fatal("equal clocks: greater node id must win")
	}
}

func TestParseStrategy(t *testing.T) {
	tests := map[string]Strategy{
		"lww": LastWriteWins, "LastWriteWins": LastWriteWins, "last_write_wins": LastWriteWins,
		"crdt": CrdtMerge, "CrdtMerge": CrdtMerge, "crdt-merge": CrdtMerge,
		"cloud_wins": CloudWins, "CloudWins": CloudWins, "edge_wins": EdgeWins, "EdgeWins": EdgeWins,
	}
	for in, want := range tests {
		got, err := ParseStrategy(in)
		if err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("newest"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	for s := range Strategy(numStrategies) {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Strategy
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("text round trip of %s: %v %v", s, back, err)
		}
	}
}

func TestResolver(t *testing.T) {
	r := Resolver{
		Default: LastWriteWins,
		Prefixes: []PrefixRule{
			{Prefix: "counter:", Strategy: CrdtMerge},
			{Prefix: "counter:cloud:", Strategy: CloudWins},
			{Prefix: "", Strategy: EdgeWins}, // matches everything, shortest
		},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]Strategy{
		"counter:x":       CrdtMerge,
		"counter:cloud:x": CloudWins,
		"other":           EdgeWins,
	} {
		if got := r.For(key); got != want {
			t.Errorf("For(%q) = %s, want %s", key, got, want)
		}
	}
	if (Resolver{Default: CrdtMerge}).For("x") != CrdtMerge {
		t.Fatal("default not used")
	}
	// The digest depends on meaning, not on rule order.
	r2 := Resolver{Default: LastWriteWins, Prefixes: []PrefixRule{r.Prefixes[2], r.Prefixes[0], r.Prefixes[1]}}
	if r.Digest() != r2.Digest() {
		t.Fatal("digest depends on rule order")
	}
	r2.Prefixes[0].Strategy = CrdtMerge
	if r.Digest() == r2.Digest() {
		t.Fatal("digest ignores a changed rule")
	}
	bad := Resolver{Default: 9, Prefixes: []PrefixRule{{"a", 0}, {"a", 1}}}
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
}
