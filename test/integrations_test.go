package test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

// recorder keeps what a paho client receives.
type recorder struct {
	mu   sync.Mutex
	msgs []pahov3.Message
}

func (r *recorder) add(_ pahov3.Client, m pahov3.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *recorder) all(match func(pahov3.Message) bool) []pahov3.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []pahov3.Message
	for _, m := range r.msgs {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// await waits until n messages match and returns them.
func (r *recorder) await(t *testing.T, n int, what string, match func(pahov3.Message) bool) []pahov3.Message {
	t.Helper()
	var got []pahov3.Message
	e2e.Eventually(t, what, func() bool {
		got = r.all(match)
		return len(got) >= n
	})
	return got
}

func onTopic(topic string) func(pahov3.Message) bool {
	return func(m pahov3.Message) bool { return m.Topic() == topic }
}

// record subscribes a new client to filters in one SUBSCRIBE (mochi
// v2.7.9 refuses a later SUBSCRIBE whose packet id collides with a QoS 1
// message in flight towards the client).
func record(t *testing.T, url, id string, filters ...string) *recorder {
	t.Helper()
	r := &recorder{}
	fs := make(map[string]byte)
	for _, f := range filters {
		fs[f] = 1
	}
	c := e2e.V3Client(t, url, id)
	if tok := c.SubscribeMultiple(fs, r.add); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return r
}

func pub(t *testing.T, c pahov3.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// haRequired checks a discovery payload: valid JSON with what Home
// Assistant's MQTT sensor needs and the gateway's device block.
func haRequired(t *testing.T, m pahov3.Message, node string) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(m.Payload(), &c); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", m.Topic(), m.Payload(), err)
	}
	for _, k := range []string{"name", "unique_id", "state_topic", "value_template", "availability_topic", "default_entity_id", "object_id"} {
		if s, _ := c[k].(string); s == "" {
			t.Errorf("%s: no %s", m.Topic(), k)
		}
	}
	dev, _ := c["device"].(map[string]any)
	if ids, _ := dev["identifiers"].([]any); len(ids) == 0 || dev["manufacturer"] != "Ferrite Edge" || dev["name"] != node || dev["sw_version"] == nil {
		t.Errorf("%s: device %v", m.Topic(), c["device"])
	}
	return c
}

// Home Assistant discovery on the real binary with its default settings:
// point HA at the gateway, and sensors of every shipped format appear with
// a unit and a device class, retained, republished when HA restarts.
func TestHomeAssistantDiscovery(t *testing.T) {
	p := e2e.Start(t, e2e.DefaultConfig)
	url := "tcp://" + p.MQTTAddr()
	ha := record(t, url, "home-assistant", "homeassistant/#", "ferrite/#")
	dev := e2e.V3Client(t, url, "devices")
	pub(t, dev, "sensors/temp-002", `{"value":21.5,"unit":"celsius"}`)
	pub(t, dev, "zigbee2mqtt/living_room", `{"temperature":22.1,"humidity":48,"battery":97}`)
	pub(t, dev, "tele/plug/SENSOR", `{"Time":"2024-02-19T10:00:00","ENERGY":{"Power":42,"Voltage":230,"Total":12.5},"AM2301":{"Temperature":21,"Humidity":40},"TempUnit":"C"}`)
	pub(t, dev, "senml/meter", `[{"bn":"meter-1/","n":"current","u":"A","v":1.5}]`)

	const pfx = "homeassistant/sensor/e2e-node_"
	for slug, want := range map[string][2]string{
		"temp_002":                {"temperature", "°C"},
		"living_room_temperature": {"temperature", "°C"},
		"living_room_humidity":    {"humidity", "%"},
		"living_room_battery":     {"battery", "%"},
		"plug_energy_power":       {"power", "W"},
		"plug_energy_voltage":     {"voltage", "V"},
		"plug_energy_total":       {"energy", "kWh"},
		"plug_am2301_temperature": {"temperature", "°C"},
		"meter_1_current":         {"current", "A"},
	} {
		msgs := ha.await(t, 1, slug+" config", onTopic(pfx+slug+"/config"))
		c := haRequired(t, msgs[0], "e2e-node")
		if c["device_class"] != want[0] || c["unit_of_measurement"] != want[1] {
			t.Errorf("%s: device_class %v unit %v, want %v", slug, c["device_class"], c["unit_of_measurement"], want)
		}
		// The state topic carries the value the template reads.
		st := ha.await(t, 1, slug+" state", onTopic(c["state_topic"].(string)))
		var s struct {
			Value      *float64       `json:"value"`
			Attributes map[string]any `json:"attributes"`
		}
		if err := json.Unmarshal(st[0].Payload(), &s); err != nil || s.Value == nil || s.Attributes["readings"] == nil {
			t.Errorf("%s: state %s (%v)", slug, st[0].Payload(), err)
		}
	}
	if c := haRequired(t, ha.await(t, 1, "energy", onTopic(pfx+"plug_energy_total/config"))[0], "e2e-node"); c["state_class"] != "total_increasing" {
		t.Errorf("energy state_class %v", c["state_class"])
	}
	haRequired(t, ha.await(t, 1, "sync status", onTopic(pfx+"gateway_sync_status/config"))[0], "e2e-node")

	// Retained: Home Assistant connecting later sees everything.
	late := record(t, url, "home-assistant-later", "homeassistant/#", "ferrite/e2e-node/availability")
	for _, m := range late.await(t, 1, "retained config", onTopic(pfx+"temp_002/config")) {
		if !m.Retained() {
			t.Error("config not retained")
		}
	}
	if m := late.await(t, 1, "availability", onTopic("ferrite/e2e-node/availability"))[0]; !m.Retained() || string(m.Payload()) != "online" {
		t.Errorf("availability %q retained=%v", m.Payload(), m.Retained())
	}

	// Home Assistant restarts: its birth message brings every config again.
	n := len(ha.all(onTopic(pfx + "temp_002/config")))
	pub(t, dev, "homeassistant/status", "online")
	ha.await(t, n+1, "configs republished on the birth", onTopic(pfx+"temp_002/config"))
	ha.await(t, n+1, "gateway configs republished", onTopic(pfx+"gateway_sync_status/config"))

	// A sensor that appears later is announced without a restart.
	pub(t, dev, "sensors/garage-door", "1")
	haRequired(t, ha.await(t, 1, "new sensor", onTopic(pfx+"garage_door/config"))[0], "e2e-node")

	// A graceful stop marks every entity unavailable.
	if code := p.Stop(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	ha.await(t, 1, "offline", func(m pahov3.Message) bool {
		return m.Topic() == "ferrite/e2e-node/availability" && string(m.Payload()) == "offline"
	})
}

// cloudEdge is an edge with 1 s buckets, syncing at once with hubURL.
func cloudEdge(node, hubURL string) string {
	return fmt.Sprintf(`
node_id: %s
broker: {listen: 127.0.0.1:0}
http: {listen: 127.0.0.1:0}
sync: {backoff_min: 50ms, backoff_max: 500ms}
edge: {hub_url: %q, sync_policy: immediate}
ingest: {bucket_widths: [1s], allowed_lateness: 0s}
`, node, hubURL)
}

// feedAndFlush publishes three readings of sensor t1 to an edge and closes
// its open buckets, so that they sync now.
func feedAndFlush(t *testing.T, edge *e2e.Process, values ...float64) {
	t.Helper()
	c := e2e.V3Client(t, "tcp://"+edge.MQTTAddr(), "sensor-t1")
	for _, v := range values {
		pub(t, c, "sensors/t1", fmt.Sprint(v))
	}
	e2e.NewCommander(t, edge.MQTTAddr()).Do(t, "SENSOR.FLUSH")
}

// checkBuckets decodes the bucket messages of node/t1 and checks every
// field of the documented schema (docs/CLOUD.md) and the totals.
func checkBuckets(t *testing.T, msgs []pahov3.Message, node string, values ...float64) {
	t.Helper()
	var count, sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	latest := map[string]map[string]any{} // key → its newest message
	for _, m := range msgs {
		var f map[string]any
		if err := json.Unmarshal(m.Payload(), &f); err != nil {
			t.Fatalf("%s: %q: %v", m.Topic(), m.Payload(), err)
		}
		for k, kind := range map[string]string{
			"schema": "number", "node": "string", "sensor": "string", "width": "string", "width_seconds": "number",
			"start": "time", "start_ts": "number", "end": "time", "end_ts": "number", "count": "number",
			"sum": "number", "min": "number", "max": "number", "avg": "number", "first": "time", "first_ms": "number",
			"last": "time", "last_ms": "number", "key": "string", "merged_at": "time", "merged_at_ms": "number",
		} {
			switch v := f[k].(type) {
			case float64:
				if kind != "number" {
					t.Errorf("%s: %s is a number", m.Payload(), k)
				}
			case string:
				if _, err := time.Parse(time.RFC3339Nano, v); kind == "time" && err != nil {
					t.Errorf("%s: %s: %v", m.Payload(), k, err)
				} else if kind == "number" {
					t.Errorf("%s: %s is a string", m.Payload(), k)
				}
			default:
				t.Errorf("%s: %s missing or %T", m.Payload(), k, v)
			}
		}
		if f["schema"] != 1.0 || f["node"] != node || f["sensor"] != "t1" || f["width"] != "1s" || f["width_seconds"] != 1.0 ||
			f["end_ts"].(float64)-f["start_ts"].(float64) != 1 || m.Topic() != "ferrite/data/"+node+"/t1" {
			t.Errorf("%s: %s", m.Topic(), m.Payload())
		}
		latest[f["key"].(string)] = f
	}
	for _, f := range latest {
		count += f["count"].(float64)
		sum += f["sum"].(float64)
		lo, hi = min(lo, f["min"].(float64)), max(hi, f["max"].(float64))
	}
	var want float64
	for _, v := range values {
		want += v
	}
	if count != float64(len(values)) || sum != want || lo != min(values[0], values[1], values[2]) || hi != max(values[0], values[1], values[2]) {
		t.Errorf("%s: count %v sum %v min %v max %v over %d buckets", node, count, sum, lo, hi, len(latest))
	}
}

// awaitTotal waits until the newest messages of every bucket of node/t1
// add up to n readings.
func awaitTotal(t *testing.T, r *recorder, node string, n float64) []pahov3.Message {
	t.Helper()
	topic := "ferrite/data/" + node + "/t1"
	var got []pahov3.Message
	e2e.Eventually(t, fmt.Sprintf("%s's %v readings at the cloud subscriber", node, n), func() bool {
		got = r.all(onTopic(topic))
		latest := map[string]float64{}
		for _, m := range got {
			var f struct {
				Key   string
				Count float64
			}
			if json.Unmarshal(m.Payload(), &f) == nil {
				latest[f.Key] = f.Count
			}
		}
		total := 0.0
		for _, c := range latest {
			total += c
		}
		return total == n
	})
	return got
}

// A cloud subscriber on the hub's broker reads every edge's merged buckets
// and the nodes' status.
func TestCloudSubscribersReadEveryEdge(t *testing.T) {
	hub := e2e.Start(t, `
node_id: hub
mode: hub
broker: {listen: 127.0.0.1:0}
http: {listen: 127.0.0.1:0}
`)
	hubURL := "mqtt://" + hub.MQTTAddr()
	cloud := record(t, "tcp://"+hub.MQTTAddr(), "dashboard", "ferrite/data/#", "$ferrite/status/+")
	a := e2e.Start(t, cloudEdge("edge-a", hubURL))
	b := e2e.Start(t, cloudEdge("edge-b", hubURL))
	feedAndFlush(t, a, 20.5, 21, 22.5)
	feedAndFlush(t, b, -3, 0, 7.25)
	checkBuckets(t, awaitTotal(t, cloud, "edge-a", 3), "edge-a", 20.5, 21, 22.5)
	checkBuckets(t, awaitTotal(t, cloud, "edge-b", 3), "edge-b", -3, 0, 7.25)
	for _, node := range []string{"edge-a", "edge-b", "hub"} {
		if m := cloud.await(t, 1, node+" status", onTopic("$ferrite/status/"+node)); string(m[len(m)-1].Payload()) != "online" {
			t.Errorf("%s status %q", node, m[len(m)-1].Payload())
		}
	}
	// A dashboard that connects later gets each sensor's newest bucket, retained.
	later := record(t, "tcp://"+hub.MQTTAddr(), "dashboard-later", "ferrite/data/#")
	for _, node := range []string{"edge-a", "edge-b"} {
		if m := later.await(t, 1, node+" retained", onTopic("ferrite/data/"+node+"/t1"))[0]; !m.Retained() {
			t.Errorf("%s: not retained", node)
		}
	}
	// An edge that stops says so.
	if code := a.Stop(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("edge-a exit %d", code)
	}
	cloud.await(t, 1, "edge-a offline", func(m pahov3.Message) bool {
		return m.Topic() == "$ferrite/status/edge-a" && string(m.Payload()) == "offline"
	})
}

// With the hub attached to an external mosquitto (hub.broker_url), the
// cloud subscribers read mosquitto, also when the hub starts before it.
func TestCloudSubscribersThroughMosquitto(t *testing.T) {
	if !e2e.HasCommand("mosquitto") {
		t.Skip("mosquitto not on PATH (apt-get install mosquitto)")
	}
	addr := e2e.FreeAddr(t)
	e2e.Start(t, fmt.Sprintf(`
node_id: hub
mode: hub
broker: {listen: 127.0.0.1:0}
http: {listen: 127.0.0.1:0}
sync: {backoff_min: 50ms, backoff_max: 500ms}
hub: {broker_url: "mqtt://%s"}
`, addr))
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+e2e.Port(addr)+" 127.0.0.1\nallow_anonymous true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mosq := exec.Command("mosquitto", "-c", conf)
	if err := mosq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mosq.Process.Kill(); _ = mosq.Wait() })
	e2e.Eventually(t, "mosquitto accepting", func() bool {
		c := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("probe"))
		tok := c.Connect()
		ok := tok.WaitTimeout(time.Second) && tok.Error() == nil
		if ok {
			c.Disconnect(0)
		}
		return ok
	})
	cloud := record(t, "tcp://"+addr, "dashboard", "ferrite/data/#")
	edge := e2e.Start(t, cloudEdge("edge-m", "mqtt://"+addr))
	feedAndFlush(t, edge, 1, 2, 3)
	checkBuckets(t, awaitTotal(t, cloud, "edge-m", 3), "edge-m", 1, 2, 3)
}

// The systemd unit is valid and hardened (systemd-analyze, where present).
func TestSystemdUnit(t *testing.T) {
	if !e2e.HasCommand("systemd-analyze") {
		t.Skip("systemd-analyze not on PATH")
	}
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "deployments/systemd/ferrite.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists: point it at the build.
	path := filepath.Join(t.TempDir(), "ferrite.service")
	body := strings.ReplaceAll(string(unit), "/usr/local/bin/ferrite", e2e.Binary(t))
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The threshold is in tenths of the printed exposure (0-10 scale):
	// 20 fails above "2.0", well within "OK" (the unit scores 1.2).
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (or no --offline support): %v\n%s", err, out)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=ferrite", "Environment=FERRITE_DATA_DIR=/var/lib/ferrite",
		"Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		if !strings.Contains(body, "\n"+want+"\n") {
			t.Errorf("unit lacks %s", want)
		}
	}
}
