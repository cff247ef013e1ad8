package store

import (
	"context"
	"errors"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

func TestActorPerDataDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAt(t, dir)
	actor := s.Actor()
	if !regexp.MustCompile(`^edge-1\$[a-z2-7]{8}$`).MatchString(actor) || ActorNode(actor) != "edge-1" {
		t.Fatalf("actor %q", actor)
	}
	check(t, s.Set(ctx, "k", []byte("v")))
	ops := durableOps(t, s)
	if ops[0].Dot.Node != actor || ops[0].Stamp.Node != actor {
		t.Fatalf("op %+v not named by the actor", ops[0])
	}
	if got := s.Stats(); got.NodeID != "edge-1" || got.Actor != actor {
		t.Fatalf("stats %+v", got)
	}
	check(t, s.Close())

	s = openAt(t, dir)
	if s.Actor() != actor {
		t.Fatalf("reopened as %q, created as %q", s.Actor(), actor)
	}
	check(t, s.Close())
	if _, err := Open(ctx, withActor(testOptions(dir), "edge-1$aaaaaaaa")); !errors.Is(err, ErrNodeMismatch) {
		t.Fatalf("another actor pinned: %v", err)
	}
	if other := openTest(t); other.Actor() == actor {
		t.Fatalf("two data directories drew the same actor %q", actor)
	}
	pinned := openTest(t, func(o *Options) { o.Actor = "edge-1$pinnedxx" })
	if pinned.Actor() != "edge-1$pinnedxx" {
		t.Fatalf("pinned actor %q", pinned.Actor())
	}
}

// A data directory created before actors existed has none recorded: its
// writes keep the node id, so its dots go on from where they were.
func TestActorOfOlderDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAt(t, dir, func(o *Options) { o.Actor = o.NodeID })
	check(t, s.Set(ctx, "k", []byte("v")))
	check(t, s.db.Delete(metaKey(metaActor), nil)) // as an older binary left it
	check(t, s.Close())

	s = openAt(t, dir)
	if s.Actor() != "edge-1" {
		t.Fatalf("actor %q, want the node id", s.Actor())
	}
	check(t, s.Set(ctx, "k", []byte("w")))
	ops := durableOps(t, s)
	if last := ops[len(ops)-1]; last.Dot != (crdt.Dot{Node: "edge-1", Counter: 2}) {
		t.Fatalf("last op %+v", last)
	}
}

func TestActorOptions(t *testing.T) {
	for _, o := range []Options{
		{NodeID: "gw$1"},
		{NodeID: "edge-1", Actor: "edge-2$abcdefgh"},
		{NodeID: "edge-1", Actor: "edge-12"},
	} {
		o.Dir = t.TempDir()
		o.EnsureDefaults()
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// The case actors exist for: a node loses its data directory and writes
// under its old node id before it reaches its hub again. Named by the node
// id alone, those writes would reuse dots the hub already holds with other
// content: the hub would skip them as duplicates, and the replicas would
// differ for good.
func TestLostDataDirectoryKeepsNewWrites(t *testing.T) {
	ctx := context.Background()
	for _, strat := range []crdt.Strategy{crdt.LastWriteWins, crdt.CrdtMerge} {
		t.Run(strat.String(), func(t *testing.T) {
			ca, cb := newTestClock(), newTestClock()
			p := newPair(t, strat, ca, cb)
			check(t, p.a.Set(ctx, "k", []byte("old")))
			must[int64](t)(p.a.IncrBy(ctx, "n", 1))
			must[int](t)(p.a.SAdd(ctx, "s", "a"))
			p.exchange(t)

			// The edge's disk is replaced: same node id, empty directory.
			ca.advance(time.Minute)
			cb.advance(time.Minute)
			a2 := openTest(t, withClock(ca), func(o *Options) { o.Resolver = p.a.opts.Resolver })
			if a2.Actor() == p.a.Actor() {
				t.Fatal("the new directory reuses the old actor")
			}
			check(t, a2.Set(ctx, "k", []byte("new")))
			check(t, a2.Set(ctx, "fresh", []byte("x")))
			must[int64](t)(a2.IncrBy(ctx, "n", 1))
			must[int](t)(a2.SAdd(ctx, "s", "b"))

			p2 := &pair{a: a2, b: p.b}
			p2.exchange(t)
			assertConverged(t, a2, p.b)
			// Under last-writer-wins the new directory's counter and set,
			// created without seeing the old ones, replace them (later
			// stamps); merged, both directories' increments and members add.
			wantN, wantS := int64(2), []string{"a", "b"}
			if strat == crdt.LastWriteWins {
				wantN, wantS = 1, []string{"b"}
			}
			for _, s := range []*Store{a2, p.b} {
				if v := must[[]byte](t)(s.Get(ctx, "k")); string(v) != "new" {
					t.Errorf("%s: k = %q", s.Actor(), v)
				}
				if v := must[[]byte](t)(s.Get(ctx, "fresh")); string(v) != "x" {
					t.Errorf("%s: fresh = %q", s.Actor(), v)
				}
				if n := must[int64](t)(s.IncrBy(ctx, "n", 0)); n != wantN {
					t.Errorf("%s: n = %d", s.Actor(), n)
				}
				m := must[[]string](t)(s.SMembers(ctx, "s"))
				slices.Sort(m)
				if !slices.Equal(m, wantS) {
					t.Errorf("%s: s = %q", s.Actor(), m)
				}
			}
		})
	}
}

func withActor(o Options, actor string) Options {
	o.Actor = actor
	return o
}

// durableOps returns every op of s, after an fsync.
func durableOps(t *testing.T, s *Store) []Op {
	t.Helper()
	ctx := context.Background()
	check(t, s.SyncWAL(ctx))
	ops, _, err := s.OpsSince(ctx, OpsQuery{})
	check(t, err)
	if len(ops) == 0 {
		t.Fatal("no ops")
	}
	return ops
}

// openAt opens the store in dir (closed at the end of the test if still
// open); mods adjust the options.
func openAt(t *testing.T, dir string, mods ...func(*Options)) *Store {
	t.Helper()
	o := testOptions(dir)
	for _, m := range mods {
		m(&o)
	}
	return openWith(t, o)
}

// TestRestoredBackupNewActor: a data directory restored from a backup
// would number its next writes with dots its original wrote after the
// backup, which the hub already holds: they would be dropped there. Opened
// with NewActor it writes under a new actor: its new writes reach the hub,
// the original's later writes come back to it, and an op the backup held
// but never sent still reaches the hub.
func TestRestoredBackupNewActor(t *testing.T) {
	ctx := context.Background()
	ca, cb := newTestClock(), newTestClock()
	p := newPair(t, crdt.LastWriteWins, ca, cb)
	dir := p.a.opts.Dir
	check(t, p.a.Set(ctx, "k", []byte("1")))
	p.exchange(t)
	check(t, p.a.Set(ctx, "pending", []byte("p"))) // in the backup, never sent by the original
	check(t, p.a.Close())
	backup := t.TempDir()
	check(t, os.CopyFS(backup, os.DirFS(dir)))

	ca.advance(time.Minute)
	orig := openAt(t, dir, withClock(ca), func(o *Options) { o.Resolver = p.a.opts.Resolver })
	check(t, orig.Set(ctx, "k", []byte("2")))
	check(t, orig.Set(ctx, "later", []byte("x")))
	seen := p.aSeen + 1 // past "pending": the original never sent it
	ship(t, orig, p.b, &seen)
	old := orig.Actor()
	check(t, orig.Close()) // its disk dies

	ca.advance(time.Minute)
	restored := openAt(t, backup, withClock(ca), func(o *Options) { o.Resolver, o.NewActor = p.a.opts.Resolver, true })
	// Its own dots: the retired actor's up to the backup's counter (2), the
	// new actor's; not the original's later ones (3, 4), nor a peer's.
	own := func(node string, c uint64) bool { return restored.OwnDot(crdt.Dot{Node: node, Counter: c}) }
	if restored.Actor() == old || !own(old, 2) || own(old, 3) || !own(restored.Actor(), 1) || own("hub", 1) {
		t.Fatalf("actor %q (was %q): own(old:2)=%v own(old:3)=%v", restored.Actor(), old, own(old, 2), own(old, 3))
	}
	check(t, restored.Set(ctx, "k", []byte("3")))
	check(t, restored.Set(ctx, "restored", []byte("y")))
	p2 := &pair{a: restored, b: p.b}
	p2.exchange(t)
	assertConverged(t, restored, p.b)
	for k, want := range map[string]string{"k": "3", "later": "x", "restored": "y", "pending": "p"} {
		if v := must[[]byte](t)(p.b.Get(ctx, k)); string(v) != want {
			t.Errorf("hub: %s = %q, want %q", k, v, want)
		}
	}

	// Reopened, the directory keeps its new actor and its retired one.
	actor := restored.Actor()
	check(t, restored.Close())
	again := openAt(t, backup, func(o *Options) { o.Resolver = p.a.opts.Resolver })
	if again.Actor() != actor || !again.OwnDot(crdt.Dot{Node: old, Counter: 2}) || again.OwnDot(crdt.Dot{Node: old, Counter: 3}) {
		t.Fatalf("reopened as %q, retired actor %q not kept with its counter", again.Actor(), old)
	}
	check(t, again.Set(ctx, "after", []byte("z")))
	if ops := durableOps(t, again); ops[len(ops)-1].Dot != (crdt.Dot{Node: actor, Counter: 3}) {
		t.Fatalf("last op %+v", ops[len(ops)-1])
	}
}
