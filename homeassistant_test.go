package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/ferrite-edge/ferrite/ingest"
)

// Home Assistant ignores discovery topics outside [a-zA-Z0-9_-] (the
// audit found every sensor of a "gw.kitchen" gateway ignored).
func TestHANodeID(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	seen := map[string]string{}
	for _, node := range []string{"gw-1", "gw_1", "GW-1", "gw.1", "gw:1", "küche", "edge-001"} {
		id := haNodeID(node)
		if !valid.MatchString(id) {
			t.Errorf("%q: %q is not a valid discovery id", node, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%q and %q share %q", node, other, id)
		}
		seen[id] = node
	}
	if haNodeID("edge-001") != "edge-001" {
		t.Error("a valid node id is changed")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		sensor, unit string
		want         haClass
	}{
		{"temp-002", "celsius", haClass{"°C", "temperature", "measurement"}},
		{"senml/room", "Cel", haClass{"°C", "temperature", "measurement"}},
		{"plug/AM2301/Temperature", "C", haClass{"°C", "temperature", "measurement"}},
		{"porch", "F", haClass{"°F", "temperature", "measurement"}},
		{"living_room/temperature", "°C", haClass{"°C", "temperature", "measurement"}},
		{"living_room/humidity", "%", haClass{"%", "humidity", "measurement"}},
		{"meter/rh", "%RH", haClass{"%", "humidity", "measurement"}},
		{"living_room/battery", "%", haClass{"%", "battery", "measurement"}},
		{"pot/soil_moisture", "%", haClass{"%", "moisture", "measurement"}},
		{"valve/position", "%", haClass{"%", "", "measurement"}},
		{"weather/pressure", "hPa", haClass{"hPa", "pressure", "measurement"}},
		{"plug/ENERGY/Power", "", haClass{"W", "power", "measurement"}},
		{"plug/ENERGY/Voltage", "", haClass{"V", "voltage", "measurement"}},
		{"plug/ENERGY/Current", "", haClass{"A", "current", "measurement"}},
		{"plug/ENERGY/Total", "", haClass{"kWh", "energy", "total_increasing"}},
		{"plug/ENERGY/Today", "", haClass{"kWh", "energy", "total_increasing"}},
		{"plug/ENERGY/Yesterday", "", haClass{"kWh", "energy", ""}},
		{"hall/occupancy", "", haClass{"", "", ""}},
		{"door/contact", "", haClass{"", "", ""}},
		{"air/pm25", "\u03bcg/m³", haClass{"µg/m³", "pm25", "measurement"}},
		{"meter/energy", "kWh", haClass{"kWh", "energy", "total_increasing"}},
		// Milli and mega are told apart by case (the audit saw a battery's
		// 3700 mWh announced as 3700 MWh).
		{"plant/energy", "MWh", haClass{"MWh", "energy", "total_increasing"}},
		{"pack/capacity", "mWh", haClass{"mWh", "", "measurement"}},
		{"pack/capacity", "mwh", haClass{"mwh", "", "measurement"}},
		{"meter-1/voltage", "V", haClass{"V", "voltage", "measurement"}},
		{"sensor/voltage", "mV", haClass{"mV", "voltage", "measurement"}},
		{"meter-1/current", "A", haClass{"A", "current", "measurement"}},
		{"hall/illuminance_lux", "lx", haClass{"lx", "illuminance", "measurement"}},
		{"office/co2", "ppm", haClass{"ppm", "carbon_dioxide", "measurement"}},
		{"office/voc", "ppm", haClass{"ppm", "", "measurement"}},
		{"air/pm25", "µg/m³", haClass{"µg/m³", "pm25", "measurement"}},
		{"wifi/rssi", "dBm", haClass{"dBm", "signal_strength", "measurement"}},
		{"living_room/linkquality", "lqi", haClass{"lqi", "", "measurement"}},
		{"temp-001", "", haClass{"", "", "measurement"}},
		{"room/temperature", "", haClass{"", "", "measurement"}}, // °C or °F: not guessed
	} {
		if got := classify(tc.sensor, tc.unit); got != tc.want {
			t.Errorf("classify(%q, %q) = %+v, want %+v", tc.sensor, tc.unit, got, tc.want)
		}
	}
}

func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"temp-001":                "temp_001",
		"plug/AM2301/Temperature": "plug_am2301_temperature",
		"/a//b/":                  "a_b",
		"Küche Temp":              "k_che_temp",
		"a+b#c":                   "a_b_c",
		"___":                     "sensor_" + shortHash("___"),
		strings.Repeat("x", 70):   strings.Repeat("x", maxSlug) + "_" + shortHash(strings.Repeat("x", 70)),
	} {
		if got := slugify(in); got != want {
			t.Errorf("slugify(%q) = %q, want %q", in, got, want)
		}
	}
}

// mqttLog records what a paho client receives.
type mqttLog struct {
	mu   sync.Mutex
	msgs []pahov3.Message
}

func (l *mqttLog) add(_ pahov3.Client, m pahov3.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, m)
}

// count returns how many messages match.
func (l *mqttLog) count(match func(pahov3.Message) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if match(m) {
			n++
		}
	}
	return n
}

// wait polls until at least n messages match and returns the last of them.
func (l *mqttLog) wait(t *testing.T, n int, what string, match func(pahov3.Message) bool) pahov3.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l.mu.Lock()
		var last pahov3.Message
		c := 0
		for _, m := range l.msgs {
			if match(m) {
				c++
				last = m
			}
		}
		l.mu.Unlock()
		if c >= n {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%d of %d)", what, c, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func topicIs(topic string) func(pahov3.Message) bool {
	return func(m pahov3.Message) bool { return m.Topic() == topic }
}

func v3Client(t *testing.T, addr, id string) pahov3.Client {
	t.Helper()
	o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false)
	c := pahov3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// subscribe subscribes to every filter in one SUBSCRIBE: mochi v2.7.9
// refuses a later SUBSCRIBE whose packet id collides with a QoS 1 message
// in flight towards the client (see startHomeAssistant).
func subscribe(t *testing.T, c pahov3.Client, l *mqttLog, filters ...string) {
	t.Helper()
	fs := make(map[string]byte, len(filters))
	for _, f := range filters {
		fs[f] = 1
	}
	if tok := c.SubscribeMultiple(fs, l.add); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
}

func publish(t *testing.T, c pahov3.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// startTestNode starts a node with yaml (listeners on 127.0.0.1:0, no
// HTTP, a temporary data dir) and closes it at the end of the test.
func startTestNode(t testing.TB, yaml string) *Node {
	t.Helper()
	cfg, err := ParseConfig([]byte(`
broker: {listen: "127.0.0.1:0"}
http: {listen: ""}
`+yaml), "", []string{"FERRITE_DATA_DIR=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func startHANode(t *testing.T, ha string) *Node {
	t.Helper()
	return startTestNode(t, "node_id: gw-1\nhomeassistant: {publish_interval: 100ms, node_name: \"Garage gateway\""+ha+"}\n")
}

// haConfigOf decodes a discovery payload and checks what Home Assistant
// requires of every entity of this gateway.
func haConfigOf(t *testing.T, m pahov3.Message) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(m.Payload(), &c); err != nil {
		t.Fatalf("%s: invalid JSON %q: %v", m.Topic(), m.Payload(), err)
	}
	for _, k := range []string{"name", "unique_id", "object_id", "default_entity_id", "state_topic", "value_template", "availability_topic"} {
		if s, _ := c[k].(string); s == "" {
			t.Errorf("%s: %s missing in %s", m.Topic(), k, m.Payload())
		}
	}
	dev, _ := c["device"].(map[string]any)
	ids, _ := dev["identifiers"].([]any)
	if len(ids) != 1 || ids[0] != "ferrite_gw-1" || dev["name"] != "Garage gateway" ||
		dev["manufacturer"] != "Ferrite Edge" || dev["model"] != "Ferrite Edge gateway" || dev["sw_version"] != Version {
		t.Errorf("%s: device %v", m.Topic(), dev)
	}
	if c["availability_topic"] != "ferrite/gw-1/availability" {
		t.Errorf("%s: availability_topic %v", m.Topic(), c["availability_topic"])
	}
	return c
}

func TestHomeAssistantDiscovery(t *testing.T) {
	n := startHANode(t, "")
	addr := n.Broker().Addr()
	ha := &mqttLog{}
	haClient := v3Client(t, addr, "home-assistant")
	subscribe(t, haClient, ha, "homeassistant/#", "ferrite/#")
	dev := v3Client(t, addr, "devices")
	publish(t, dev, "sensors/temp-002", `{"value":21.5,"unit":"celsius"}`)
	publish(t, dev, "zigbee2mqtt/living_room", `{"temperature":22.1,"humidity":48,"battery":97}`)

	const tempCfg = "homeassistant/sensor/gw-1_temp_002/config"
	c := haConfigOf(t, ha.wait(t, 1, "temp-002 config", topicIs(tempCfg)))
	if c["name"] != "temp-002" || c["unique_id"] != "ferrite_gw_1_temp_002" || c["object_id"] != "gw_1_temp_002" ||
		c["default_entity_id"] != "sensor.gw_1_temp_002" || c["device_class"] != "temperature" ||
		c["unit_of_measurement"] != "°C" || c["state_class"] != "measurement" ||
		c["state_topic"] != "ferrite/gw-1/sensor/temp_002/state" || c["json_attributes_topic"] != c["state_topic"] ||
		c["value_template"] != "{{ value_json.value }}" || c["json_attributes_template"] != "{{ value_json.attributes | tojson }}" {
		t.Errorf("temp-002 config %s", ha.wait(t, 1, "", topicIs(tempCfg)).Payload())
	}
	h := haConfigOf(t, ha.wait(t, 1, "humidity config", topicIs("homeassistant/sensor/gw-1_living_room_humidity/config")))
	if h["device_class"] != "humidity" || h["unit_of_measurement"] != "%" {
		t.Errorf("humidity config %v", h)
	}

	// The state: the latest value, the aggregates and the open bucket.
	sm := ha.wait(t, 1, "temp-002 state", topicIs("ferrite/gw-1/sensor/temp_002/state"))
	var st struct {
		Value      float64        `json:"value"`
		Time       string         `json:"ts"`
		Attributes map[string]any `json:"attributes"`
	}
	if err := json.Unmarshal(sm.Payload(), &st); err != nil {
		t.Fatal(err)
	}
	if a := st.Attributes; st.Value != 21.5 || st.Time == "" || a["sensor"] != "temp-002" || a["node"] != "gw-1" ||
		a["readings"] != 1.0 || a["unit"] != "celsius" || a["bucket_count"] != 1.0 || a["bucket_width"] != "1m" ||
		a["bucket_avg"] != 21.5 || a["bucket_start"] == nil {
		t.Errorf("state %s", sm.Payload())
	}

	// Gateway entities: resource level as an enum, sync status (no hub: offline).
	rl := haConfigOf(t, ha.wait(t, 1, "resource level config", topicIs("homeassistant/sensor/gw-1_gateway_resource_level/config")))
	if rl["device_class"] != "enum" || rl["entity_category"] != "diagnostic" || len(rl["options"].([]any)) != 4 {
		t.Errorf("resource level config %v", rl)
	}
	link := haConfigOf(t, ha.wait(t, 1, "hub link config", topicIs("homeassistant/binary_sensor/gw-1_gateway_hub_link/config")))
	if link["device_class"] != "connectivity" || link["default_entity_id"] != "binary_sensor.gw_1_gateway_hub_link" {
		t.Errorf("hub link config %v", link)
	}
	gm := ha.wait(t, 1, "gateway state", topicIs("ferrite/gw-1/gateway/state"))
	var gs map[string]any
	if err := json.Unmarshal(gm.Payload(), &gs); err != nil || gs["sync_status"] != "offline" || gs["hub_connected"] != false ||
		gs["pending_ops"] == nil || gs["last_sync"] != nil || gs["resource_level"] == nil {
		t.Errorf("gateway state %s (%v)", gm.Payload(), err)
	}

	// A client that subscribes later gets every config, the states and
	// the availability, retained.
	late := &mqttLog{}
	subscribe(t, v3Client(t, addr, "late"), late, "#")
	for _, topic := range []string{tempCfg, "ferrite/gw-1/sensor/temp_002/state", "ferrite/gw-1/gateway/state"} {
		if m := late.wait(t, 1, "retained "+topic, topicIs(topic)); !m.Retained() {
			t.Errorf("%s not retained", topic)
		}
	}
	if m := late.wait(t, 1, "availability", topicIs("ferrite/gw-1/availability")); !m.Retained() || string(m.Payload()) != "online" {
		t.Errorf("availability %q retained=%v", m.Payload(), m.Retained())
	}

	// Home Assistant's birth: every config and state again.
	before := ha.count(topicIs(tempCfg))
	publish(t, dev, "homeassistant/status", "online")
	ha.wait(t, before+1, "temp-002 config again after the birth", topicIs(tempCfg))
	ha.wait(t, 2, "temp-002 state again after the birth", topicIs("ferrite/gw-1/sensor/temp_002/state"))
	if got := metricValue(t, n, "ferrite_homeassistant_republish_total", map[string]string{"reason": "birth"}); got < 1 {
		t.Errorf("republish counter %v", got)
	}

	// A new sensor appears without a restart; its state follows changes.
	publish(t, dev, "sensors/new-one", "7")
	haConfigOf(t, ha.wait(t, 1, "new sensor config", topicIs("homeassistant/sensor/gw-1_new_one/config")))
	publish(t, dev, "sensors/new-one", "8")
	ha.wait(t, 1, "new sensor state 8", func(m pahov3.Message) bool {
		return m.Topic() == "ferrite/gw-1/sensor/new_one/state" && strings.HasPrefix(string(m.Payload()), `{"value":8,`)
	})

	// A graceful stop says offline.
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ha.wait(t, 1, "availability offline", func(m pahov3.Message) bool {
		return m.Topic() == "ferrite/gw-1/availability" && string(m.Payload()) == "offline"
	})
}

// metricValue sums the samples of a metric family whose labels include
// the given ones.
func metricValue(t *testing.T, n *Node, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// Sensors whose slugs collide get distinct ids (the first by id keeps the
// plain slug); beyond max_sensors nothing is announced, and it is counted.
func TestHomeAssistantSlugCollisionsAndLimit(t *testing.T) {
	n := startHANode(t, ", max_sensors: 3")
	ha := &mqttLog{}
	subscribe(t, v3Client(t, n.Broker().Addr(), "ha"), ha, "homeassistant/sensor/#")
	// One message: the five sensors are registered together.
	publish(t, v3Client(t, n.Broker().Addr(), "dev"), "zigbee2mqtt/dev", `{"a b":1,"a_b":2,"A_b":3,"c":4,"d":5}`)
	isSensorConfig := func(m pahov3.Message) bool { return !strings.Contains(m.Topic(), "_gateway_") }
	ha.wait(t, 3, "three sensor configs", isSensorConfig)
	want := map[string]string{
		"homeassistant/sensor/gw-1_dev_a_b/config":                              "dev/A_b",
		"homeassistant/sensor/gw-1_dev_a_b_" + shortHash("dev/a b") + "/config": "dev/a b",
		"homeassistant/sensor/gw-1_dev_a_b_" + shortHash("dev/a_b") + "/config": "dev/a_b",
	}
	for topic, name := range want {
		if c := haConfigOf(t, ha.wait(t, 1, topic, topicIs(topic))); c["name"] != name {
			t.Errorf("%s: name %v, want %s", topic, c["name"], name)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, n, "ferrite_homeassistant_sensors_skipped", nil) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("skipped sensors: %v", metricValue(t, n, "ferrite_homeassistant_sensors_skipped", nil))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := ha.count(isSensorConfig); got != 3 {
		t.Errorf("%d sensor configs, want 3", got)
	}
}

func TestHomeAssistantDisabled(t *testing.T) {
	n := startTestNode(t, "homeassistant: {enabled: false}\n")
	if v := metricValue(t, n, "ferrite_homeassistant_messages_total", nil); v != 0 {
		t.Fatalf("messages %v", v)
	}
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "ferrite_homeassistant_") {
			t.Errorf("%s registered while disabled", mf.GetName())
		}
	}
}

func TestHomeAssistantConfig(t *testing.T) {
	c := DefaultConfig().HomeAssistant
	if !c.Enabled || c.DiscoveryPrefix != "homeassistant" || c.StatePrefix != "ferrite" || c.PublishInterval.D() != 5*time.Second || c.MaxSensors != 1000 {
		t.Fatalf("defaults %+v", c)
	}
	_, err := ParseConfig([]byte(`
node_id: n
homeassistant:
  discovery_prefix: "ha/#"
  state_prefix: "$x"
  publish_interval: 10ms
  max_sensors: 0
`), "bad.yaml", nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 4 {
		t.Fatalf("%v", err)
	}
	for _, key := range []string{"discovery_prefix", "state_prefix", "publish_interval", "max_sensors"} {
		if !strings.Contains(err.Error(), "homeassistant."+key) {
			t.Errorf("no problem for %s in %v", key, err)
		}
	}
	if _, err := ParseConfig(nil, "", []string{"FERRITE_HOMEASSISTANT_ENABLED=false", "FERRITE_NODE_ID=n"}); err != nil {
		t.Fatal(err)
	}
}

// Two ids with the same slug keep their slugs across restarts: the one seen
// first keeps the plain slug, whatever the ids' order (found by the HA
// audit: unique_ids swapped after a restart).
func TestHomeAssistantSlugsFollowFirstSeen(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	infos := []ingest.SensorInfo{ // sorted by id, as the source lists them
		{ID: "COLL_X", FirstSeen: t0.Add(time.Second)},
		{ID: "Coll_X", FirstSeen: t0},
	}
	for _, order := range [][]ingest.SensorInfo{infos, {infos[1]}} {
		p := &haPublisher{cfg: HomeAssistantConfig{MaxSensors: 10}, sensors: map[string]*haSensor{},
			slugs: map[string]string{}, skipped: map[string]bool{}}
		p.register(order) // a restart sees both; the live node saw Coll_X first
		p.register(infos)
		if got := p.sensors["Coll_X"].slug; got != "coll_x" {
			t.Errorf("Coll_X (seen first) has slug %q", got)
		}
		if got := p.sensors["COLL_X"].slug; got != "coll_x_"+shortHash("COLL_X") {
			t.Errorf("COLL_X has slug %q", got)
		}
	}
}
