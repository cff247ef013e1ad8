package crdt

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/scenarios and the golden encodings")

// TestScenarios runs the files under testdata/scenarios. Each file is a
// sequence of blocks:
//
//	command args...
//	----
//	expected output
//
// separated by blank lines; '#' lines are comments. Commands:
//
//	replicas strategy=S [rule=PREFIX=S ...] [maxskew=MS] NAME:ROLE ...
//	    start over with these replicas (ROLE edge or hub); every key uses
//	    strategy S except keys matching a rule (longest prefix).
//	NAME [@MS] COMMAND ARGS...
//	    NAME sets its wall clock to MS (Unix ms) and runs COMMAND locally:
//	    SET k v [PXAT t] [KEEPTTL], DEL k, PEXPIREAT k t, PERSIST k,
//	    INCR k, INCRBY k n, HSET k f v [f v ...], HDEL k f..., HINCRBY k f n,
//	    LPUSH k v..., RPUSH k v..., LTRIM k start stop, SADD k m...,
//	    SREM k m..., AGG k value (one reading at the op's time).
//	    Prints the op id (NAME + counter) and the key as NAME now sees it.
//	deliver OPS -> NAMES
//	    delivers ops (ids, or "all") to replicas (names, or "all"),
//	    like the store's ApplyRemote; prints conflicts detected.
//	sync
//	    full-state exchange between all replicas (FullSync).
//	show KEY
//	    the key as each replica sees it.
//	conflicts
//	    the conflicts each replica recorded since the last "conflicts".
//
// Run with -update to rewrite the expected output after a deliberate
// change, then review the diff.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenarioFile(t, f) })
	}
}

type scenarioBlock struct {
	line     int
	pre      []string // comments and blank lines before the command
	cmd      string
	expected string
}

func parseScenario(t *testing.T, path string) []scenarioBlock {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var blocks []scenarioBlock
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		b := scenarioBlock{line: i + 1, pre: pre, cmd: l}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command not followed by ----", path, i+1)
		}
		i += 2
		var out []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		b.expected = strings.Join(out, "\n")
		blocks = append(blocks, b)
		i-- // the blank line (if any) is a separator, re-read as pre
	}
	return blocks
}

func runScenarioFile(t *testing.T, path string) {
	blocks := parseScenario(t, path)
	w := &world{t: t}
	var rewritten strings.Builder
	for _, b := range blocks {
		got := strings.TrimRight(w.exec(b.cmd), "\n")
		for _, p := range b.pre {
			rewritten.WriteString(p + "\n")
		}
		fmt.Fprintf(&rewritten, "%s\n----\n%s\n", b.cmd, got)
		if !*update && got != b.expected {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, b.line, b.cmd, got, b.expected)
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// world is the state of one scenario.
type world struct {
	t     *testing.T
	reps  []*replica
	ops   []*op
	byID  map[string]*op
	notes map[*replica][]string // conflicts recorded, rendered
}

func (w *world) rep(name string) *replica {
	for _, r := range w.reps {
		if r.name == name {
			return r
		}
	}
	return nil
}

func (w *world) exec(line string) string {
	f := strings.Fields(line)
	switch f[0] {
	case "replicas":
		return w.setup(f[1:])
	case "deliver":
		return w.deliver(f[1:])
	case "sync":
		return w.sync()
	case "show":
		var sb strings.Builder
		for _, r := range w.reps {
			fmt.Fprintf(&sb, "%s: %s\n", r.name, r.view(f[1]))
		}
		return sb.String()
	case "conflicts":
		var sb strings.Builder
		for _, r := range w.reps {
			for _, n := range w.notes[r] {
				fmt.Fprintf(&sb, "%s: %s\n", r.name, n)
			}
			w.notes[r] = nil
		}
		if sb.Len() == 0 {
			return "none"
		}
		return sb.String()
	}
	r := w.rep(f[0])
	if r == nil {
		return "error: unknown command or replica " + f[0]
	}
	return w.local(r, f[1:])
}

func (w *world) setup(args []string) string {
	res := Resolver{}
	skew := time.Minute
	w.reps, w.ops, w.byID, w.notes = nil, nil, map[string]*op{}, map[*replica][]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "strategy":
			s, err := ParseStrategy(v)
			if err != nil {
				return "error: " + err.Error()
			}
			res.Default = s
		case "rule":
			i := strings.LastIndexByte(v, '=')
			p, sv := v[:max(i, 0)], v[i+1:]
			s, err := ParseStrategy(sv)
			if err != nil {
				return "error: " + err.Error()
			}
			res.Prefixes = append(res.Prefixes, PrefixRule{Prefix: p, Strategy: s})
		case "maxskew":
			ms, _ := strconv.ParseInt(v, 10, 64)
			skew = time.Duration(ms) * time.Millisecond
		default:
			name, role, _ := strings.Cut(a, ":")
			ro, err := ParseRole(role)
			if err != nil {
				return "error: " + err.Error()
			}
			r := newReplica(name, ro, res)
			r.hlc = NewHLC(r.clock.now, skew)
			w.reps = append(w.reps, r)
		}
	}
	for _, r := range w.reps {
		r.resolver = res
	}
	return fmt.Sprintf("%d replicas, %s", len(w.reps), describeResolver(res))
}

func describeResolver(res Resolver) string {
	s := "strategy " + res.Default.String()
	for _, p := range res.Prefixes {
		s += fmt.Sprintf(", %q* %s", p.Prefix, p.Strategy)
	}
	return s
}

func (w *world) local(r *replica, args []string) string {
	if len(args) > 0 && strings.HasPrefix(args[0], "@") {
		ms, err := strconv.ParseInt(args[0][1:], 10, 64)
		if err != nil {
			return "error: bad time " + args[0]
		}
		r.clock.ms = ms
		args = args[1:]
	}
	if len(args) < 2 {
		return "error: want COMMAND KEY ..."
	}
	f, err := scenarioMutator(args)
	if err != nil {
		return "error: " + err.Error()
	}
	key := args[1]
	o, err := r.do(w.t, key, f)
	switch {
	case err != nil:
		return fmt.Sprintf("%s: error: %v", r.name, err)
	case o == nil:
		return fmt.Sprintf("%s: no change; %s = %s", r.name, key, r.view(key))
	}
	w.ops = append(w.ops, o)
	w.byID[o.id] = o
	return fmt.Sprintf("%s at %s; %s = %s", o.id, o.stamp.TS, key, r.view(key))
}

func scenarioMutator(args []string) (func(*Entry, Mut) (*Delta, error), error) {
	cmd, a := strings.ToUpper(args[0]), args[2:]
	num := func(i int) int64 {
		if i >= len(a) {
			return 0
		}
		n, _ := strconv.ParseInt(a[i], 10, 64)
		return n
	}
	switch cmd {
	case "SET":
		if len(a) < 1 {
			return nil, fmt.Errorf("SET k v")
		}
		v, at, keep := a[0], int64(0), false
		for i := 1; i < len(a); i++ {
			switch strings.ToUpper(a[i]) {
			case "PXAT":
				at = num(i + 1)
				i++
			case "KEEPTTL":
				keep = true
			}
		}
		return func(e *Entry, m Mut) (*Delta, error) { return e.Set(m, []byte(v), keep, at) }, nil
	case "DEL":
		return del(), nil
	case "PEXPIREAT":
		return expire(num(0)), nil
	case "PERSIST":
		return expire(0), nil
	case "INCR":
		return incr(1), nil
	case "INCRBY":
		return incr(num(0)), nil
	case "HSET":
		var fvs []FieldValue
		for i := 0; i+1 < len(a); i += 2 {
			fvs = append(fvs, FieldValue{a[i], []byte(a[i+1])})
		}
		return func(e *Entry, m Mut) (*Delta, error) { return e.HSetMulti(m, fvs) }, nil
	case "HDEL":
		return hdel(a...), nil
	case "HINCRBY":
		if len(a) < 2 {
			return nil, fmt.Errorf("HINCRBY k f n")
		}
		return hincr(a[0], num(1)), nil
	case "LPUSH":
		return lpush(a...), nil
	case "RPUSH":
		return rpush(a...), nil
	case "LTRIM":
		return ltrim(num(0), num(1)), nil
	case "SADD":
		return sadd(a...), nil
	case "SREM":
		return srem(a...), nil
	case "AGG":
		v, _ := strconv.ParseFloat(a[0], 64)
		return func(e *Entry, m Mut) (*Delta, error) {
			var p Partial
			if e.Kind(m.Now) == KindAggregate {
				p, _, _ = e.OriginPartial(m.Dot.Node)
			}
			p = p.Combine(Partial{Count: 1, Sum: v, Min: v, Max: v, FirstTS: m.Now, LastTS: m.Now})
			return e.AggregateAdd(m, p)
		}, nil
	}
	return nil, fmt.Errorf("unknown command %s", cmd)
}

func (w *world) deliver(args []string) string {
	i := slices.Index(args, "->")
	if i < 0 {
		return "error: deliver OPS -> REPLICAS"
	}
	var ops []*op
	for _, id := range args[:i] {
		if id == "all" {
			ops = append(ops, w.ops...)
			continue
		}
		o, ok := w.byID[id]
		if !ok {
			return "error: unknown op " + id
		}
		ops = append(ops, o)
	}
	var to []*replica
	for _, n := range args[i+1:] {
		if n == "all" {
			to = w.reps
			continue
		}
		r := w.rep(n)
		if r == nil {
			return "error: unknown replica " + n
		}
		to = append(to, r)
	}
	var sb strings.Builder
	for _, r := range to {
		for _, o := range ops {
			if o.dot.Node == r.name {
				continue
			}
			before, skew := len(r.conflicts), r.skewErrs
			if !r.receive(w.t, o) {
				continue
			}
			fmt.Fprintf(&sb, "%s -> %s", o.id, r.name)
			if r.skewErrs > skew {
				sb.WriteString(" (clock too far ahead: not adopted)")
			}
			sb.WriteString("\n")
			w.note(r, r.conflicts[before:], &sb)
		}
	}
	if sb.Len() == 0 {
		return "nothing to deliver"
	}
	return sb.String()
}

func (w *world) sync() string {
	before := make([]int, len(w.reps))
	for i, r := range w.reps {
		before[i] = len(r.conflicts)
	}
	c := &cluster{reps: w.reps}
	c.exchange()
	var sb strings.Builder
	for i, r := range w.reps {
		w.note(r, r.conflicts[before[i]:], &sb)
	}
	state := w.reps[0].state()
	for _, r := range w.reps[1:] {
		if r.state() != state {
			sb.WriteString("replicas DIVERGED\n")
			return sb.String()
		}
	}
	sb.WriteString("all replicas hold the same state\n")
	return sb.String()
}

// note renders new conflicts, prints them and keeps them for "conflicts".
func (w *world) note(r *replica, cs []Conflict, sb *strings.Builder) {
	for _, c := range cs {
		n := renderConflict(c)
		fmt.Fprintf(sb, "  %s: conflict %s\n", r.name, n)
		w.notes[r] = append(w.notes[r], n)
	}
}

func renderConflict(c Conflict) string {
	slot := c.Key
	if c.HashField {
		slot += "." + c.Field
	}
	side := func(h Head) string {
		v := h.Kind.String() + " " + DisplayValue(h.Kind, h.Value)
		if h.carriesElements() {
			v = "(merged " + h.Kind.String() + ")"
		}
		return fmt.Sprintf("%s%d %s at %s", h.Dot.Node, h.Dot.Counter, v, h.Stamp.TS)
	}
	return fmt.Sprintf("%s [%s]: %s beat %s", slot, c.Strategy, side(c.Winner), side(c.Loser))
}
