package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Listener ids, as reported by ClientInfo.Listener.
const (
	ListenerTCP          = "tcp"
	ListenerWebSocket    = "ws"
	ListenerTLS          = "tls"
	ListenerWebSocketTLS = "wss"
)

// sysTopicInterval is how often mochi refreshes its $SYS topics. mochi's
// default (1s) calls runtime.ReadMemStats, a stop-the-world pause, every
// second; a gateway does not need that.
const sysTopicInterval = 10 // seconds

// Options configure a Broker.
type Options struct {
	// Listen is the MQTT TCP address (":1883"); empty disables TCP.
	Listen string
	// WebSocket is the MQTT-over-WebSocket address; empty disables it.
	WebSocket string
	// TLSListen is the MQTT-over-TLS address (":8883"); it needs TLS.
	TLSListen string
	// TLSWebSocket is the MQTT-over-WebSocket-over-TLS (wss) address; it
	// needs TLS.
	TLSWebSocket string
	// TLS holds the certificate (and client CA) of the TLS listeners; the
	// packet guard reads what the handshake decrypted.
	TLS *ServerTLS
	// IdentityAsUsername makes the common name of a client's verified
	// certificate (TLS listeners with a client CA) its user name; the
	// Authenticator sees it in ClientInfo.CertIdentity and the client needs
	// no password.
	IdentityAsUsername bool
	// Limits default to DefaultLimits() when zero.
	Limits Limits
	// Auth decides who may connect and use which topics (default AllowAll).
	Auth Authenticator
	// Commands tunes the $ferrite/cmd router.
	Commands RouterOptions
	// Logger gets the broker's logs (component=broker); default slog.Default().
	Logger *slog.Logger
	// Registerer receives the broker's metrics; default: a private registry.
	Registerer prometheus.Registerer
}

// Broker is the embedded MQTT broker: mochi-mqtt v2 behind guarded
// listeners, with handler dispatch and the command router.
type Broker struct {
	opts    Options
	log     *slog.Logger
	server  *mqtt.Server
	auth    Authenticator
	router  *Router
	metrics *metrics
	guard   guardPolicy
	inline  *mqtt.Client // publishes command replies and Broker.Publish
	gate    *retainGate  // see retaingate.go

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc

	tcp  *tcpListener
	ws   *wsListener
	tlsL *tcpListener
	wss  *wsListener

	routeMu sync.Mutex
	routes  atomic.Pointer[routes]
	workers sync.WaitGroup // handler workers

	openConns  atomic.Int64
	pending    pendingConns // sockets waiting for their CONNECT, per address
	logRejects rate.Sometimes
	logRefused rate.Sometimes
	logAccept  rate.Sometimes
	logGuard   rate.Sometimes
	logRate    rate.Sometimes
	logTLS     rate.Sometimes
	logPersist rate.Sometimes

	state StateStore // set by PersistState before Start
	// restoredIdentity: client id → certificate identity of a session
	// restored from the store (it has no connection to read it from).
	restoredIdentity sync.Map

	mu        sync.Mutex
	started   bool
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	startTime time.Time
}

// New creates a broker. Nothing listens until Start.
// netBufferSize is each client's read buffer and outbound write
// coalescing size.
const netBufferSize = 16 << 10

func New(opts Options) (*Broker, error) {
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "broker")
	b := &Broker{
		opts:       opts,
		log:        log,
		auth:       opts.Auth,
		logRejects: rate.Sometimes{Interval: 10 * time.Second},
		logRefused: rate.Sometimes{Interval: 10 * time.Second},
		logPersist: rate.Sometimes{Interval: 10 * time.Second},
		logAccept:  rate.Sometimes{Interval: 10 * time.Second},
		logGuard:   rate.Sometimes{Interval: 10 * time.Second},
		logRate:    rate.Sometimes{Interval: 10 * time.Second},
		logTLS:     rate.Sometimes{Interval: 10 * time.Second},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.server = mqtt.New(&mqtt.Options{
		Capabilities:           opts.Limits.capabilities(),
		Logger:                 opts.Logger.With("component", "mochi"),
		SysTopicResendInterval: sysTopicInterval,
		// mochi coalesces a client's queued outbound packets into one write
		// up to this size (default 2 KiB): larger buffers mean fewer write
		// syscalls for busy subscribers.
		ClientNetWriteBufferSize: netBufferSize,
		ClientNetReadBufferSize:  netBufferSize,
	})
	m, err := newMetrics(opts.Registerer, b.server.Info)
	if err != nil {
		return nil, fmt.Errorf("broker: metrics: %w", err)
	}
	b.metrics = m
	// Idle sockets from one address may take at most half the connection
	// cap (pending.go).
	b.pending.setMax(int(min(maxPendingPerAddr, max(1, (opts.Limits.MaxClients+connectionSlack)/2))))
	b.guard = guardPolicy{
		maxPacketSize:     opts.Limits.MaxPacketSize,
		topicAliasMaximum: opts.Limits.TopicAliasMaximum,
		onReject:          b.onGuardReject,
	}
	b.inline = b.server.NewClient(nil, mqtt.LocalListener, "$ferrite", true)
	b.newCommandRouter()
	// Hook order matters for the retained-index gate (retaingate.go): its
	// leave hook first, its enter hook after every other OnPublish/OnWill.
	b.gate = newRetainGate(log.With("component", "broker"))
	for _, h := range []mqtt.Hook{&gateLeaveHook{g: b.gate}, &hook{b: b}, &gateEnterHook{b: b, g: b.gate}} {
		if err := b.server.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: hook %s: %w", h.ID(), err)
		}
	}
	b.newListeners()
	return b, nil
}

// ensureDefaults fills the options' defaults and checks the rest.
func (o *Options) ensureDefaults() error {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if err := o.Limits.Validate(); err != nil {
		return err
	}
	if o.Listen == "" && o.WebSocket == "" && o.TLSListen == "" && o.TLSWebSocket == "" {
		return errors.New("broker: no listener configured")
	}
	if (o.TLSListen != "" || o.TLSWebSocket != "") && o.TLS == nil {
		return errors.New("broker: a TLS listener needs Options.TLS")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Auth == nil {
		o.Auth = AllowAll{}
	}
	return nil
}

// newCommandRouter creates the router of $ferrite/cmd and who it may
// answer.
func (b *Broker) newCommandRouter() {
	b.router = newRouter(b.opts.Commands, b.log.With("component", "router"), b.metrics, b.publishReply)
	b.router.mayReply = func(cl *mqtt.Client, topic string) bool {
		if topic == ReplyTopicPrefix+cl.ID {
			// The client's own reply topic, unless its id makes it a
			// filter ("a+b"): such a client needs an MQTT 5 response topic.
			return !strings.ContainsAny(cl.ID, "+#")
		}
		return topic != "" && !strings.ContainsAny(topic, "+#\x00") && !strings.HasPrefix(topic, voidPrefix) &&
			b.auth.Authorize(clientInfo(cl), topic, true)
	}
	if ca, ok := b.opts.Auth.(CommandAuthorizer); ok {
		b.router.authorize = ca.AuthorizeCommand
	}
}

// newListeners creates the configured listeners (started by Start).
func (b *Broker) newListeners() {
	o := &b.opts
	if o.Listen != "" {
		b.tcp = newTCPListener(b, ListenerTCP, o.Listen, nil)
	}
	if o.WebSocket != "" {
		b.ws = newWSListener(b, ListenerWebSocket, o.WebSocket, nil)
	}
	if o.TLSListen != "" {
		b.tlsL = newTCPListener(b, ListenerTLS, o.TLSListen, o.TLS.Config())
	}
	if o.TLSWebSocket != "" {
		b.wss = newWSListener(b, ListenerWebSocketTLS, o.TLSWebSocket, o.TLS.Config())
	}
}

func (b *Broker) onGuardReject(c net.Conn, e *guardError) {
	b.metrics.packetsRejected.WithLabelValues(e.reason).Inc()
	b.logGuard.Do(func() {
		b.log.Warn("packet refused, closing connection", "remote", c.RemoteAddr().String(),
			"reason", e.reason, "packet_type", e.kind, "error", e.err)
	})
}

// Start binds the listeners and starts serving. A bind error is returned
// and nothing is left running.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing.Load() {
		return ErrClosed
	}
	if b.started {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var added []listeners.Listener
	for _, l := range b.listeners() {
		if err := b.server.AddListener(l); err != nil {
			for _, a := range added {
				a.Close(func(string) {})
			}
			// net.Listen's error already reads "listen tcp ADDR: ...".
			return fmt.Errorf("broker: %s listener: %w", l.Protocol(), err)
		}
		added = append(added, l)
	}
	if err := b.loadPersisted(ctx); err != nil {
		for _, a := range added {
			a.Close(func(string) {})
		}
		return err
	}
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.router.start()
	b.started = true
	b.startTime = time.Now()
	b.log.Info("broker started", "mqtt", b.Addr(), "websocket", b.WebSocketAddr(),
		"mqtts", b.TLSAddr(), "wss", b.TLSWebSocketAddr())
	return nil
}

// listeners are the configured listeners.
func (b *Broker) listeners() []listeners.Listener {
	var ls []listeners.Listener
	for _, l := range []*tcpListener{b.tcp, b.tlsL} {
		if l != nil {
			ls = append(ls, l)
		}
	}
	for _, l := range []*wsListener{b.ws, b.wss} {
		if l != nil {
			ls = append(ls, l)
		}
	}
	return ls
}

// Close stops the listeners, disconnects every client (MQTT 5 clients get
// "server shutting down"), waits for the connections, the command workers
// and the handler workers (which first deliver the QoS 0 messages already
// queued). If ctx ends first, in-flight handler and command calls see their
// context cancelled and Close returns the context's error. Close is
// idempotent.
func (b *Broker) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing.Store(true)
		started := b.started
		b.mu.Unlock()
		b.closeErr = b.close(ctx, started)
		b.cancel()
	})
	return b.closeErr
}

func (b *Broker) close(ctx context.Context, started bool) error {
	var errs []error
	if started {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.server.Close() // always nil in mochi v2.7.9
		}()
		select {
		case <-done:
		case <-ctx.Done():
			b.cancel()
			errs = append(errs, fmt.Errorf("broker: closing mqtt server: %w", ctx.Err()))
		}
	} else {
		for _, l := range b.listeners() {
			l.Close(func(string) {})
		}
	}
	for _, cs := range b.connSets() {
		if err := cs.wait(ctx); err != nil {
			b.cancel()
			errs = append(errs, fmt.Errorf("broker: waiting for connections: %w", err))
			break
		}
	}
	if err := b.router.close(ctx); err != nil {
		b.cancel()
		errs = append(errs, err)
	}
	if err := b.stopRoutes(ctx); err != nil {
		b.cancel()
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		b.log.Info("broker stopped")
	}
	return errors.Join(errs...)
}

func (b *Broker) connSets() []*connSet {
	var s []*connSet
	for _, l := range []*tcpListener{b.tcp, b.tlsL} {
		if l != nil {
			s = append(s, &l.conns)
		}
	}
	for _, l := range []*wsListener{b.ws, b.wss} {
		if l != nil {
			s = append(s, &l.conns)
		}
	}
	return s
}

// Addr is the bound MQTT TCP address ("" if disabled).
func (b *Broker) Addr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// WebSocketAddr is the bound WebSocket address ("" if disabled).
func (b *Broker) WebSocketAddr() string {
	if b.ws == nil {
		return ""
	}
	return b.ws.Address()
}

// TLSAddr is the bound MQTT-over-TLS address ("" if disabled).
func (b *Broker) TLSAddr() string {
	if b.tlsL == nil {
		return ""
	}
	return b.tlsL.Address()
}

// TLSWebSocketAddr is the bound wss address ("" if disabled).
func (b *Broker) TLSWebSocketAddr() string {
	if b.wss == nil {
		return ""
	}
	return b.wss.Address()
}

// Router is the $ferrite/cmd command router; register commands on it.
func (b *Broker) Router() *Router { return b.router }

// Stats is a snapshot of broker counters.
type Stats struct {
	ClientsConnected int64 `json:"clients_connected"`
	Subscriptions    int64 `json:"subscriptions"`
	Retained         int64 `json:"retained"`
	Inflight         int64 `json:"inflight"`
	MessagesReceived int64 `json:"messages_received"`
	MessagesSent     int64 `json:"messages_sent"`
	MessagesDropped  int64 `json:"messages_dropped"`
	BytesReceived    int64 `json:"bytes_received"`
	BytesSent        int64 `json:"bytes_sent"`
}

// Stats returns the current counters.
func (b *Broker) Stats() Stats {
	i := b.server.Info
	return Stats{
		ClientsConnected: atomic.LoadInt64(&i.ClientsConnected),
		Subscriptions:    atomic.LoadInt64(&i.Subscriptions),
		Retained:         atomic.LoadInt64(&i.Retained),
		Inflight:         atomic.LoadInt64(&i.Inflight),
		MessagesReceived: atomic.LoadInt64(&i.MessagesReceived),
		MessagesSent:     atomic.LoadInt64(&i.MessagesSent),
		MessagesDropped:  atomic.LoadInt64(&i.MessagesDropped),
		BytesReceived:    atomic.LoadInt64(&i.BytesReceived),
		BytesSent:        atomic.LoadInt64(&i.BytesSent),
	}
}

// Publish sends a message to the broker's subscribers as the broker itself
// (client id "$ferrite"): no ACL check, not dispatched to handlers. It does
// not wait for subscribers: one whose queue is full misses it (counted as
// dropped). A retained message waits while a new subscription scans the
// retained index, at most gateWaitLimit (retaingate.go).
// Topic, Payload, QoS, Retain and the MQTT 5 properties of m are used.
func (b *Broker) Publish(m *Message) error {
	if b.closing.Load() {
		return ErrClosed
	}
	if m.Topic == "" || strings.ContainsAny(m.Topic, "+#\x00") { // [MQTT-3.3.2-2]
		return fmt.Errorf("broker: publish: invalid topic %q", m.Topic)
	}
	if m.QoS > 2 {
		return fmt.Errorf("broker: publish: invalid qos %d", m.QoS)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		PacketID:    uint16(m.QoS), // mochi needs a non-zero id for QoS > 0; inline publishes never use it
		Properties: packets.Properties{
			ResponseTopic:   m.ResponseTopic,
			CorrelationData: m.CorrelationData,
			ContentType:     m.ContentType,
		},
	}
	for _, u := range m.UserProperties {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: u.Key, Val: u.Value})
	}
	return b.server.InjectPacket(b.inline, pk)
}

// publishReply is the router's way out: a JSON reply to one requester.
func (b *Broker) publishReply(topic string, payload []byte, qos byte, correlation []byte) {
	err := b.Publish(&Message{
		Topic:           topic,
		Payload:         payload,
		QoS:             qos,
		CorrelationData: correlation,
		ContentType:     "application/json",
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		b.log.Debug("command reply not published", "topic", topic, "error", err)
	}
}

// Uptime is the time since Start (0 before).
func (b *Broker) Uptime() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		return 0
	}
	return time.Since(b.startTime)
}

// DisconnectRevoked disconnects the connected clients that the
// Authenticator (if it is a Revoker) no longer accepts, typically after the
// password file was reloaded without their user. MQTT 5 clients get
// DISCONNECT 0x87 "not authorized". Other clients are left alone. It returns
// how many were disconnected.
func (b *Broker) DisconnectRevoked() int {
	rv, ok := b.auth.(Revoker)
	if !ok || b.closing.Load() {
		return 0
	}
	n := 0
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() || !rv.Revoked(clientInfo(cl)) {
			continue
		}
		b.log.Info("disconnecting client: its user was revoked", "client", cl.ID, "username", string(cl.Properties.Username))
		_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
		n++
	}
	return n
}
