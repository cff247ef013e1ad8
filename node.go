package ferrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/ferrite-edge/ferrite/resources"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/ferrite-edge/ferrite/syncer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Errors of the node lifecycle.
var (
	ErrNodeStarted = errors.New("ferrite: node already started")
	ErrNodeClosed  = errors.New("ferrite: node closed")
	// ErrNodeNotStarted is returned by the embedding API before Start.
	ErrNodeNotStarted = errors.New("ferrite: node not started")
)

// Options are what a Node takes besides its Config.
type Options struct {
	// Logger is the root logger; default NewLogger(cfg.Log, os.Stderr).
	Logger *slog.Logger
	// Registry receives every metric of the node; default a new registry
	// with the Go and process collectors. Never the global default registry,
	// so that several nodes can run in one process.
	Registry *prometheus.Registry
	// Auth decides who may connect and use which topics; default a
	// broker.FileAuth built from broker.auth (see node_auth.go).
	Auth broker.Authenticator
	// NewActor makes a data directory restored from a backup write under a
	// new actor from now on (store.Options.NewActor; ferrite --new-actor).
	// Once per restore: docs/OPERATIONS.md, "Backup and restore".
	NewActor bool
}

// Node composes the subsystems of one Ferrite process. Its lifecycle is
// NewNode → Start → Close; Close stops what Start started, in reverse order.
//
// Subsystems are wired explicitly in NewNode and Start (see the numbered
// steps there): each started one pushes its stop function on a stack that
// Close unwinds, so a failed Start leaves nothing running.
type Node struct {
	cfg      *Config
	newActor bool // Options.NewActor
	log      *slog.Logger
	reg      *prometheus.Registry

	broker   *broker.Broker
	http     *httpServer
	store    *store.Store
	pipeline *ingest.Pipeline
	edge     *syncer.Edge
	hub      *syncer.Hub
	monitor  *resources.Monitor
	runtime  *resources.RuntimeSettings
	sec      security

	mu       sync.Mutex
	started  bool
	closed   bool
	stack    []stopper
	startAt  time.Time
	ready    atomic.Bool
	closeErr error

	statusMu sync.RWMutex
	status   []namedStatus
	checks   []namedCheck
}

// stopper is one started subsystem.
type stopper struct {
	name string
	stop func(ctx context.Context) error
}

// NewNode validates cfg and builds the node's subsystems without starting
// anything (no port is bound, no goroutine runs).
func NewNode(cfg *Config, opts Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = NewLogger(cfg.Log, os.Stderr)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	n := &Node{
		cfg:      cfg,
		log:      opts.Logger.With(LogKeyNode, cfg.NodeID),
		reg:      opts.Registry,
		newActor: opts.NewActor,
	}
	if err := n.registerMetrics(); err != nil {
		return nil, err
	}

	// 1. Broker (store, ingest and syncer plug in before it when they land:
	//    handlers must be registered before clients can publish).
	bo := cfg.Broker.BrokerOptions()
	bo.Logger = n.log
	bo.Registerer = n.reg
	if err := n.setupSecurity(&bo, opts.Auth); err != nil {
		return nil, err
	}
	b, err := broker.New(bo)
	if err != nil {
		return nil, fmt.Errorf("ferrite: %w", err)
	}
	n.broker = b

	// 2. Commands of the node itself.
	if err := n.registerCommands(); err != nil {
		return nil, err
	}

	// 3. HTTP (health, readiness, metrics).
	if cfg.HTTP.Listen != "" {
		n.http = newHTTPServer(n, cfg.HTTP.Listen)
	}
	return n, nil
}

func (n *Node) registerMetrics() error {
	b := Build()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "ferrite_build_info",
		Help:        "Build of the running binary (always 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	})
	info.Set(1)
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferrite_node_ready",
		Help: "1 when the node has started and is not shutting down.",
	}, func() float64 {
		if n.ready.Load() {
			return 1
		}
		return 0
	})
	return errors.Join(n.reg.Register(info), n.reg.Register(ready))
}

// Start binds the listeners and starts every subsystem. On error, what was
// started is stopped again and the node cannot be restarted.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrNodeClosed
	case n.started:
		return ErrNodeStarted
	}
	n.started = true
	if err := n.start(ctx); err != nil {
		n.closeErr = n.unwind(context.WithoutCancel(ctx))
		n.closed = true
		return err
	}
	n.startAt = time.Now()
	n.ready.Store(true)
	n.log.Info("node ready", "mode", n.cfg.Mode, "version", Version,
		"mqtt", n.broker.Addr(), "websocket", n.broker.WebSocketAddr(), "http", n.HTTPAddr())
	return nil
}

func (n *Node) start(ctx context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("ferrite: data dir: %w", err)
	}
	if err := removeRunFile(n.cfg.DataDir); err != nil {
		return err
	}
	// Background loops live until Close, not until Start's ctx ends.
	bgCtx := context.WithoutCancel(ctx)
	// 1. Runtime limits (GOMAXPROCS, GOMEMLIMIT) before anything allocates.
	n.applyRuntime()
	// 2. The store: every write lands here first.
	if err := n.openStore(ctx); err != nil {
		return err
	}
	// 3. Ingestion: registers its publish handler before clients connect.
	if err := n.startIngest(bgCtx); err != nil {
		return err
	}
	// 4. The edge syncer (needs the store; runs offline without a hub).
	if n.cfg.Mode == ModeEdge {
		if err := n.startEdgeSync(bgCtx); err != nil {
			return err
		}
	}
	// 5. The broker: clients may connect from here on.
	if n.cfg.Broker.Persistence {
		if err := n.broker.PersistState(n.store); err != nil {
			return fmt.Errorf("ferrite: %w", err)
		}
	}
	if err := n.broker.Start(ctx); err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	n.push("broker", n.broker.Close)
	// 6. The hub side attaches to the broker as a client.
	if n.cfg.Mode == ModeHub {
		if err := n.startHubSync(bgCtx); err != nil {
			return err
		}
	}
	// 7. The resource monitor, with every lever in place.
	if err := n.startMonitor(bgCtx); err != nil {
		return err
	}
	// 8. Home Assistant discovery: reads ingest, syncer and monitor.
	if err := n.startHomeAssistant(ctx, bgCtx); err != nil {
		return err
	}
	if n.http != nil {
		if err := n.http.start(); err != nil {
			return err
		}
		n.push("http", n.http.close)
	}
	if err := writeRunFile(n.cfg.DataDir, n.runInfo()); err != nil {
		return err
	}
	n.push("run file", func(context.Context) error { return removeRunFile(n.cfg.DataDir) })
	return nil
}

func (n *Node) push(name string, stop func(context.Context) error) {
	n.stack = append(n.stack, stopper{name, stop})
}

// unwind stops the started subsystems in reverse order, all of them even if
// some fail.
func (n *Node) unwind(ctx context.Context) error {
	var errs []error
	for i := len(n.stack) - 1; i >= 0; i-- {
		s := n.stack[i]
		if err := s.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.name, err))
		}
	}
	n.stack = nil
	return errors.Join(errs...)
}

// Close stops the node gracefully: readiness goes down first, then each
// subsystem stops in reverse start order (the broker disconnects clients and
// drains its handlers), bounded by ctx. Close is idempotent.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	n.ready.Store(false)
	if !n.started {
		n.closeErr = n.broker.Close(ctx) // built but never started
		return n.closeErr
	}
	n.log.Info("node stopping")
	n.closeErr = n.unwind(ctx)
	if n.closeErr != nil {
		n.log.Error("node stopped with errors", "error", n.closeErr)
	} else {
		n.log.Info("node stopped")
	}
	return n.closeErr
}

// Config is the node's configuration (read only).
func (n *Node) Config() *Config { return n.cfg }

// Broker is the embedded MQTT broker (register handlers on it).
func (n *Node) Broker() *broker.Broker { return n.broker }

// Router is the $ferrite/cmd command router (register commands on it).
func (n *Node) Router() *broker.Router { return n.broker.Router() }

// Registry is the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Logger is the node's root logger; derive component loggers with
// Logger().With("component", name).
func (n *Node) Logger() *slog.Logger { return n.log }

// Ready reports whether the node has started and is not shutting down.
func (n *Node) Ready() bool { return n.ready.Load() }

// Uptime is the time since Start returned (0 before).
func (n *Node) Uptime() time.Duration {
	if !n.ready.Load() {
		return 0
	}
	return time.Since(n.startAt)
}

// HTTPAddr is the bound HTTP address ("" if disabled or not started).
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.addr()
}
