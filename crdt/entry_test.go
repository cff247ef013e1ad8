package crdt

import (
	"errors"
	"testing"
)

func strategies() []Strategy { return []Strategy{LastWriteWins, CrdtMerge, CloudWins, EdgeWins} }

// TestSequentialSemantics: on one replica every strategy behaves like Redis.
func TestSequentialSemantics(t *testing.T) {
	for _, s := range strategies() {
		t.Run(s.String(), func(t *testing.T) {
			r := newReplica("a", RoleEdge, Resolver{Default: s})
			steps := []struct {
				key  string
				f    func(*Entry, Mut) (*Delta, error)
				want string
			}{
				{"s", set("v1"), `string "v1"`},
				{"s", set("v2"), `string "v2"`},
				{"s", del(), `(none)`},
				{"c", incr(5), `counter "5"`},
				{"c", incr(-7), `counter "-2"`},
				{"n", set("41"), `string "41"`},
				{"n", incr(1), `counter "42"`},
				{"l", rpush("a", "b"), `list ["a" "b"]`},
				{"l", lpush("x", "y"), `list ["y" "x" "a" "b"]`},
				{"l", rpush("c"), `list ["y" "x" "a" "b" "c"]`},
				{"l", ltrim(1, -2), `list ["x" "a" "b"]`},
				{"l", ltrim(5, 9), `(none)`},
				{"st", sadd("b", "a", "b"), `set {a b}`},
				{"st", sadd("c"), `set {a b c}`},
				{"st", srem("a", "zz"), `set {b c}`},
				{"st", srem("b", "c"), `(none)`},
				{"st", sadd("q"), `set {q}`},
				{"h", hset("f1", "v1"), `hash {f1="v1"}`},
				{"h", hincr("f2", 3), `hash {f1="v1" f2="3"}`},
				{"h", hincr("f2", 4), `hash {f1="v1" f2="7"}`},
				{"h", hset("f2", "x"), `hash {f1="v1" f2="x"}`},
				{"h", hdel("f1"), `hash {f2="x"}`},
				{"h", hdel("f2"), `(none)`},
				{"h", hincr("f", -1), `hash {f="-1"}`},
				{"g", aggAdd(Partial{Count: 2, Sum: 5, Min: 2, Max: 3, FirstTS: 10, LastTS: 20}), `aggregate count=2 sum=5 min=2 max=3 first=10 last=20`},
				{"g", aggAdd(Partial{Count: 3, Sum: 9, Min: 2, Max: 4, FirstTS: 10, LastTS: 30}), `aggregate count=3 sum=9 min=2 max=4 first=10 last=30`},
			}
			for i, st := range steps {
				if _, err := r.do(t, st.key, st.f); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got := r.view(st.key); got != st.want {
					t.Fatalf("step %d (%s): got %s, want %s", i, st.key, got, st.want)
				}
			}
		})
	}
}

func TestWrongTypeAndIntegerErrors(t *testing.T) {
	for _, s := range strategies() {
		r := newReplica("a", RoleEdge, Resolver{Default: s})
		r.mustDo(t, "s", set("abc"))
		r.mustDo(t, "l", rpush("x"))
		r.mustDo(t, "h", hset("f", "nan"))
		r.mustDo(t, "m", set("9223372036854775807"))
		for _, tc := range []struct {
			name string
			key  string
			f    func(*Entry, Mut) (*Delta, error)
			want error
		}{
			{"incr string", "s", incr(1), ErrNotInteger},
			{"sadd string", "s", sadd("x"), ErrWrongType},
			{"incr list", "l", incr(1), ErrWrongType},
			{"hset list", "l", hset("f", "v"), ErrWrongType},
			{"lpush hash", "h", lpush("v"), ErrWrongType},
			{"hincr non-int", "h", hincr("f", 1), ErrNotInteger},
			{"incr overflow", "m", incr(1), ErrOverflow},
			{"agg on list", "l", aggAdd(Partial{Count: 1}), ErrWrongType},
			{"agg empty", "new", aggAdd(Partial{}), ErrInvalid},
			{"sadd no members", "new", sadd(), ErrInvalid},
			{"push no values", "new", rpush(), ErrInvalid},
			{"hincr overflow", "h2", func(e *Entry, m Mut) (*Delta, error) { return e.HIncrBy(m, "f", -1<<63) }, nil},
			{"decr min overflow", "h2", hincr("f", -1), ErrOverflow},
		} {
			_, err := r.do(t, tc.key, tc.f)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("%s/%s: %v", s, tc.name, err)
				}
				continue
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("%s/%s: got %v, want %v", s, tc.name, err, tc.want)
			}
		}
		// Views report the wrong kind too.
		e := r.entries["l"]
		if _, err := e.Bytes(); !errors.Is(err, ErrWrongType) {
			t.Errorf("%s: Bytes on list: %v", s, err)
		}
		if _, err := r.entries["s"].Members(); !errors.Is(err, ErrWrongType) {
			t.Errorf("%s: Members on string: %v", s, err)
		}
	}
}

func TestNoOpMutationsReturnNil(t *testing.T) {
	for _, s := range strategies() {
		r := newReplica("a", RoleEdge, Resolver{Default: s})
		e := r.entry("k")
		m := Mut{Dot: Dot{"a", 1}, Stamp: Stamp{TS: 1, Node: "a"}, Strategy: s}
		for name, f := range map[string]func() (*Delta, error){
			"del absent":    func() (*Delta, error) { return e.Delete(m) },
			"srem absent":   func() (*Delta, error) { return e.SRem(m, "x") },
			"hdel absent":   func() (*Delta, error) { return e.HDel(m, "x") },
			"ltrim absent":  func() (*Delta, error) { return e.LTrim(m, 0, 1) },
			"expire absent": func() (*Delta, error) { return e.Expire(m, 5) },
		} {
			d, err := f()
			if d != nil || err != nil {
				t.Errorf("%s/%s: got %v, %v", s, name, d, err)
			}
		}
		r.mustDo(t, "k", sadd("x"))
		for name, f := range map[string]func(*Entry, Mut) (*Delta, error){
			"sadd present":  sadd("x"),
			"srem missing":  srem("y"),
			"ltrim nothing": nil,
		} {
			if f == nil {
				continue
			}
			if name == "sadd present" && s.Merges() {
				// A re-add under CrdtMerge gives the member a new dot, so
				// that it wins over a concurrent SREM (add-wins).
				continue
			}
			o, err := r.do(t, "k", f)
			if o != nil || err != nil {
				t.Errorf("%s/%s: got %v, %v", s, name, o, err)
			}
		}
	}
}

// TestDeltaSizes: a register or counter delta encodes in tens of bytes.
func TestDeltaSizes(t *testing.T) {
	r := newReplica("edge-001", RoleEdge, Resolver{Default: CrdtMerge})
	r.mustDo(t, "sensor:temp:001", set("23.4"))
	o := r.mustDo(t, "sensor:temp:001", set("23.5"))
	if n := len(o.delta); n > 64 {
		t.Errorf("register delta is %d bytes", n)
	}
	r.mustDo(t, "store:42:visits", incr(1))
	o = r.mustDo(t, "store:42:visits", incr(1))
	if n := len(o.delta); n > 64 {
		t.Errorf("counter delta is %d bytes", n)
	}
	t.Logf("register delta %d bytes, counter delta %d bytes", len(r.mustDo(t, "x", set("23.5")).delta), len(o.delta))
}

func TestTTL(t *testing.T) {
	for _, s := range strategies() {
		r := newReplica("a", RoleEdge, Resolver{Default: s})
		r.clock.ms = 1000
		r.mustDo(t, "k", func(e *Entry, m Mut) (*Delta, error) { return e.Set(m, []byte("v"), false, 5000) })
		e := r.entries["k"]
		if e.ExpireAt() != 5000 || e.Kind(4999) != KindString || e.Kind(5000) != KindNone {
			t.Fatalf("%s: TTL not applied: %d", s, e.ExpireAt())
		}
		// KEEPTTL keeps it, plain SET clears it.
		r.mustDo(t, "k", func(e *Entry, m Mut) (*Delta, error) { return e.Set(m, []byte("w"), true, 0) })
		if e.ExpireAt() != 5000 {
			t.Fatalf("%s: KEEPTTL lost the TTL", s)
		}
		// Collection updates keep the TTL (Redis semantics).
		r.mustDo(t, "l", rpush("a"))
		r.mustDo(t, "l", expire(7000))
		r.mustDo(t, "l", rpush("b"))
		if got := r.entries["l"].ExpireAt(); got != 7000 {
			t.Fatalf("%s: RPUSH dropped the TTL: %d", s, got)
		}
		r.mustDo(t, "k", set("x"))
		if e.ExpireAt() != 0 {
			t.Fatalf("%s: SET did not clear the TTL", s)
		}
		r.mustDo(t, "k", expire(3000))
		r.mustDo(t, "k", expire(0)) // PERSIST
		if e.ExpireAt() != 0 {
			t.Fatalf("%s: PERSIST failed", s)
		}
		// An expired key is absent to mutators: INCR starts from 0.
		r.mustDo(t, "c", incr(10))
		r.mustDo(t, "c", expire(2000))
		r.clock.ms = 2000
		r.mustDo(t, "c", incr(1))
		if got := r.view("c"); got != `counter "1"` {
			t.Fatalf("%s: INCR on expired key: %s", s, got)
		}
		// The sweeper's DEL of an expired key is written.
		r.mustDo(t, "k", expire(2000))
		if o, _ := r.do(t, "k", del()); o == nil {
			t.Fatalf("%s: DEL of an expired key not written", s)
		}
	}
}
