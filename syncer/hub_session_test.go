package syncer

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/ferrite-edge/ferrite/crdt"
)

// TestIdleSessionStillReceives: the hub ends a session that has been quiet
// for IdleTimeout, but an edge that is still connected and only reads
// (it writes nothing, so it sends nothing) must still get the other
// edges' writes.
func TestIdleSessionStillReceives(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, reader, writer := hubAndEdges(t, res)
	hub.startHub(b.url, func(o *HubOptions) { o.IdleTimeout = time.Second })
	reader.startEdge(b.url)
	writer.startEdge(b.url)
	ctx := context.Background()
	check(t, writer.st.Set(ctx, "before", []byte("1")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		_, err := reader.st.Get(ctx, "before")
		return err == nil, fmt.Sprintf("reader: %v", err)
	})
	// Both edges stay connected and quiet past the idle timeout and the
	// session's once-a-second check of it. The quiet period is the
	// scenario (nothing happens that could be polled for), so it is slept.
	time.Sleep(3 * time.Second)
	check(t, writer.st.Set(ctx, "after", []byte("2")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		_, err := reader.st.Get(ctx, "after")
		return err == nil, fmt.Sprintf("reader: %v (status %+v)", err, reader.edge.Status())
	})
}

// TestIdleEndsOnlyGoneEdges: the idle timeout ends the session of an edge
// whose status is offline (or unknown), never one still online.
func TestIdleEndsOnlyGoneEdges(t *testing.T) {
	h, err := NewHub(HubOptions{Store: newReplica(t, "hub", crdt.RoleHub, crdt.Resolver{}).st,
		BrokerURL: "mqtt://127.0.0.1:1", IdleTimeout: time.Minute})
	check(t, err)
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		name   string
		online map[string]bool
		after  time.Duration
		ends   bool
	}{
		{"quiet less than the timeout", nil, 30 * time.Second, false},
		{"status unknown", nil, time.Minute, true},
		{"offline", map[string]bool{"e": false}, time.Minute, true},
		{"online", map[string]bool{"e": true}, time.Hour, false},
	} {
		s := &hubSession{h: h, node: "e", core: newHubEdge(&h.cfg, "e", edgeRecord{}),
			inbox: make(chan sessionMsg, 1), lastActive: t0}
		h.sessions = map[string]*hubSession{"e": s}
		h.online = c.online
		if got := s.idle(t0.Add(c.after)); got != c.ends {
			t.Errorf("%s: idle = %v, want %v", c.name, got, c.ends)
		}
		if _, kept := h.sessions["e"]; kept == c.ends {
			t.Errorf("%s: session kept = %v", c.name, kept)
		}
	}
}

// TestHubSessionSmall: a hub keeps a session per connected edge, up to
// MaxEdges (10,000): its fixed size must stay small (an Encoder alone,
// with its LZ4 table, is 136 KiB: 1.3 GiB for 10,000 edges).
func TestHubSessionSmall(t *testing.T) {
	if n := unsafe.Sizeof(hubSession{}); n > 2<<10 {
		t.Fatalf("a hub session is %d bytes", n)
	}
}
