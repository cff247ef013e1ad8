package syncer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// mochiAt starts mochi on addr (a fixed address, to restart a broker),
// optionally with TLS.
func mochiAt(t testing.TB, addr string, tlsCfg *tls.Config) (url string, stop func()) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: addr, TLSConfig: tlsCfg})
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if err = srv.AddListener(l); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	scheme := "mqtt"
	if tlsCfg != nil {
		scheme = "mqtts"
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = srv.Close()
		}
	}
	t.Cleanup(stop)
	return scheme + "://" + l.Address(), stop
}

// TestHubRestartIdleEdge: an edge with nothing to send learns that the hub
// restarted from its live "online" status and starts a new session at
// once, so it receives the hub's new data without waiting for anything.
func TestHubRestartIdleEdge(t *testing.T) {
	b := startMochi(t)
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
	url, stop := mochiAt(t, addr, nil)
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
	mochiAt(t, addr, nil)
	waitConverged(t, 20*time.Second, hub, e1, e2)
	if v := mustGet(t, hub.st, "n"); v != "40" {
		t.Fatalf("n = %s, want 40", v)
	}
}

// TestTLS: mqtts with a private CA on both sides.
func TestTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	url, _ := mochiAt(t, "127.0.0.1:0", serverTLS)
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

// testTLS makes a CA and a server certificate for 127.0.0.1.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferrite test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	check(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	check(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	check(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return server, client
}
