package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// mqttCommander runs $ferrite/cmd lines as an MQTT 3.1.1 client, whose
// replies come on $ferrite/reply/<client id>.
type mqttCommander struct {
	c       pahov3.Client
	replies *mqttLog
	n       int
}

func newMQTTCommander(t *testing.T, addr string) *mqttCommander {
	t.Helper()
	c := &mqttCommander{c: v3Client(t, addr, "admin"), replies: &mqttLog{}}
	subscribe(t, c.c, c.replies, "$ferrite/reply/admin")
	return c
}

// run sends one command line and decodes its JSON reply.
func (c *mqttCommander) run(t *testing.T, line string) map[string]any {
	t.Helper()
	c.n++
	publish(t, c.c, "$ferrite/cmd", line)
	m := c.replies.wait(t, c.n, "reply to "+line, topicIs("$ferrite/reply/admin"))
	var v map[string]any
	if err := json.Unmarshal(m.Payload(), &v); err != nil {
		t.Fatalf("%s: reply %s: %v", line, m.Payload(), err)
	}
	return v
}

const (
	tmepConfig = "homeassistant/sensor/gw-1_tmep_001/config"
	tmepState  = "ferrite/gw-1/sensor/tmep_001/state"
)

func emptyOn(topic string) func(pahov3.Message) bool {
	return func(m pahov3.Message) bool { return m.Topic() == topic && len(m.Payload()) == 0 }
}

func nonEmptyOn(topic string) func(pahov3.Message) bool {
	return func(m pahov3.Message) bool { return m.Topic() == topic && len(m.Payload()) > 0 }
}

// forgottenTmep starts a node on which Home Assistant saw the typo sensor
// tmep-001 (and temp-001) announced, then forgets it with SENSOR.FORGET.
func forgottenTmep(t *testing.T) (*Node, *mqttLog, pahov3.Client, *mqttCommander) {
	t.Helper()
	n := startHANode(t, "")
	addr := n.Broker().Addr()
	ha := &mqttLog{}
	subscribe(t, v3Client(t, addr, "home-assistant"), ha, "homeassistant/#", "ferrite/#")
	dev := v3Client(t, addr, "devices")
	publish(t, dev, "sensors/tmep-001", "21")
	publish(t, dev, "sensors/temp-001", "20")
	haConfigOf(t, ha.wait(t, 1, "tmep-001 config", nonEmptyOn(tmepConfig)))
	ha.wait(t, 1, "tmep-001 state", nonEmptyOn(tmepState))
	ha.wait(t, 1, "temp-001 config", nonEmptyOn("homeassistant/sensor/gw-1_temp_001/config"))

	cmd := newMQTTCommander(t, addr)
	r := cmd.run(t, "SENSOR.FORGET tmep-001")
	if r["sensor"] != "tmep-001" || r["readings"] != 1.0 || r["raw_readings_dropped"] != 1.0 || r["buckets_flushed"] != 1.0 ||
		r["buckets_kept"] != 1.0 || r["bucket_keys"] != "agg/gw-1/tmep-001/<width>/<start>" {
		t.Fatalf("SENSOR.FORGET reply %v", r)
	}
	return n, ha, dev, cmd
}

// SENSOR.FORGET clears the entity (an empty retained config, the way MQTT
// discovery removes one, and an empty retained state); a new subscriber
// gets neither, and Home Assistant's birth does not bring them back.
func TestHomeAssistantForgetSensor(t *testing.T) {
	n, ha, dev, cmd := forgottenTmep(t)
	addr := n.Broker().Addr()
	ha.wait(t, 1, "empty tmep-001 config", emptyOn(tmepConfig))
	ha.wait(t, 1, "empty tmep-001 state", emptyOn(tmepState))

	// One SUBSCRIBE: mochi sends the retained messages filter by filter,
	// so once the availability (last filter) has arrived, the others would
	// have too.
	late := &mqttLog{}
	subscribe(t, v3Client(t, addr, "late"), late, tmepConfig, tmepState, "ferrite/gw-1/availability")
	late.wait(t, 1, "retained availability", topicIs("ferrite/gw-1/availability"))
	if c := late.count(topicIs(tmepConfig)) + late.count(topicIs(tmepState)); c != 0 {
		t.Fatalf("a new subscriber got %d retained messages of the forgotten sensor", c)
	}

	// Home Assistant's birth republishes every config: the gateway's come
	// last, so once they are back the forgotten one would have been too.
	const gwConfig = "homeassistant/sensor/gw-1_gateway_resource_level/config"
	before, configs := ha.count(topicIs(gwConfig)), ha.count(nonEmptyOn(tmepConfig))
	publish(t, dev, "homeassistant/status", "online")
	ha.wait(t, before+1, "gateway config after the birth", topicIs(gwConfig))
	ha.wait(t, 2, "temp-001 config after the birth", nonEmptyOn("homeassistant/sensor/gw-1_temp_001/config"))
	if got := ha.count(nonEmptyOn(tmepConfig)); got != configs {
		t.Fatalf("the birth announced the forgotten sensor again (%d configs, had %d)", got, configs)
	}

	list := cmd.run(t, "SENSOR.STATS tmep-001")
	if e, _ := list["error"].(string); !strings.Contains(e, "unknown sensor") {
		t.Fatalf("SENSOR.STATS of the forgotten sensor: %v", list)
	}
	r := cmd.run(t, "SENSOR.FORGET tmep-001")
	if e, _ := r["error"].(string); !strings.Contains(e, "unknown sensor") || !strings.Contains(e, "tmep-001") {
		t.Fatalf("SENSOR.FORGET of an unknown sensor: %v", r)
	}
	for outcome, want := range map[string]float64{"ok": 1, "error": 1} {
		labels := map[string]string{"command": "SENSOR.FORGET", "outcome": outcome}
		if got := metricValue(t, n, "ferrite_commands_total", labels); got != want {
			t.Errorf("ferrite_commands_total%v = %v, want %v", labels, got, want)
		}
	}
}

// A forgotten sensor that publishes again is a new sensor: announced
// again, its state counted from zero.
func TestHomeAssistantForgottenSensorComesBack(t *testing.T) {
	_, ha, dev, _ := forgottenTmep(t)
	ha.wait(t, 1, "empty tmep-001 config", emptyOn(tmepConfig))
	publish(t, dev, "sensors/tmep-001", "22")
	c := haConfigOf(t, ha.wait(t, 2, "tmep-001 config again", nonEmptyOn(tmepConfig)))
	if c["unique_id"] != "ferrite_gw_1_tmep_001" {
		t.Errorf("unique_id %v", c["unique_id"])
	}
	m := ha.wait(t, 1, "tmep-001 state of its new life", func(m pahov3.Message) bool {
		return m.Topic() == tmepState && strings.HasPrefix(string(m.Payload()), `{"value":22,`)
	})
	var st struct {
		Attributes map[string]any `json:"attributes"`
	}
	if err := json.Unmarshal(m.Payload(), &st); err != nil || st.Attributes["readings"] != 1.0 || st.Attributes["min"] != 22.0 {
		t.Fatalf("state %s (%v)", m.Payload(), err)
	}
}

// A clear the broker refuses is not reported as done: SENSOR.FORGET's
// reply says so, and the next poll tries again.
func TestHAForgottenReportsARefusedClear(t *testing.T) {
	ret := &retainedMap{m: map[string][]byte{}}
	var mu sync.Mutex
	refuse := true
	publish := func(topic string, payload []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse && len(payload) == 0 {
			return errors.New("quota exceeded")
		}
		return ret.publish(topic, payload)
	}
	src := &lockedSource{haTestSource: haTestSource{infos: []ingest.SensorInfo{{ID: "x", Count: 1}}}}
	p, err := newHAPublisher(DefaultConfig().HomeAssistant, "gw", "m", src, publish, 0, quietLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := p.forgotten(ctx, "nothing"); err != nil { // the first poll announced x
		t.Fatal(err)
	}
	src.set(nil) // SENSOR.FORGET x
	if err := p.forgotten(ctx, "x"); err == nil || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("refused clear: %v", err)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	if err := p.forgotten(ctx, "x"); err != nil {
		t.Fatalf("clear retried: %v", err)
	}
	if cs := ret.configsNaming("x"); len(cs) != 0 {
		t.Fatalf("still retained: %v", cs)
	}
}

// lockedSource is haTestSource safe for a running publisher.
type lockedSource struct {
	haTestSource
	mu sync.Mutex
}

func (s *lockedSource) set(infos []ingest.SensorInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.infos = infos
}

func (s *lockedSource) Sensors() []ingest.SensorInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infos
}
