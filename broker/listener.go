package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Our listeners implement mochi's listeners.Listener so that every accepted
// connection passes through one place (Broker.serveConn) that
//   - bounds the number of open connections (MaxClients + connectionSlack),
//   - arms a deadline for the CONNECT packet (mochi sets none: a silent
//     connection would be held forever and would block mochi's Close),
//   - wraps the connection in the packet guard,
//   - recovers a panic on the connection's read goroutine, and
//   - is tracked, so Close closes and waits for every connection, including
//     those that never sent CONNECT (mochi only knows connected clients).
// mochi's own TCP listener also stops accepting for good on the first
// Accept error (EMFILE, for example); ours backs off and keeps serving.

// connSet tracks the open connections of one listener.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// add registers c; false if the listener is closed.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll refuses new connections and closes the open ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
}

// wait waits until every connection's goroutine has returned.
func (s *connSet) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveConn runs mochi's connection handling for c on the calling goroutine.
// The caller has added c to conns. With tlsCfg the TLS handshake runs here,
// bounded by the connect timeout, and the packet guard reads the decrypted
// stream; state is the TLS state of a connection whose handshake already
// happened (wss: the HTTP server did it).
func (b *Broker) serveConn(conns *connSet, id string, c net.Conn, tlsCfg *tls.Config, state *tls.ConnectionState, establish listeners.EstablishFn) {
	defer conns.remove(c)
	defer func() { _ = c.Close() }()
	if n := b.openConns.Add(1); n > b.opts.Limits.MaxClients+connectionSlack {
		b.openConns.Add(-1)
		b.metrics.connRefused.Inc()
		b.logRefused.Do(func() {
			b.log.Warn("connection refused", "remote", c.RemoteAddr().String(), "listener", id,
				"error", ErrTooManyConnections, "open", n-1)
		})
		return
	}
	defer b.openConns.Add(-1)
	release, ok := b.pending.acquire(c)
	if !ok {
		b.metrics.connRefused.Inc()
		b.logRefused.Do(func() {
			b.log.Warn("connection refused: too many connections from one address waiting for their CONNECT",
				"remote", c.RemoteAddr().String(), "listener", id, "max", maxPendingPerAddr)
		})
		return
	}
	defer release()
	defer func() {
		if r := recover(); r != nil {
			b.metrics.panics.Inc()
			b.log.Error("recovered panic on client connection", "remote", c.RemoteAddr().String(),
				"listener", id, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	deadline := time.Now().Add(b.opts.Limits.ConnectTimeout)
	_ = c.SetReadDeadline(deadline) // mochi re-arms it from the keepalive after CONNECT
	conn := c
	if tlsCfg != nil {
		tc := tls.Server(c, tlsCfg)
		_ = c.SetWriteDeadline(deadline)
		ctx, cancel := context.WithDeadline(b.ctx, deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			b.metrics.tlsFailures.WithLabelValues(id).Inc()
			b.logTLS.Do(func() {
				b.log.Warn("tls handshake failed", "remote", c.RemoteAddr().String(), "listener", id, "error", err)
			})
			return
		}
		_ = c.SetWriteDeadline(time.Time{})
		st := tc.ConnectionState()
		state, conn = &st, tc
	}
	g := newGuardConn(conn, &b.guard)
	g.meta = b.newConnMeta(state)
	g.meta.connected = release // the hook calls it at CONNECT
	defer close(g.meta.ended)
	err := establish(id, g)
	if err != nil {
		b.countEstablishError(err)
		b.log.Debug("client connection ended", "remote", c.RemoteAddr().String(), "listener", id, "error", err)
	}
}

// tcpListener is an MQTT listener over TCP, or over TLS when tls is set.
type tcpListener struct {
	b       *Broker
	id      string
	address string
	tls     *tls.Config
	ln      net.Listener
	conns   connSet

	mu      sync.Mutex
	closed  bool
	serving sync.WaitGroup
	stop    chan struct{}
}

func newTCPListener(b *Broker, id, address string, tlsCfg *tls.Config) *tcpListener {
	return &tcpListener{b: b, id: id, address: address, tls: tlsCfg, stop: make(chan struct{})}
}

func (l *tcpListener) ID() string { return l.id }

func (l *tcpListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Address is the bound address once Init has run (port 0 resolved).
func (l *tcpListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *tcpListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.serving.Add(1)
	l.mu.Unlock()
	defer l.serving.Done()

	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.b.logAccept.Do(func() {
				l.b.log.Error("accept failed", "listener", l.id, "error", err, "retry_in", backoff)
			})
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.stop:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if !l.conns.add(c) {
			_ = c.Close()
			continue
		}
		go l.b.serveConn(&l.conns, l.id, c, l.tls, nil, establish)
	}
}

// Close stops accepting, lets mochi disconnect its clients on this listener,
// then closes whatever connection is still open (clients that never sent
// CONNECT are unknown to mochi).
func (l *tcpListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
		if l.ln != nil {
			_ = l.ln.Close()
		}
	}
	l.mu.Unlock()
	l.serving.Wait()
	l.b.endListenerConns(l.id, &l.conns)
}

// wsListener serves MQTT over WebSocket (subprotocol "mqtt", binary
// frames), over TLS (wss) when tls is set.
type wsListener struct {
	b        *Broker
	id       string
	address  string
	tls      *tls.Config
	ln       net.Listener
	srv      *http.Server
	upgrader websocket.Upgrader
	conns    connSet

	mu        sync.Mutex
	closed    bool
	establish listeners.EstablishFn
	serving   sync.WaitGroup
}

func newWSListener(b *Broker, id, address string, tlsCfg *tls.Config) *wsListener {
	l := &wsListener{b: b, id: id, address: address, tls: tlsCfg}
	l.upgrader = websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Browsers on any origin may connect, as with mosquitto; access is
		// decided by the Authenticator, not by the page's origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return l
}

func (l *wsListener) ID() string { return l.id }

func (l *wsListener) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

func (l *wsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *wsListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.ln = ln
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: l.b.opts.Limits.ConnectTimeout, // bounds the TLS handshake too
		ErrorLog:          slog.NewLogLogger(l.b.log.Handler(), slog.LevelDebug),
		// An HTTP/2 connection cannot be upgraded to a WebSocket: no h2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.establish = establish
	l.serving.Add(1)
	l.mu.Unlock()
	defer l.serving.Done()
	ln := l.ln
	if l.tls != nil {
		// The HTTP server runs each handshake on the connection's goroutine,
		// bounded by ReadHeaderTimeout; a failed one never reaches handle.
		ln = tls.NewListener(ln, l.tls)
	}
	if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.b.log.Error("websocket listener stopped", "listener", l.id, "error", err)
	}
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	establish := l.establish
	l.mu.Unlock()
	if establish == nil {
		http.Error(w, "not serving", http.StatusServiceUnavailable)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	c := &wsConn{Conn: ws.NetConn(), ws: ws}
	if !l.conns.add(c) {
		_ = c.Close()
		return
	}
	l.b.serveConn(&l.conns, l.id, c, nil, r.TLS, establish)
}

func (l *wsListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	l.mu.Unlock()
	if first && l.srv != nil {
		_ = l.srv.Close() // closes idle HTTP connections, not upgraded ones
		_ = l.ln.Close()  // in case Serve never ran
	}
	l.serving.Wait()
	l.b.endListenerConns(l.id, &l.conns)
}

// endListenerConns ends a closing listener's connections: its clients get
// "server shutting down", its sockets are closed, and it waits for their
// goroutines. mochi's CloseAll calls Listeners.ClientsWg.Wait right after a
// listener's Close; every establish call must have returned (its
// ClientsWg.Add(1) happened) by then, or an Add from zero races with that
// Wait (a connection still in its TLS handshake; seen under -race).
func (b *Broker) endListenerConns(id string, conns *connSet) {
	b.disconnectListenerClients(id)
	conns.closeAll()
	conns.wg.Wait()
}

// disconnectListenerClients sends "server shutting down" to every client of
// a listener and closes it: what mochi's close callback does, without its
// deadlock. mochi v2.7.9's Clients.GetByListener read-locks the client map
// and calls Len, which read-locks it again; when a client disconnects in
// between (Clients.Delete queues for the write lock), the second RLock
// waits behind the writer and the writer behind the first RLock, and
// Server.Close never returns (seen in TestTLSListenerClientCertificates,
// about 1 run in 150). GetAll takes the lock once.
func (b *Broker) disconnectListenerClients(id string) {
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}
