package ferrite

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpServer serves /healthz, /readyz and /metrics.
type httpServer struct {
	n       *Node
	address string
	srv     *http.Server
	ln      net.Listener
	wg      sync.WaitGroup
}

func newHTTPServer(n *Node, address string) *httpServer {
	h := &httpServer{n: n, address: address}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      n.reg,
	}))
	if n.cfg.HTTP.PProf {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	h.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.With(LogKeyComponent, "http").Handler(), slog.LevelDebug),
	}
	return h
}

// start binds the address and serves, over TLS when http.tls is set (the
// handshake runs on each connection's goroutine, bounded by the server's
// read timeouts; the certificate is reloaded with Node.Reload).
func (h *httpServer) start() error {
	ln, err := net.Listen("tcp", h.address)
	if err != nil {
		return fmt.Errorf("ferrite: http: %w", err) // it reads "listen tcp ADDR: ..."
	}
	h.ln = ln
	if t := h.n.sec.httpTLS; t != nil {
		ln = tls.NewListener(ln, t.Config())
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.n.log.Error("http server stopped", LogKeyComponent, "http", "error", err)
		}
	}()
	return nil
}

func (h *httpServer) close(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	if err != nil {
		_ = h.srv.Close()
	}
	h.wg.Wait()
	return err
}

func (h *httpServer) addr() string {
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

// healthz is liveness: the process serves HTTP.
func (h *httpServer) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz is readiness: started, not shutting down, every check passing.
func (h *httpServer) readyz(w http.ResponseWriter, r *http.Request) {
	problems := h.n.readiness(r.Context())
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "problems": problems})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": true})
}
