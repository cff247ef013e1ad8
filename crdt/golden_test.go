package crdt

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
)

const goldenPath = "testdata/golden/encodings.txt"

// goldenObject is one encoded value with a fixed history, so that any change
// of the binary format shows up as a diff of testdata/golden/encodings.txt.
type goldenObject struct {
	name   string
	enc    []byte
	decode func([]byte) ([]byte, error) // decode then re-encode
}

func reencode[T any](dec func([]byte) (T, error), enc func(T) []byte) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		v, err := dec(b)
		if err != nil {
			return nil, err
		}
		return enc(v), nil
	}
}

var (
	reEntry   = reencode(DecodeEntry, func(e *Entry) []byte { return e.AppendBinary(nil) })
	reDelta   = reencode(DecodeDelta, func(d *Delta) []byte { return d.AppendBinary(nil) })
	reCtx     = reencode(DecodeContext, func(c *Context) []byte { return c.AppendBinary(nil) })
	reVV      = reencode(DecodeVersionVector, func(v VersionVector) []byte { return v.AppendBinary(nil) })
	reConfl   = reencode(DecodeConflict, func(c Conflict) []byte { return c.AppendBinary(nil) })
	reTS      = reencode(DecodeTimestamp, func(t Timestamp) []byte { return t.AppendBinary(nil) })
	reReg     = reencode(DecodeLWWRegister, func(x *LWWRegister) []byte { return x.AppendBinary(nil) })
	reCounter = reencode(DecodePNCounter, func(x *PNCounter) []byte { return x.AppendBinary(nil) })
	reSet     = reencode(DecodeORSet, func(x *ORSet) []byte { return x.AppendBinary(nil) })
	reList    = reencode(DecodeList, func(x *List) []byte { return x.AppendBinary(nil) })
	reMap     = reencode(DecodeORMap, func(x *ORMap) []byte { return x.AppendBinary(nil) })
	reAgg     = reencode(DecodeAggregate, func(x *Aggregate) []byte { return x.AppendBinary(nil) })
)

// goldenObjects builds every golden value from fixed operations.
func goldenObjects(t testing.TB) []goldenObject {
	var objs []goldenObject
	add := func(name string, enc []byte, dec func([]byte) ([]byte, error)) {
		objs = append(objs, goldenObject{name, enc, dec})
	}
	add("timestamp", NewTimestamp(1_708_300_000_123, 2).AppendBinary(nil), reTS)
	add("versionvector", VersionVector{"edge-001": 42, "hub": 7}.AppendBinary(nil), reVV)
	ctx := NewContext()
	ctx.AddDots([]Dot{{"edge-001", 1}, {"edge-001", 2}, {"edge-001", 5}, {"hub", 1}, {"hub", 9}, {"hub", 10}})
	add("context", ctx.AppendBinary(nil), reCtx)

	at := func(r *replica, ms int64) *replica { r.clock.ms = ms; return r }
	for _, s := range []Strategy{CrdtMerge, LastWriteWins} {
		a := newReplica("edge-001", RoleEdge, Resolver{Default: s})
		h := newReplica("hub", RoleHub, Resolver{Default: s})
		do := func(r *replica, key string, f func(*Entry, Mut) (*Delta, error)) *op {
			o := r.mustDo(t, key, f)
			return o
		}
		p := s.String() + "/"
		do(at(a, 1_708_300_000_000), "sensor:temp:001", func(e *Entry, m Mut) (*Delta, error) {
			return e.Set(m, []byte("23.5"), false, 1_708_386_400_000)
		})
		do(at(a, 1_708_300_001_000), "visits", incr(5))
		ov := do(at(h, 1_708_300_001_001), "visits", incr(2))
		a.receive(t, ov)
		cd := do(at(a, 1_708_300_002_000), "visits", incr(-1))
		do(a, "tags", sadd("red", "blue"))
		sr := do(a, "tags", srem("red"))
		do(a, "log", rpush(`{"temp":23.5}`, `{"temp":23.6}`))
		do(a, "log", lpush("urgent"))
		do(a, "log", ltrim(0, 1))
		do(a, "store:42", hset("city", "Lyon"))
		do(a, "store:42", hincr("daily_revenue", 4999))
		do(a, "gone", set("x"))
		do(a, "gone", del())
		do(a, "agg/temp-001/60/1708300020", aggAdd(Partial{Count: 3, Sum: 67.5, Min: 22, Max: 23, FirstTS: 1_708_300_020_100, LastTS: 1_708_300_079_900}))
		// Concurrent heads: the hub writes the same key without seeing the edge.
		cw := do(at(h, 1_708_300_000_500), "sensor:temp:001", set("24.0"))
		a.receive(t, cw)
		for _, k := range []string{"sensor:temp:001", "visits", "tags", "log", "store:42", "gone", "agg/temp-001/60/1708300020"} {
			add(p+"entry/"+k, a.entries[k].AppendBinary(nil), reEntry)
		}
		add(p+"delta/set", mustDecodeDelta(t, cw.delta).AppendBinary(nil), reDelta)
		add(p+"delta/incr", mustDecodeDelta(t, cd.delta).AppendBinary(nil), reDelta)
		add(p+"delta/srem", mustDecodeDelta(t, sr.delta).AppendBinary(nil), reDelta)
		if s == CrdtMerge {
			add("context/replica", a.ctx.AppendBinary(nil), reCtx)
			if len(a.conflicts) == 0 {
				t.Fatal("golden history made no conflict")
			}
			add("conflict", a.conflicts[0].AppendBinary(nil), reConfl)
			e := a.entries["store:42"]
			add("block/register", e.heads.AppendBinary(nil), reReg)
			add("block/ormap", e.pl[0].hash.AppendBinary(nil), reMap)
			add("block/pncounter", a.entries["visits"].pl[0].counter.AppendBinary(nil), reCounter)
			add("block/orset", a.entries["tags"].pl[0].set.AppendBinary(nil), reSet)
			add("block/list", a.entries["log"].pl[0].list.AppendBinary(nil), reList)
			add("block/aggregate", a.entries["agg/temp-001/60/1708300020"].pl[0].agg.AppendBinary(nil), reAgg)
		}
	}
	return objs
}

func mustDecodeDelta(t testing.TB, b []byte) *Delta {
	d, err := DecodeDelta(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGoldenEncodings(t *testing.T) {
	objs := goldenObjects(t)
	var sb strings.Builder
	sb.WriteString("# Golden encodings (format version 1). Regenerate with: go test ./crdt -run TestGoldenEncodings -update\n")
	sb.WriteString("# A diff here is a change of the replicated or stored format: it needs a new format version.\n")
	for _, o := range objs {
		fmt.Fprintf(&sb, "%s %s\n", o.name, hex.EncodeToString(o.enc))
	}
	if *update {
		if err := os.MkdirAll("testdata/golden", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, l := range strings.Split(string(data), "\n") {
		name, h, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(l, "#") {
			continue
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[name] = b
	}
	for _, o := range objs {
		w, ok := want[o.name]
		if !ok {
			t.Errorf("%s: missing from %s (run with -update)", o.name, goldenPath)
			continue
		}
		if !bytes.Equal(o.enc, w) {
			t.Errorf("%s: encoding changed:\n got  %x\n want %x", o.name, o.enc, w)
		}
		back, err := o.decode(w)
		if err != nil || !bytes.Equal(back, w) {
			t.Errorf("%s: golden does not decode and re-encode identically: %v", o.name, err)
		}
	}
	if len(want) != len(objs) {
		t.Errorf("%s has %d entries, built %d", goldenPath, len(want), len(objs))
	}
}
