package ferrite

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
)

// SENSOR.FORGET makes the store's deletion durable first and clears the
// Home Assistant entity afterwards. A kill -9 between the two leaves
// exactly the state built here: the sensor gone from the data dir, its
// retained config still in the broker's persisted records. The restarted
// publisher only cleared sensors it announced itself, and SENSOR.FORGET of
// the id answers "unknown sensor", so the entity stayed in Home Assistant
// for good. Start now clears it before it returns.
func TestForgetHAEntityOrphanedByCrashBeforeClear(t *testing.T) {
	dir := t.TempDir()
	const yaml = "node_id: gw-1\nhomeassistant: {publish_interval: 100ms}\n"
	n := startNodeOn(t, dir, yaml)
	addr := n.Broker().Addr()
	ha := &mqttLog{}
	subscribe(t, v3Client(t, addr, "home-assistant"), ha, "homeassistant/#")
	dev := v3Client(t, addr, "devices")
	publish(t, dev, "sensors/tmep-001", "21")
	publish(t, dev, "sensors/temp-001", "20")
	ha.wait(t, 1, "tmep-001 config", nonEmptyOn(tmepConfig))
	ha.wait(t, 1, "temp-001 config", nonEmptyOn("homeassistant/sensor/gw-1_temp_001/config"))
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The durable effect of FORGET's store batch, without the HA clear
	// that a crash right after it prevents.
	forgetInDataDir(t, dir, "gw-1", "tmep-001")

	n2 := startNodeOn(t, dir, yaml)
	addr = n2.Broker().Addr()
	// One SUBSCRIBE: mochi sends the retained messages filter by filter,
	// so once the availability (last filter) has arrived, the configs
	// would have too.
	late := &mqttLog{}
	subscribe(t, v3Client(t, addr, "home-assistant-2"), late, tmepConfig, tmepState,
		"homeassistant/sensor/gw-1_temp_001/config", "homeassistant/sensor/gw-1_gateway_sensors/config",
		"ferrite/gw-1/availability")
	late.wait(t, 1, "retained availability", topicIs("ferrite/gw-1/availability"))
	cmd := newMQTTCommander(t, addr)
	r := cmd.run(t, "SENSOR.FORGET tmep-001")
	if late.count(nonEmptyOn(tmepConfig)) > 0 || late.count(nonEmptyOn(tmepState)) > 0 {
		t.Fatalf("the forgotten sensor's entity is still retained after the restart; SENSOR.FORGET now says %v", r)
	}
	// The registered sensor's entity and the gateway's are untouched
	// (retained, never cleared; the first poll may announce them again).
	for _, topic := range []string{"homeassistant/sensor/gw-1_temp_001/config", "homeassistant/sensor/gw-1_gateway_sensors/config"} {
		if late.count(nonEmptyOn(topic)) == 0 || late.count(emptyOn(topic)) != 0 {
			t.Errorf("%s: %d retained configs, %d clears", topic, late.count(nonEmptyOn(topic)), late.count(emptyOn(topic)))
		}
	}
}

// startNodeOn starts a node on dir (kept across restarts).
func startNodeOn(t *testing.T, dir, yaml string) *Node {
	t.Helper()
	cfg, err := ParseConfig([]byte("broker: {listen: \"127.0.0.1:0\"}\nhttp: {listen: \"\"}\n"+yaml), "",
		[]string{"FERRITE_DATA_DIR=" + dir})
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

// forgetInDataDir runs the ingest side of SENSOR.FORGET (store batch,
// checkpoint) on a stopped node's data dir, with no Home Assistant
// callback: the data dir a kill -9 right after that batch leaves.
func forgetInDataDir(t *testing.T, dir, node, sensor string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := ParseConfig([]byte("node_id: "+node+"\n"), "", []string{"FERRITE_DATA_DIR=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	nn, err := NewNode(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	so, err := nn.storeOptions()
	if err != nil {
		t.Fatal(err)
	}
	so.Logger = quietLogger()
	st, err := store.Open(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := ingest.New(ctx, ingest.Options{Store: ingest.NewStoreBackend(st), TickInterval: -1,
		Aggregator: ingest.AggregatorConfig{Node: node}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Forget(ctx, sensor); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// repair clears only this node's sensor entities whose sensor is gone
// (or registered under another stored slug): not the gateway's, not
// another node's (whose node id makes a topic this node's could), not a
// registered sensor's, not one whose sensor has no stored slug to tell.
func TestHARepairClearsOnlyOrphans(t *testing.T) {
	ctx := context.Background()
	ret := &retainedMap{m: map[string][]byte{}}
	other := &retainedMap{m: ret.m} // another node on the same broker
	src := &haTestSource{infos: []ingest.SensorInfo{{ID: "gone", Count: 1}, {ID: "kept", Count: 1}, {ID: "moved", Count: 1}}}
	announce := func(node string, r *retainedMap, src haSource) *haPublisher {
		t.Helper()
		p, err := newHAPublisher(DefaultConfig().HomeAssistant, node, "m", src, r.publish, 0, quietLogger(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.poll(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := announce("gw", ret, src)
	announce("gw_1", other, &haTestSource{infos: []ingest.SensorInfo{{ID: "gone", Count: 1}}})
	// "moved" had another slug once (slugs recomputed at a restart) and
	// left a duplicate; "unstored" was announced before the slug table.
	for _, name := range []string{"moved", "unstored"} {
		info := ingest.SensorInfo{ID: name}
		c, err := json.Marshal(p.sensorConfig(&info, name+"_old"))
		if err != nil {
			t.Fatal(err)
		}
		ret.m[p.configTopic("sensor", name+"_old")] = c
	}
	src.infos = []ingest.SensorInfo{{ID: "kept", Count: 1}, {ID: "moved", Count: 1}, {ID: "unstored", Count: 1}} // FORGET gone, then a crash
	p.retained = ret.retainedOn
	if err := p.repair(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for topic := range ret.m {
		if strings.HasSuffix(topic, "/config") {
			got = append(got, strings.TrimPrefix(topic, "homeassistant/"))
		}
	}
	want := map[string]bool{
		"sensor/gw_kept/config": true, "sensor/gw_moved/config": true, "sensor/gw_unstored_old/config": true,
		"sensor/gw_1_gone/config": true, // the other node's
	}
	for _, topic := range got {
		if strings.Contains(topic, "_gateway_") {
			continue
		}
		if !want[topic] {
			t.Errorf("%s is still retained", topic)
		}
		delete(want, topic)
	}
	for topic := range want {
		t.Errorf("%s was cleared", topic)
	}
	if len(ret.configsNaming("Sensors")) != 2 {
		t.Errorf("the gateways' entities were touched: %v", ret.configsNaming("Sensors"))
	}
}

// retainedOn lists the retained messages a filter of the form
// prefix/+/suffix matches, as broker.Retained does.
func (r *retainedMap) retainedOn(filter string) ([]broker.Message, error) {
	pre, suf, _ := strings.Cut(filter, "+")
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []broker.Message
	for topic, p := range r.m {
		mid, ok := strings.CutPrefix(topic, pre)
		if mid, ok2 := strings.CutSuffix(mid, suf); ok && ok2 && !strings.Contains(mid, "/") {
			out = append(out, broker.Message{Topic: topic, Payload: p, Retain: true})
		}
	}
	return out, nil
}
