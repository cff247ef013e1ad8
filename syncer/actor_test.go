package syncer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

// TestLostDataDirectory: edge-1's disk is replaced while it is offline,
// and its new, empty data directory (same node id) takes writes before it
// reaches the hub again. Its new data directory writes under a new actor,
// so those writes reach the hub and edge-2 (named by the node id alone,
// they would reuse dots the hub holds and be dropped there for good), and
// edge-1 gets back what it had written before; every replica ends equal.
func TestLostDataDirectory(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	hub.startHub(b.url)
	e1.startEdge(b.url)
	e2.startEdge(b.url)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "k", []byte("old")))
	check(t, e1.st.Set(ctx, "keep", []byte("v")))
	_, err := e1.st.IncrBy(ctx, "n", 1)
	check(t, err)
	_, err = e1.st.SAdd(ctx, "s", "a")
	check(t, err)
	waitConverged(t, 20*time.Second, hub, e1, e2)

	old := e1.st.Actor()
	e1.close()
	e1.dir = t.TempDir() // the new disk
	e1.open()
	if e1.st.Actor() == old {
		t.Fatalf("the new data directory writes as %q again", old)
	}
	check(t, e1.st.Set(ctx, "k", []byte("new")))
	check(t, e1.st.Set(ctx, "fresh", []byte("x")))
	_, err = e1.st.IncrBy(ctx, "n", 1)
	check(t, err)
	_, err = e1.st.SAdd(ctx, "s", "b")
	check(t, err)
	e1.startEdge(b.url)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		for k, want := range map[string]string{"k": "new", "fresh": "x", "keep": "v", "n": "2"} {
			if got := mustGet(t, r.st, k); got != want {
				t.Errorf("%s: %s = %q, want %q", r.name, k, got, want)
			}
		}
		m, err := r.st.SMembers(ctx, "s")
		check(t, err)
		slices.Sort(m)
		if !slices.Equal(m, []string{"a", "b"}) {
			t.Errorf("%s: s = %q", r.name, m)
		}
	}
	// Later writes of the new directory flow as deltas, under its actor.
	check(t, e1.st.Set(ctx, "after", []byte("1")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		v, err := e2.st.Get(ctx, "after")
		return err == nil && string(v) == "1", fmt.Sprintf("edge-2 after=%q %v", v, err)
	})
}
