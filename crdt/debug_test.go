package crdt

import (
	"fmt"
	"strings"
)

// dump renders an entry's full internal state for test failure messages.
func dump(e *Entry) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "strategy %s\n", e.strategy)
	for _, h := range e.heads.heads {
		fmt.Fprintf(&sb, "  head %s\n", h)
	}
	for _, p := range e.pl {
		fmt.Fprintf(&sb, "  payload %s\n", p.parent)
		for _, t := range p.ttl {
			fmt.Fprintf(&sb, "    ttl %s %s at=%d\n", t.Dot, t.Stamp, t.At)
		}
		for _, c := range p.counter.c {
			fmt.Fprintf(&sb, "    contrib %s +%d -%d\n", c.Origin, c.P, c.N)
		}
		for _, m := range p.set.e {
			fmt.Fprintf(&sb, "    member %s %s\n", m.Member, m.Dot)
		}
		for _, it := range p.list.items {
			fmt.Fprintf(&sb, "    item %s#%d %s %s %q\n", it.Dot, it.Seq, it.Side, it.Stamp, it.Value)
		}
		for _, f := range p.hash.f {
			for _, h := range f.Reg.heads {
				fmt.Fprintf(&sb, "    field %s: %s\n", f.Name, h)
			}
			for _, c := range f.Ctr {
				fmt.Fprintf(&sb, "    field %s counter %s %v\n", f.Name, c.Head, c.C.c)
			}
		}
		for _, a := range p.agg.p {
			fmt.Fprintf(&sb, "    partial %s %+v\n", a.Origin, a.Partial)
		}
	}
	return sb.String()
}

func (r *replica) dumpAll() string {
	var sb strings.Builder
	for k, e := range r.entries {
		fmt.Fprintf(&sb, "%s:\n%s", k, dump(e))
	}
	fmt.Fprintf(&sb, "ctx %s\n", r.ctx)
	return sb.String()
}
