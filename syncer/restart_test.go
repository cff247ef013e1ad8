package syncer

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	fbroker "github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/test/pki"
)

// TestHubRestartIdleEdge: an edge with nothing to send learns that the hub
// restarted from its live "online" status and starts a new session at
// once, so it receives the hub's new data without waiting for anything.
func TestHubRestartIdleEdge(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	hub.startHub(b.url)
	e1.startEdge(b.url)
	e2.startEdge(b.url, func(o *EdgeOptions) { o.Policy = PolicyManual; o.AckTimeout = time.Minute })
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "before", []byte("1")))
	waitConverged(t, 10*time.Second, hub, e1, e2)

	hub.restart(func() { hub.startHub(b.url) })
	check(t, e1.st.Set(ctx, "after", []byte("2")))
	waitFor(t, 10*time.Second, func() (bool, string) {
		v, err := e2.st.Get(ctx, "after")
		return err == nil && string(v) == "2", fmt.Sprintf("idle edge-2 has after=%q (%v): %+v", v, err, e2.edge.Status())
	})
}

// TestBrokerRestart: the broker itself goes away and comes back on the
// same address; the hub and both edges reconnect (backoff) and everything
// written meanwhile converges.
func TestBrokerRestart(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	url, stop := embeddedAt(t, addr, nil)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	hub.startHub(url)
	e1.startEdge(url)
	e2.startEdge(url)
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "a", []byte("1")))
	waitConverged(t, 10*time.Second, hub, e1, e2)
	stop()
	for i := range 20 {
		_, err := e1.st.IncrBy(ctx, "n", 1)
		check(t, err)
		_, err = e2.st.IncrBy(ctx, "n", 1)
		check(t, err)
		check(t, hub.st.Set(ctx, fmt.Sprintf("hub:%d", i), []byte("h")))
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := e1.edge.Status()
		return !s.HubConnected, fmt.Sprintf("edge-1 still connected: %+v", s)
	})
	embeddedAt(t, addr, nil)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	if v := mustGet(t, hub.st, "n"); v != "40" {
		t.Fatalf("n = %s, want 40", v)
	}
}

// TestTLS: mqtts with a private CA on both sides.
func TestTLS(t *testing.T) {
	ca := pki.NewCA(t, "ferrite test CA")
	cert, key := ca.Issue("hub.example", true)
	clientTLS := pki.ClientTLS(t, ca, "", "")
	url, _ := embeddedAt(t, "127.0.0.1:0", &fbroker.TLSFiles{Cert: cert, Key: key})
	if !strings.HasPrefix(url, "mqtts://") {
		t.Fatal(url)
	}
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	hub.startHub(url, func(o *HubOptions) { o.TLS = clientTLS; o.Username, o.Password = "hub", "secret" })
	for _, e := range []*replica{e1, e2} {
		e.startEdge(url, func(o *EdgeOptions) { o.TLS = clientTLS; o.Username, o.Password = e.name, "secret" })
	}
	ctx := context.Background()
	check(t, e1.st.Set(ctx, "over", []byte("tls")))
	check(t, e2.st.Set(ctx, "and", []byte("back")))
	waitConverged(t, 10*time.Second, hub, e1, e2)
	// A client that does not trust the CA cannot connect: SyncNow says so.
	e3 := newReplica(t, "edge-3", crdt.RoleEdge, res)
	e3.startEdge(url, func(o *EdgeOptions) { o.TLS = &tls.Config{MinVersion: tls.VersionTLS12} })
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e3.edge.SyncNow(cctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("SyncNow with an untrusted server: %v", err)
	}
}
