package crdt

import (
	"flag"
	"math/rand/v2"
	"testing"
)

// The laws of a join-semilattice, checked on random replica states (each
// the result of random local ops and random partial delivery), for every
// strategy and for a mixed resolver. Failures print the seed.

func lawResolvers() map[string]Resolver {
	m := map[string]Resolver{}
	for _, s := range strategies() {
		m[s.String()] = Resolver{Default: s}
	}
	m["mixed"] = Resolver{Default: LastWriteWins, Prefixes: []PrefixRule{
		{"c", CrdtMerge}, {"h", CrdtMerge}, {"t", CloudWins}, {"l", EdgeWins},
	}}
	return m
}

var soakRounds = flag.Int("crdt.rounds", 0, "random histories per property test (0: 10 with -short, else 30)")

var seedFlag = flag.Uint64("crdt.seed", 0, "seed of the random property tests (0: a random one, logged)")

func lawRounds(t *testing.T) int {
	switch {
	case *soakRounds > 0:
		return *soakRounds
	case testing.Short():
		return 10
	}
	return 30
}

// randomStates returns three replicas with random, partly shared histories.
func randomStates(t *testing.T, r *rand.Rand, res Resolver) (a, b, c *replica) {
	cl := newCluster(res, "h", "a", "b")
	cl.run(t, r, 40+r.IntN(80))
	return cl.reps[0], cl.reps[1], cl.reps[2]
}

func join(x, y *replica) *replica {
	z := x.clone()
	z.mergeFrom(y)
	return z
}

func TestJoinCommutative(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				a, b, _ := randomStates(t, r, res)
				if ab, ba := join(a, b).state(), join(b, a).state(); ab != ba {
					t.Fatalf("seed %d round %d: a⊔b != b⊔a\n%s\n%s", seed, round, ab, ba)
				}
			}
		})
	}
}

func TestJoinAssociative(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				a, b, c := randomStates(t, r, res)
				if l, rr := join(join(a, b), c).state(), join(a, join(b, c)).state(); l != rr {
					t.Fatalf("seed %d round %d: (a⊔b)⊔c != a⊔(b⊔c)\n%s\n%s", seed, round, l, rr)
				}
			}
		})
	}
}

func TestJoinIdempotent(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				a, b, _ := randomStates(t, r, res)
				if aa := join(a, a).state(); aa != a.state() {
					t.Fatalf("seed %d round %d: a⊔a != a\n%s\n%s", seed, round, aa, a.state())
				}
				ab := join(a, b)
				if abb := join(ab, b).state(); abb != ab.state() {
					t.Fatalf("seed %d round %d: (a⊔b)⊔b != a⊔b", seed, round)
				}
			}
		})
	}
}

// TestDeltaEqualsMutation: for a replica x and any replica y that has seen
// at least what x has (y = x ⊔ u), applying x's delta to y gives the same
// state as merging x's mutated state into y. This is what lets a replica
// ship the delta instead of its state.
func TestDeltaEqualsMutation(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				x, u, _ := randomStates(t, r, res)
				for range 5 {
					y := join(x, u)
					g := randomOp(r, x.clock.ms)
					o, err := x.do(t, g.key, g.mutator())
					if err != nil || o == nil {
						continue
					}
					viaDelta := y.clone()
					viaDelta.receive(t, o)
					viaState := join(y, x)
					if a, b := viaDelta.state(), viaState.state(); a != b {
						t.Fatalf("seed %d round %d: %s: delta != state\nvia delta:\n%s\nvia state:\n%s", seed, round, g, a, b)
					}
				}
			}
		})
	}
}

// TestConvergence: N replicas, random ops under each strategy, random
// delivery with duplicates, reordering and loss, then a full-state
// exchange: every replica holds the same state and sees the same values.
func TestConvergence(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				cl := newCluster(res, "hub", "e1", "e2", "e3")
				cl.run(t, r, 200)
				cl.exchange()
				want := cl.reps[0].state()
				for _, rep := range cl.reps[1:] {
					if got := rep.state(); got != want {
						t.Fatalf("seed %d round %d: %s diverged:\n%s\nvs hub:\n%s", seed, round, rep.name, got, want)
					}
					for _, k := range genKeys {
						rep.clock.ms = cl.reps[0].clock.ms
						if rep.view(k) != cl.reps[0].view(k) {
							t.Fatalf("seed %d round %d: %s sees %s = %s, hub %s", seed, round, rep.name, k, rep.view(k), cl.reps[0].view(k))
						}
					}
				}
			}
		})
	}
}

// TestConvergenceByDeltas: with every op delivered (in random orders, with
// duplicates) and no state exchange, replicas converge too.
func TestConvergenceByDeltas(t *testing.T) {
	for name, res := range lawResolvers() {
		t.Run(name, func(t *testing.T) {
			r, seed := newRand(t)
			for round := range lawRounds(t) {
				cl := newCluster(res, "hub", "e1", "e2")
				cl.run(t, r, 150)
				cl.deliverAll(t, r)
				want := cl.reps[0].state()
				for _, rep := range cl.reps[1:] {
					if got := rep.state(); got != want {
						t.Fatalf("seed %d round %d: %s diverged:\n%s\nvs hub:\n%s", seed, round, rep.name, got, want)
					}
				}
			}
		})
	}
}

// TestCountersExact: concurrent increments under CrdtMerge are never lost
// or double counted, whatever the delivery (duplicates, reordering, loss
// followed by a full-state exchange).
//
// In odd rounds the counters start as strings ("100") known to every
// replica, so several replicas convert the same string into a counter
// concurrently: the start value must count once. Those rounds deliver ops
// in causal order (each replica reads the others' ops in the order they
// were made, as the hub relays them), with a full-state exchange at the
// end: a replica that saw an increment of a converted counter before the
// conversion itself would see the string and the counter as concurrent
// writes, and the protocol never delivers that.
func TestCountersExact(t *testing.T) {
	r, seed := newRand(t)
	res := Resolver{Default: CrdtMerge}
	for round := range lawRounds(t) {
		cl := newCluster(res, "hub", "e1", "e2", "e3")
		var sum, hsum int64
		causal := round%2 == 1
		cursor := map[*replica]int{}
		if causal {
			start := cl.reps[r.IntN(len(cl.reps))]
			start.mustDo(t, "ctr", set("100"))
			start.mustDo(t, "hctr", hset("f", "100"))
			cl.exchange()
			sum, hsum = 100, 100
		}
		for range 300 {
			rep := cl.reps[r.IntN(len(cl.reps))]
			switch r.IntN(4) {
			case 0:
				n := int64(r.IntN(21) - 10)
				if o := rep.mustDo(t, "ctr", incr(n)); o != nil {
					cl.ops = append(cl.ops, o)
				}
				sum += n
			case 1:
				n := int64(r.IntN(21) - 10)
				if o := rep.mustDo(t, "hctr", hincr("f", n)); o != nil {
					cl.ops = append(cl.ops, o)
				}
				hsum += n
			default:
				switch {
				case causal && cursor[rep] < len(cl.ops):
					rep.receive(t, cl.ops[cursor[rep]])
					cursor[rep]++
				case !causal && len(cl.ops) > 0:
					rep.receive(t, cl.ops[r.IntN(len(cl.ops))])
				}
			}
		}
		cl.exchange()
		for _, rep := range cl.reps {
			if v, err := rep.entries["ctr"].Int(); err != nil || v != sum {
				t.Fatalf("seed %d round %d: %s counter = %d (%v), want %d\n%s", seed, round, rep.name, v, err, sum, rep.dumpAll())
			}
			if v, ok, err := rep.entries["hctr"].HGet("f"); err != nil || !ok || string(v) != formatIntS(hsum) {
				t.Fatalf("seed %d round %d: %s hash counter = %s (%v), want %d", seed, round, rep.name, v, err, hsum)
			}
		}
	}
}

func formatIntS(v int64) string { return string(formatInt(v)) }
