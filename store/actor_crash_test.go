package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrite-edge/ferrite/crdt"
)

// TestRetireActorSurvivesCrash: the retire step and the writes
// after it survive a crash (no Close): the reopened directory keeps the
// new actor, the retired one, the retired actor's dots in its context
// (persisted only by the retire batch and by remote applies), remote dots
// of the retired actor applied after the retire, and numbers its next
// write after its last durable one.
func TestRetireActorSurvivesCrash(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		writes        int // local writes after the retire
		remoteRetired bool
	}{
		{"no writes", 0, false},
		{"writes", 3, false},
		{"writes and remote dots of the retired actor", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			o := crashOptions("/data/edge-1", 0)
			o.FS = fs
			s, err := Open(ctx, o)
			check(t, err)
			for i := range 5 {
				check(t, s.Set(ctx, fmt.Sprintf("k%d", i), []byte("v")))
			}
			old := s.Actor()
			// A peer's op of the old actor beyond the backup (what the
			// original wrote after it): built on a copy of the directory.
			check(t, s.Close())

			var remote []Op
			if tc.remoteRetired {
				o2 := o
				o2.FS = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
				orig, err := Open(ctx, o2)
				check(t, err)
				check(t, orig.Set(ctx, "later", []byte("x")))
				check(t, orig.SyncWAL(ctx))
				ops, _, err := orig.OpsSince(ctx, OpsQuery{After: 5})
				check(t, err)
				remote = ops
				check(t, orig.Close())
			}

			o.NewActor = true
			s, err = Open(ctx, o)
			check(t, err)
			actor := s.Actor()
			for i := range tc.writes {
				check(t, s.Set(ctx, fmt.Sprintf("n%d", i), []byte("w")))
			}
			if remote != nil {
				_, err := s.ApplyRemote(ctx, remote)
				check(t, err)
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(2, 1))})
			check(t, s.Close())

			o.FS, o.NewActor = crashed, false
			r, err := Open(ctx, o)
			check(t, err)
			defer r.Close()
			if own := r.OwnDot(crdt.Dot{Node: old, Counter: 5}); r.Actor() != actor || !own || r.OwnDot(crdt.Dot{Node: old, Counter: 6}) {
				t.Fatalf("reopened as %q (want %q), own(%s:5)=%v", r.Actor(), actor, old, own)
			}
			c := r.Context()
			wantOld := uint64(5)
			if remote != nil {
				wantOld = 6
			}
			for i := uint64(1); i <= wantOld; i++ {
				if !c.Contains(crdt.Dot{Node: old, Counter: i}) {
					t.Errorf("context lost %s:%d", old, i)
				}
			}
			check(t, r.Set(ctx, "after", []byte("z")))
			ops := durableOps(t, r)
			if last := ops[len(ops)-1].Dot; last != (crdt.Dot{Node: actor, Counter: uint64(tc.writes) + 1}) {
				t.Fatalf("next write's dot %v", last)
			}
		})
	}
}
