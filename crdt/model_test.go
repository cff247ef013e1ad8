package crdt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
)

// A plain sequential model of the operations (what Redis does on one
// server). On a single replica every strategy must behave exactly like it.

type mval struct {
	kind     Kind
	str      string
	hash     map[string]string
	list     []string
	set      map[string]bool
	agg      Partial
	expireAt int64
}

type model map[string]*mval

// live returns the key's value at now, dropping it if expired.
func (md model) live(key string, now int64) *mval {
	v := md[key]
	if v != nil && v.expireAt != 0 && now >= v.expireAt {
		delete(md, key)
		return nil
	}
	return v
}

func (md model) apply(o genOp, now int64) error {
	v := md.live(o.key, now)
	want := map[string]Kind{
		"incr": KindCounter, "hset": KindHash, "hsetm": KindHash, "hdel": KindHash, "hincr": KindHash,
		"lpush": KindList, "rpush": KindList, "ltrim": KindList, "sadd": KindSet, "srem": KindSet, "agg": KindAggregate,
	}[o.name]
	if v != nil && want != 0 && v.kind != want && !(o.name == "incr" && v.kind == KindString) {
		return ErrWrongType
	}
	fresh := func(k Kind) *mval {
		if v == nil {
			v = &mval{kind: k, hash: map[string]string{}, set: map[string]bool{}}
			md[o.key] = v
		}
		return v
	}
	switch o.name {
	case "set", "setex":
		md[o.key] = &mval{kind: KindString, str: o.strs[0], expireAt: o.n}
	case "del":
		delete(md, o.key)
	case "expire":
		if v != nil {
			v.expireAt = o.n
		}
	case "incr":
		cur := int64(0)
		if v != nil {
			x, ok := parseInt([]byte(v.str))
			if !ok {
				return ErrNotInteger
			}
			cur = x
		}
		next, err := addInt(cur, o.n)
		if err != nil {
			return err
		}
		fresh(KindCounter)
		v.kind, v.str = KindCounter, strconv.FormatInt(next, 10)
	case "hset", "hsetm":
		fresh(KindHash)
		for i := 0; i < len(o.strs); i += 2 {
			v.hash[o.strs[i]] = o.strs[i+1]
		}
	case "hdel":
		if v != nil {
			delete(v.hash, o.strs[0])
			if len(v.hash) == 0 {
				delete(md, o.key)
			}
		}
	case "hincr":
		cur := int64(0)
		if v != nil {
			if s, ok := v.hash[o.strs[0]]; ok {
				x, ok := parseInt([]byte(s))
				if !ok {
					return ErrNotInteger
				}
				cur = x
			}
		}
		next, err := addInt(cur, o.n)
		if err != nil {
			return err
		}
		fresh(KindHash).hash[o.strs[0]] = strconv.FormatInt(next, 10)
	case "lpush":
		fresh(KindList)
		for _, s := range o.strs {
			v.list = append([]string{s}, v.list...)
		}
	case "rpush":
		fresh(KindList).list = append(v.list, o.strs...)
	case "ltrim":
		if v != nil {
			lo, hi := redisRange(o.n, o.m, len(v.list))
			v.list = v.list[lo:hi]
			if len(v.list) == 0 {
				delete(md, o.key)
			}
		}
	case "sadd":
		fresh(KindSet)
		for _, s := range o.strs {
			v.set[s] = true
		}
	case "srem":
		if v != nil {
			delete(v.set, o.strs[0])
			if len(v.set) == 0 {
				delete(md, o.key)
			}
		}
	case "agg":
		x := float64(o.n)
		fresh(KindAggregate).agg = v.agg.Combine(Partial{Count: 1, Sum: x, Min: x, Max: x, FirstTS: now, LastTS: now})
	}
	return nil
}

// render formats the model's view of key like renderView.
func (md model) render(key string, now int64) string {
	v := md.live(key, now)
	if v == nil {
		return "(none)"
	}
	var s string
	switch v.kind {
	case KindString, KindCounter:
		s = fmt.Sprintf("%q", v.str)
	case KindHash:
		var parts []string
		for _, f := range slices.Sorted(maps.Keys(v.hash)) {
			parts = append(parts, fmt.Sprintf("%s=%q", f, v.hash[f]))
		}
		s = fmt.Sprintf("{%s}", joinStr(parts))
	case KindList:
		var parts []string
		for _, x := range v.list {
			parts = append(parts, fmt.Sprintf("%q", x))
		}
		s = fmt.Sprintf("[%s]", joinStr(parts))
	case KindSet:
		s = fmt.Sprintf("{%s}", joinStr(slices.Sorted(maps.Keys(v.set))))
	case KindAggregate:
		p := v.agg
		s = fmt.Sprintf("count=%d sum=%g min=%g max=%g first=%d last=%d", p.Count, p.Sum, p.Min, p.Max, p.FirstTS, p.LastTS)
	}
	if v.expireAt != 0 {
		s += fmt.Sprintf(" (expires %d)", v.expireAt)
	}
	return v.kind.String() + " " + s
}

// TestModel: random operations on one replica give exactly the model's
// results, errors included, under every strategy.
func TestModel(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				rep := newReplica("a", RoleEdge, res)
				md := model{}
				var hist []genOp
				for range 150 {
					rep.clock.ms += int64(r.IntN(200))
					now := rep.clock.ms
					g := randomOp(r, now)
					hist = append(hist, g)
					_, err := rep.do(t, g.key, g.mutator())
					merr := md.apply(g, now)
					if !errors.Is(err, merr) && !(err == nil && merr == nil) {
						t.Fatalf("seed %d round %d: %s: got error %v, model %v\nhistory %v", seed, round, g, err, merr, hist)
					}
					for _, k := range genKeys {
						if got, want := rep.view(k), md.render(k, now); got != want {
							t.Fatalf("seed %d round %d after %s at %d: %s = %s, model %s\nhistory %v\n%s",
								seed, round, g, now, k, got, want, hist, dump(rep.entry(k)))
						}
					}
				}
			}
		})
	}
}
