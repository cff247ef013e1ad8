package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	fbroker "github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Test harness: real stores on t.TempDir(), a real broker (ours in
// process, or a mosquitto process), real paho links.

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SYNCER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// broker is a running MQTT broker for a test.
type broker struct {
	url  string
	stop func()
}

// startEmbedded starts the gateway's own broker (package broker: mochi
// behind Ferrite's listeners and hooks, as hub mode runs it) on
// 127.0.0.1:0.
func startEmbedded(t testing.TB) *broker {
	t.Helper()
	url, stop := embeddedAt(t, "127.0.0.1:0", nil)
	return &broker{url: url, stop: stop}
}

// embeddedAt starts the gateway's broker on addr (a fixed address, to
// restart a broker), over TLS when tlsFiles is set.
func embeddedAt(t testing.TB, addr string, tlsFiles *fbroker.TLSFiles) (url string, stop func()) {
	t.Helper()
	opts := fbroker.Options{Listen: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	scheme := "mqtt"
	if tlsFiles != nil {
		st, err := fbroker.LoadServerTLS(*tlsFiles)
		if err != nil {
			t.Fatal(err)
		}
		opts.Listen, opts.TLSListen, opts.TLS, scheme = "", addr, st, "mqtts"
	}
	var b *fbroker.Broker
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if b, err = fbroker.New(opts); err == nil {
			if err = b.Start(context.Background()); err == nil {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(ctx)
		})
	}
	t.Cleanup(stop)
	if tlsFiles != nil {
		return scheme + "://" + b.TLSAddr(), stop
	}
	return scheme + "://" + b.Addr(), stop
}

// startMosquitto starts a mosquitto process on a free port, or skips.
func startMosquitto(t testing.TB) *broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("mosquitto not installed")
	}
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	cfg := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n", port)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	b := &broker{url: fmt.Sprintf("mqtt://127.0.0.1:%d", port), stop: func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-done
		})
	}}
	t.Cleanup(b.stop)
	waitFor(t, 10*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err != nil {
			return false, "mosquitto not listening: " + err.Error()
		}
		_ = c.Close()
		return true, ""
	})
	return b
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		ok, w := cond()
		if ok {
			return
		}
		why = w
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %v: %s", timeout, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replica is a node under test: a store and its syncer.
type replica struct {
	t     testing.TB
	name  string
	role  crdt.Role
	dir   string
	res   crdt.Resolver
	clock func() int64
	dur   store.Durability
	// opts adjusts the store's options at the next open.
	opts   func(*store.Options)
	st     *store.Store
	edge   *Edge
	hub    *Hub
	cancel context.CancelFunc
	done   chan error
}

func openStore(t testing.TB, dir, node string, role crdt.Role, res crdt.Resolver, clock func() int64) *store.Store {
	return openStoreDur(t, dir, node, role, res, clock, store.DurabilityAlways)
}

func openStoreDur(t testing.TB, dir, node string, role crdt.Role, res crdt.Resolver, clock func() int64, dur store.Durability, mods ...func(*store.Options)) *store.Store {
	t.Helper()
	o := store.Options{
		NodeID: node, Role: role, Dir: dir, Resolver: res, Clock: clock, Durability: dur,
		SweepInterval: -1, Logger: testLogger(t), Registerer: prometheus.NewRegistry(),
	}
	for _, m := range mods {
		if m != nil {
			m(&o)
		}
	}
	st, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newReplica(t testing.TB, name string, role crdt.Role, res crdt.Resolver, mods ...func(*replica)) *replica {
	r := &replica{t: t, name: name, role: role, dir: t.TempDir(), res: res}
	for _, m := range mods {
		m(r)
	}
	r.open()
	t.Cleanup(r.close)
	return r
}

func (r *replica) open() {
	r.st = openStoreDur(r.t, r.dir, r.name, r.role, r.res, r.clock, r.dur, r.opts)
}

// close stops the syncer and closes the store (idempotent).
func (r *replica) close() {
	r.stopSync()
	if r.st != nil {
		_ = r.st.Close()
		r.st = nil
	}
}

func (r *replica) stopSync() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("%s: Run: %v", r.name, err)
	}
	r.cancel = nil
	if r.edge != nil {
		r.edge.Close()
	}
	if r.hub != nil {
		r.hub.Close()
	}
}

// restart closes the syncer and the store and opens both again.
func (r *replica) restart(start func()) {
	r.close()
	r.open()
	start()
}

// noFsync makes a replica's local writes skip the fsync (bulk loads).
func noFsync(r *replica) { r.dur = store.DurabilityNone }

// fastEdge are edge options with test-sized timers.
func fastEdge(o *EdgeOptions) {
	o.AckTimeout = 2 * time.Second
	o.BackoffMin = 20 * time.Millisecond
	o.BackoffMax = 300 * time.Millisecond
	o.ConnectTimeout = 2 * time.Second
	o.Interval = 200 * time.Millisecond
	o.KeepAlive = 5 * time.Second
}

func (r *replica) startEdge(url string, mods ...func(*EdgeOptions)) {
	r.t.Helper()
	o := EdgeOptions{Store: r.st, HubURL: url, Policy: PolicyImmediate, Resolver: r.res,
		Logger: testLogger(r.t).With("node", r.name), Registerer: prometheus.NewRegistry()}
	fastEdge(&o)
	for _, m := range mods {
		m(&o)
	}
	e, err := NewEdge(o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.edge = e
	r.run(e.Run)
}

func (r *replica) startHub(url string, mods ...func(*HubOptions)) {
	r.t.Helper()
	o := HubOptions{Store: r.st, BrokerURL: url, Resolver: r.res,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second,
		KeepAlive: 5 * time.Second, Logger: testLogger(r.t).With("node", r.name), Registerer: prometheus.NewRegistry()}
	o.AckTimeout = 2 * time.Second
	for _, m := range mods {
		m(&o)
	}
	h, err := NewHub(o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.hub = h
	r.run(h.Run)
}

func (r *replica) run(fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	go func() { r.done <- fn(ctx) }()
}

// digest hashes the replica's whole state: every key's encoded entry and
// the causal context. Replicas that saw the same updates hold the same
// bytes.
func digest(t testing.TB, st Store) string {
	t.Helper()
	d, err := stateDigest(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// stateDigest computes digest's hash (for child processes, without a T).
func stateDigest(ctx context.Context, st Store) (string, error) {
	h := sha256.New()
	c, err := st.ExportState(ctx, func(key string, entry []byte) error {
		fmt.Fprintf(h, "%d:%s%d:", len(key), key, len(entry))
		h.Write(entry)
		return nil
	})
	if err != nil {
		return "", err
	}
	h.Write(c.AppendBinary(nil))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// waitConverged waits until every replica has the same digest.
func waitConverged(t testing.TB, timeout time.Duration, reps ...*replica) string {
	t.Helper()
	var d string
	waitFor(t, timeout, func() (bool, string) {
		ds := make([]string, len(reps))
		for i, r := range reps {
			ds[i] = digest(t, r.st)
		}
		for i := range ds {
			if ds[i] != ds[0] {
				return false, fmt.Sprintf("digests differ: %s=%s %s=%s", reps[0].name, ds[0], reps[i].name, ds[i])
			}
		}
		d = ds[0]
		return true, ""
	})
	return d
}

func mustGet(t testing.TB, st *store.Store, key string) string {
	t.Helper()
	v, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", st.NodeID(), key, err)
	}
	return string(v)
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
