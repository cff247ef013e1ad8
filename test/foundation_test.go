// Package test holds Ferrite's black-box end-to-end tests: the real binary,
// real MQTT clients (paho 3.1.1 and 5, mosquitto clients when installed),
// real sockets and signals.
package test

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

func TestPubSubAcrossProtocolVersions(t *testing.T) {
	p := e2e.Start(t, "")
	// 3.1.1 subscriber, MQTT 5 publisher.
	got3 := make(chan pahov3.Message, 1)
	sub3 := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "sub3")
	sub3.Subscribe("sensors/#", 1, func(_ pahov3.Client, m pahov3.Message) { got3 <- m }).WaitTimeout(e2e.Timeout)
	pub5 := e2e.V5Client(t, p.MQTTAddr(), "pub5", nil)
	if _, err := pub5.Publish(context.Background(), &paho.Publish{Topic: "sensors/t1", QoS: 1, Payload: []byte("22.5")}); err != nil {
		t.Fatal(err)
	}
	if m := e2e.Receive(t, got3, "v5→v3 message"); m.Topic() != "sensors/t1" || string(m.Payload()) != "22.5" {
		t.Fatalf("got %s %q", m.Topic(), m.Payload())
	}
	// MQTT 5 subscriber, 3.1.1 publisher over WebSocket.
	got5 := make(chan *paho.Publish, 1)
	sub5 := e2e.V5Client(t, p.MQTTAddr(), "sub5", got5)
	e2e.V5Subscribe(t, sub5, "sensors/+/state", 1)
	ws := e2e.V3Client(t, "ws://"+p.Info.WebSocket+"/mqtt", "pub-ws")
	ws.Publish("sensors/t2/state", 1, false, "on").WaitTimeout(e2e.Timeout)
	if m := e2e.Receive(t, got5, "ws→v5 message"); m.Topic != "sensors/t2/state" || string(m.Payload) != "on" {
		t.Fatalf("got %s %q", m.Topic, m.Payload)
	}
}

func TestEdgeStatusMQTT5ResponseTopic(t *testing.T) {
	p := e2e.Start(t, "")
	recv := make(chan *paho.Publish, 1)
	c := e2e.V5Client(t, p.MQTTAddr(), "ops", recv)
	e2e.V5Subscribe(t, c, "reply/me", 1)
	_, err := c.Publish(context.Background(), &paho.Publish{
		Topic: "$ferrite/cmd", QoS: 1, Payload: []byte("EDGE.STATUS"),
		Properties: &paho.PublishProperties{ResponseTopic: "reply/me", CorrelationData: []byte("req-42")},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := e2e.Receive(t, recv, "EDGE.STATUS reply")
	if string(m.Properties.CorrelationData) != "req-42" {
		t.Fatalf("correlation data %q", m.Properties.CorrelationData)
	}
	var st map[string]any
	if err := json.Unmarshal(m.Payload, &st); err != nil {
		t.Fatalf("reply %q: %v", m.Payload, err)
	}
	broker, _ := st["broker"].(map[string]any)
	if st["node_id"] != "e2e-node" || st["mode"] != "edge" || st["version"] == nil || st["uptime_seconds"] == nil ||
		broker == nil || broker["clients_connected"].(float64) < 1 || broker["messages_received"] == nil {
		t.Fatalf("status %s", m.Payload)
	}
}

func TestEdgeStatusMQTT311Fallback(t *testing.T) {
	p := e2e.Start(t, "")
	c := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "gw-7")
	got := make(chan pahov3.Message, 2)
	c.Subscribe("$ferrite/reply/gw-7", 1, func(_ pahov3.Client, m pahov3.Message) { got <- m }).WaitTimeout(e2e.Timeout)
	c.Publish("$ferrite/cmd", 1, false, "EDGE.STATUS").WaitTimeout(e2e.Timeout)
	var st map[string]any
	if m := e2e.Receive(t, got, "3.1.1 reply"); json.Unmarshal(m.Payload(), &st) != nil || st["node_id"] != "e2e-node" {
		t.Fatalf("reply %q", m.Payload())
	}
	c.Publish("$ferrite/cmd", 1, false, `NOPE "unterminated`).WaitTimeout(e2e.Timeout)
	if m := e2e.Receive(t, got, "error reply"); !strings.Contains(string(m.Payload()), `"error"`) {
		t.Fatalf("error reply %q", m.Payload())
	}
}

func TestMosquittoClients(t *testing.T) {
	for _, c := range []string{"mosquitto_rr", "mosquitto_pub", "mosquitto_sub"} {
		if !e2e.HasCommand(c) {
			t.Skipf("%s not on PATH (apt-get install mosquitto-clients; CI installs it)", c)
		}
	}
	p := e2e.Start(t, "")
	port := e2e.Port(p.MQTTAddr())
	out, err := exec.Command("mosquitto_rr", "-h", "127.0.0.1", "-p", port, "-t", "$ferrite/cmd", "-e", "reply/me",
		"-m", "EDGE.STATUS", "-W", "10").Output()
	if err != nil {
		t.Fatalf("mosquitto_rr: %v", err)
	}
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil || st["node_id"] != "e2e-node" {
		t.Fatalf("mosquitto_rr printed %q (%v)", out, err)
	}
	// mosquitto_sub sees what mosquitto_pub sends (retained, so the order
	// of the two does not matter).
	if err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "sensors/t1", "-m", "22.5", "-r").Run(); err != nil {
		t.Fatal(err)
	}
	sub := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "sensors/#", "-C", "1", "-W", "10", "-v")
	stdout, _ := sub.StdoutPipe()
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := io.ReadAll(stdout)
	_ = sub.Wait()
	if strings.TrimSpace(string(line)) != "sensors/t1 22.5" {
		t.Fatalf("mosquitto_sub printed %q", line)
	}
}

// Garbage and the packets that crash mochi v2.7.9 end only their own
// connection: the process keeps serving everyone else.
func TestHostileBytesLeaveBrokerServing(t *testing.T) {
	p := e2e.Start(t, "")
	got := make(chan pahov3.Message, 1)
	sub := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "bystander")
	sub.Subscribe("alive", 1, func(_ pahov3.Client, m pahov3.Message) { got <- m }).WaitTimeout(e2e.Timeout)

	connectV5 := []byte{0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'x'}
	attacks := [][]byte{
		append(append([]byte{}, connectV5...), 0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00), // the hazard SUBSCRIBE
		{0x10, 0xff, 0xff, 0xff, 0x7f},                     // CONNECT declaring 256 MiB
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),        // not MQTT at all
		append(append([]byte{}, connectV5...), 0x30, 0xff), // truncated length after CONNECT
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		junk := make([]byte, 1+rng.IntN(512))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		attacks = append(attacks, append(append([]byte{}, connectV5...), junk...), junk)
	}
	for _, a := range attacks {
		c, err := net.Dial("tcp", p.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(a)
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(e2e.Timeout))
		_, _ = io.Copy(io.Discard, c) // until the broker closes it
		c.Close()
	}
	if !p.Alive() {
		t.Fatalf("ferrite died:\n%s", p.Output())
	}
	pub := e2e.V5Client(t, p.MQTTAddr(), "after-attack", nil)
	if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: "alive", QoS: 1, Payload: []byte("yes")}); err != nil {
		t.Fatal(err)
	}
	if m := e2e.Receive(t, got, "message after the attacks"); string(m.Payload()) != "yes" {
		t.Fatalf("payload %q", m.Payload())
	}
	resp, err := http.Get("http://" + p.Info.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `ferrite_broker_packets_rejected_total{reason="panic"} 1`) {
		t.Fatalf("hazard packet not counted:\n%s", grep(string(body), "packets_rejected"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestSignalsExitZeroInTime(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := e2e.Start(t, "")
			e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "connected-during-shutdown")
			silent, err := net.Dial("tcp", p.MQTTAddr()) // never sends CONNECT
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			if code := p.Stop(t, sig, 10*time.Second); code != 0 {
				t.Fatalf("exit code %d:\n%s", code, p.Output())
			}
			if _, err := os.Stat(filepath.Join(p.DataDir, "run", "listeners.json")); !os.IsNotExist(err) {
				t.Fatalf("listeners.json left behind: %v", err)
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	p := e2e.Start(t, "")
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  `"ready":true`,
		"/metrics": "ferrite_broker_clients_connected",
	} {
		resp, err := http.Get("http://" + p.Info.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("node_id: n1\nedge:\n  sync_interval: 30parsecs\n  hub_ulr: mqtt://hub\n"), 0o600)
	code, _, stderr := e2e.RunCLI(t, nil, "--check-config", "--config", bad)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, stderr)
	}
	for _, want := range []string{"line 3: edge.sync_interval", "30parsecs", "line 4: edge.hub_ulr: unknown key"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// Environment problems are named by variable.
	code, _, stderr = e2e.RunCLI(t, []string{"FERRITE_EDGE_SYNC_POLICY=sometimes"}, "--check-config")
	if code != 2 || !strings.Contains(stderr, "FERRITE_EDGE_SYNC_POLICY: edge.sync_policy") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	root, _ := e2e.ModuleRoot()
	for _, f := range []string{"edge.yaml", "hub.yaml", "demo.yaml"} {
		code, out, stderr := e2e.RunCLI(t, nil, "--check-config", "--config", filepath.Join(root, "configs", f))
		if code != 0 || !strings.Contains(out, "configuration OK") {
			t.Errorf("%s: exit %d\n%s%s", f, code, out, stderr)
		}
	}
	if code, out, _ := e2e.RunCLI(t, nil, "--version"); code != 0 || !strings.HasPrefix(out, "ferrite ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if code, _, _ := e2e.RunCLI(t, nil, "--no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code, _, _ := e2e.RunCLI(t, nil, "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 {
		t.Errorf("missing config: exit %d", code)
	}
}

// The shipped configs run as they are (ports moved to 0 so tests do not
// collide); the edge's hub is not running, and it must not matter.
func TestShippedConfigsRun(t *testing.T) {
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"edge.yaml", "hub.yaml"} {
		t.Run(f, func(t *testing.T) {
			cfg, err := os.ReadFile(filepath.Join(root, "configs", f))
			if err != nil {
				t.Fatal(err)
			}
			p := e2e.Start(t, string(cfg), "FERRITE_BROKER_LISTEN=127.0.0.1:0", "FERRITE_BROKER_WEBSOCKET=",
				"FERRITE_HTTP_LISTEN=127.0.0.1:0")
			e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "probe")
			if code := p.Stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
		})
	}
}

// A port already in use is a runtime failure: exit 1 with the reason.
func TestPortInUseExitsOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := e2e.RunCLI(t, []string{"FERRITE_DATA_DIR=" + t.TempDir(), "FERRITE_BROKER_LISTEN=" + ln.Addr().String(),
		"FERRITE_HTTP_LISTEN=127.0.0.1:0"})
	if code != 1 || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "listen tcp "+ln.Addr().String()); n != 1 {
		t.Errorf("the address is named %d times, want once:\n%s", n, stderr)
	}
}

// After a crash (SIGKILL) the node restarts on the same data dir: the stale
// listeners.json is replaced.
func TestRestartAfterKill(t *testing.T) {
	p := e2e.Start(t, "")
	if code := p.Stop(t, syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Fatalf("exit code after SIGKILL: %d", code)
	}
	q := p.Restart(t)
	e2e.V3Client(t, "tcp://"+q.MQTTAddr(), "after-restart")
	if code := q.Stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// Retained messages survive a restart, also after kill -9 once a later
// durable write (here a QoS 1 reading) has synced the log they are in.
func TestRetainedAfterKill(t *testing.T) {
	p := e2e.Start(t, "")
	c := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "retainer")
	for _, m := range []struct {
		topic, payload string
		retain         bool
	}{
		{"home/light/state", "ON", true},
		{"home/door/state", "open", true},
		{"home/door/state", "", true}, // clears it
		{"sensors/temp-001", "21.5", false},
	} {
		if tok := c.Publish(m.topic, 1, m.retain, m.payload); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m.topic, tok.Error())
		}
	}
	p.Stop(t, syscall.SIGKILL, e2e.Timeout)
	q := p.Restart(t)
	expectRetained := func(p *e2e.Process) {
		t.Helper()
		recv := make(chan *paho.Publish, 8)
		sub := e2e.V5Client(t, p.MQTTAddr(), "reader", recv)
		e2e.V5Subscribe(t, sub, "home/#", 1)
		m := e2e.Receive(t, recv, "retained message")
		if m.Topic != "home/light/state" || string(m.Payload) != "ON" || !m.Retain {
			t.Fatalf("got %s %q retain=%v", m.Topic, m.Payload, m.Retain)
		}
		// Nothing else is retained under home/: the next message is live.
		pc := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "marker")
		if tok := pc.Publish("home/marker", 1, false, "m"); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if m := e2e.Receive(t, recv, "marker"); m.Topic != "home/marker" {
			t.Fatalf("unexpected %s %q", m.Topic, m.Payload)
		}
		_ = sub.Disconnect(&paho.Disconnect{})
		pc.Disconnect(100)
	}
	expectRetained(q)
	if code := q.Stop(t, syscall.SIGTERM, e2e.Timeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	expectRetained(q.Restart(t))
}

// A persistent MQTT 3.1.1 session (clean session off, as mosquitto_sub -c
// makes) survives a restart of the gateway: its subscription, and a QoS 1
// message published while it was away is delivered when it comes back.
func TestPersistentSessionAfterRestart(t *testing.T) {
	p := e2e.Start(t, "")
	got := make(chan pahov3.Message, 4)
	connect := func(addr string) pahov3.Client {
		t.Helper()
		o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("keeper").
			SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
			SetDefaultPublishHandler(func(_ pahov3.Client, m pahov3.Message) { got <- m })
		c := pahov3.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		return c
	}
	c := connect(p.MQTTAddr())
	if tok := c.Subscribe("alerts/#", 1, nil); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(100)
	pub := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "publisher")
	if tok := pub.Publish("alerts/door", 1, false, "opened at night"); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub.Disconnect(100)
	if code := p.Stop(t, syscall.SIGTERM, e2e.Timeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	q := p.Restart(t)
	c = connect(q.MQTTAddr())
	defer c.Disconnect(100)
	if m := e2e.Receive(t, got, "message queued before the restart"); m.Topic() != "alerts/door" || string(m.Payload()) != "opened at night" {
		t.Fatalf("got %s %q", m.Topic(), m.Payload())
	}
	pub = e2e.V3Client(t, "tcp://"+q.MQTTAddr(), "publisher")
	if tok := pub.Publish("alerts/window", 1, false, "closed"); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if m := e2e.Receive(t, got, "message to the restored subscription"); m.Topic() != "alerts/window" {
		t.Fatalf("got %s %q", m.Topic(), m.Payload())
	}
}
