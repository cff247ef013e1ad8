package crdt

import "testing"

// TestContextIsNotTheAppliedSet pins down why a store must skip remote ops
// by the set of ops it applied, not by its causal Context.
//
// The hub creates an aggregate (h1), deletes it (h2: covers h1), and
// recreates it (h3: covers h2, the Deleted head). An edge receives h3 first:
// its Context now contains h2, although it never applied h2, whose removal
// of h1 it has not seen. If the edge skipped h2 because its Context contains
// the dot, h1 arriving later would resurrect the deleted aggregate there.
func TestContextIsNotTheAppliedSet(t *testing.T) {
	res := Resolver{Default: CrdtMerge}
	hub := newReplica("hub", RoleHub, res)
	key := "agg/t/60/0"
	h1 := hub.mustDo(t, key, aggAdd(Partial{Count: 1, Sum: 95, Min: 95, Max: 95}))
	h2 := hub.mustDo(t, key, del())
	h3 := hub.mustDo(t, key, aggAdd(Partial{Count: 1, Sum: 2, Min: 2, Max: 2}))

	edge := newReplica("e1", RoleEdge, res)
	edge.receive(t, h3)
	if !edge.ctx.Contains(h2.dot) || edge.applied.Contains(h2.dot) {
		t.Fatalf("after h3: ctx %s applied %s; want h2 in the context but not applied", edge.ctx, edge.applied)
	}

	// The wrong rule: skip h2 because the Context holds its dot.
	wrong := edge.clone()
	wrong.applied.Add(h2.dot) // what skipping by Context amounts to
	wrong.receive(t, h2)
	wrong.receive(t, h1)
	if wrong.state() == hub.state() {
		t.Fatal("skipping by Context converged; this test no longer shows the hazard")
	}
	if got := wrong.view(key); got != "aggregate count=1 sum=95 min=95 max=95 first=0 last=0" { // the deleted reading is back
		t.Fatalf("wrong rule: got %s", got)
	}

	// The right rule: h2 was not applied, so it is applied; h1 then stays
	// deleted.
	edge.receive(t, h2)
	edge.receive(t, h1)
	if edge.state() != hub.state() {
		t.Fatalf("edge diverged from hub:\n%s\n%s", edge.dumpAll(), hub.dumpAll())
	}
	if got := edge.view(key); got != "aggregate count=1 sum=2 min=2 max=2 first=0 last=0" {
		t.Fatalf("got %s", got)
	}
}
