package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

type sensorStats struct {
	Sensor string  `json:"sensor"`
	Count  uint64  `json:"count"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Sum    float64 `json:"sum"`
	Avg    float64 `json:"avg"`
	Last   float64 `json:"last"`
	Unit   string  `json:"unit"`
}

func stats(t *testing.T, cm *e2e.Commander, id string) (sensorStats, bool) {
	t.Helper()
	raw, errText := cm.Try(t, "SENSOR.STATS", id)
	if errText != "" {
		return sensorStats{}, false
	}
	var s sensorStats
	if err := jsonUnmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

// Every shipped payload format, published by real paho clients through the
// real broker, becomes readings; a malformed payload is counted and still
// delivered to subscribers.
func TestIngestFormats(t *testing.T) {
	p := e2e.Start(t, "")
	cm := e2e.NewCommander(t, p.MQTTAddr())
	pub := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "sensors")
	got := make(chan pahov3.Message, 16)
	sub := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "watcher")
	sub.Subscribe("sensors/#", 1, func(_ pahov3.Client, m pahov3.Message) { got <- m }).WaitTimeout(e2e.Timeout)

	for _, m := range []struct {
		topic, payload string
		qos            byte
	}{
		{"sensors/temp-001", "22.5", 0},
		{"sensors/temp-001", `{"value":23.5,"unit":"celsius"}`, 1},
		{"senml/dev1", `[{"bn":"dev1/","bt":1764244800,"bu":"Cel","n":"t","v":21},{"n":"h","u":"%RH","v":40}]`, 1},
		{"zigbee2mqtt/kitchen", `{"temperature":19.5,"humidity":55,"state":"ON","linkquality":120}`, 1},
		{"livingroom/sensor/temperature/state", "20.25", 1},
		{"tele/plug1/SENSOR", `{"Time":"2026-11-27T10:00:00","ENERGY":{"Power":42.5,"Voltage":230}}`, 1},
		{"sensors/temp-001", "not a number", 1},
	} {
		tok := pub.Publish(m.topic, m.qos, false, m.payload)
		if !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m.topic, tok.Error())
		}
	}
	for _, c := range []struct {
		id    string
		count uint64
		last  float64
	}{
		{"temp-001", 2, 23.5},
		{"dev1/t", 1, 21},
		{"dev1/h", 1, 40},
		{"kitchen/temperature", 1, 19.5},
		{"kitchen/humidity", 1, 55},
		{"kitchen/state", 1, 1},
		{"livingroom/temperature", 1, 20.25},
		{"plug1/ENERGY/Power", 1, 42.5},
	} {
		var s sensorStats
		e2e.Eventually(t, "SENSOR.STATS "+c.id, func() bool {
			var ok bool
			s, ok = stats(t, cm, c.id)
			return ok && s.Count >= c.count
		})
		if s.Count != c.count || s.Last != c.last {
			t.Errorf("%s: %+v, want count %d last %v", c.id, s, c.count, c.last)
		}
	}
	// The malformed message reached the subscriber anyway.
	deadline := time.After(e2e.Timeout)
	for seen := 0; seen < 3; {
		select {
		case m := <-got:
			if m.Topic() == "sensors/temp-001" {
				seen++
			}
		case <-deadline:
			t.Fatal("subscriber did not get all three sensors/temp-001 messages")
		}
	}
	// And it was counted.
	resp, err := http.Get("http://" + p.Info.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "ferrite_ingest_malformed_total") {
		t.Error("no ferrite_ingest_malformed_total metric")
	}
}

// A QoS 1 reading acknowledged by the broker survives kill -9.
func TestIngestQoS1SurvivesKill9(t *testing.T) {
	p := e2e.Start(t, "")
	const n = 200
	pub := e2e.V3Client(t, "tcp://"+p.MQTTAddr(), "durable")
	for i := range n {
		tok := pub.Publish(fmt.Sprintf("sensors/s%d", i%10), 1, false, fmt.Sprint(i))
		if !tok.WaitTimeout(e2e.Timeout) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	// Every PUBACK above came after the fsync: kill at once, no grace.
	p.Stop(t, syscall.SIGKILL, e2e.Timeout)
	p = p.Restart(t)
	cm := e2e.NewCommander(t, p.MQTTAddr())
	var total uint64
	for i := range 10 {
		s, ok := stats(t, cm, fmt.Sprintf("s%d", i))
		if !ok {
			t.Fatalf("sensor s%d lost", i)
		}
		total += s.Count
	}
	if total != n {
		t.Fatalf("after kill -9: %d readings, want %d", total, n)
	}
}
