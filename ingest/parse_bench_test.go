package ingest

import (
	"testing"
	"time"
)

// BenchmarkExtract measures the per-message hot path: topic match, payload
// parse and sensor id expansion (interning and the store are excluded).
func BenchmarkExtract(b *testing.B) {
	cases := []struct{ name, topic, payload string }{
		{"number", "sensors/temp-001", "22.5"},
		{"json", "sensors/temp-001", `{"value":22.5,"unit":"celsius","ts":1708300000}`},
		{"senml", "senml/dev", `[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.708300000e9,"bu":"V","n":"voltage","v":120.1},{"n":"current","t":-5,"v":1.2,"u":"A"}]`},
		{"zigbee2mqtt", "zigbee2mqtt/living_th", `{"battery":97,"humidity":48.2,"linkquality":120,"temperature":21.3,"voltage":2995,"update":{"state":"idle"}}`},
		{"esphome", "kitchen/sensor/temperature/state", "19.25"},
		{"tasmota", "tele/sonoff/SENSOR", `{"Time":"2024-02-19T00:26:40","AM2301":{"Temperature":22.5,"Humidity":40},"TempUnit":"C"}`},
	}
	rs := defaultRuleSet(b)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			x := newExtractor(rs, DefaultMaxValuesPerMessage, time.UTC)
			payload := []byte(c.payload)
			received := testReceived.UnixNano()
			n := 0
			emit := func(id, unit []byte, value float64, ts int64, fallback bool) { n++ }
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := x.extract(c.topic, payload, received, emit); err != nil {
					b.Fatal(err)
				}
			}
			if n == 0 {
				b.Fatal("no readings")
			}
		})
	}
}
