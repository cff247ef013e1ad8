package ferrite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
)

func testConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`
node_id: test-node
broker: {listen: "127.0.0.1:0", websocket: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
`), "", []string{"FERRITE_DATA_DIR=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNodeLifecycle(t *testing.T) {
	cfg := testConfig(t)
	n, err := NewNode(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n.AddStatus("sync", func(context.Context) map[string]any {
		return map[string]any{"sync_status": "offline", "node_id": "hijack"}
	})
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != ErrNodeStarted {
		t.Fatalf("second Start: %v", err)
	}
	info, err := ReadRunFile(cfg.DataDir)
	if err != nil || info.MQTT != n.Broker().Addr() || info.HTTP != n.HTTPAddr() || info.WebSocket == "" {
		t.Fatalf("run file %+v %v", info, err)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"ready":true`, "/metrics": "ferrite_node_ready 1"} {
		body := httpGet(t, "http://"+info.HTTP+path, 200)
		if !strings.Contains(body, want) {
			t.Errorf("%s: %q lacks %q", path, body, want)
		}
	}
	metrics := httpGet(t, "http://"+info.HTTP+"/metrics", 200)
	for _, m := range []string{"ferrite_broker_clients_connected", "ferrite_commands_total", "ferrite_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	res, err := n.Router().Execute(ctx, &broker.Request{Name: "EDGE.STATUS"})
	if err != nil {
		t.Fatal(err)
	}
	st := res.(map[string]any)
	if st["node_id"] != "test-node" || st["mode"] != "edge" || st["sync_status"] != "offline" || st["version"] != Version ||
		!strings.HasPrefix(fmt.Sprint(st["actor"]), "test-node$") {
		t.Fatalf("status %v", st)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Fatal(err)
	}

	// A readiness check that fails turns /readyz to 503.
	n.AddReadyCheck("store", func(context.Context) error { return io.ErrUnexpectedEOF })
	if body := httpGet(t, "http://"+info.HTTP+"/readyz", 503); !strings.Contains(body, "store: unexpected EOF") {
		t.Fatalf("readyz %q", body)
	}

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRunFile(cfg.DataDir); err == nil {
		t.Fatal("run file left behind")
	}
	if _, err := net.Dial("tcp", info.MQTT); err == nil {
		t.Fatal("MQTT port still open")
	}
	if err := n.Close(cctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Start(ctx); err != ErrNodeClosed {
		t.Fatalf("Start after Close: %v", err)
	}
}

func TestNodeStartFailureUnwinds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.HTTP.Listen = ln.Addr().String() // taken: Start fails after the broker started
	n, err := NewNode(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded on a taken port")
	}
	if addr := n.Broker().Addr(); addr != "" {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Fatal("broker left running after a failed Start")
		}
	}
}

func TestNewNodeRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Mode = "satellite"
	if _, err := NewNode(cfg, Options{Logger: quietLogger()}); err == nil {
		t.Fatal("invalid config accepted")
	}
}

func httpGet(t *testing.T, url string, status int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
