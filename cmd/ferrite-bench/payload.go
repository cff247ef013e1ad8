package main

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// format describes one payload format: where a publisher sends, what the
// subscriber subscribes to, which sensor ids the gateway derives, and how
// the payload embeds the send time.
//
// Every payload carries the send time as a number: milliseconds since the
// run started, with microsecond precision. It is a valid reading value for
// the gateway and lets the subscriber measure latency without clocks
// shared beyond this process.
type format struct {
	name   string
	topic  func(run string, i int) string
	filter string
	// sensors returns the gateway sensor ids one publisher feeds.
	sensors func(run string, i int) []string
	// appendPayload appends a payload carrying offMs.
	appendPayload func(b []byte, offMs float64) []byte
	// marker precedes the embedded number ("" = whole payload).
	marker []byte
}

var formats = map[string]format{
	"number": {
		name:          "number",
		topic:         func(run string, i int) string { return fmt.Sprintf("sensors/bench-%s-%d", run, i) },
		filter:        "sensors/#",
		sensors:       func(run string, i int) []string { return []string{fmt.Sprintf("bench-%s-%d", run, i)} },
		appendPayload: func(b []byte, off float64) []byte { return strconv.AppendFloat(b, off, 'f', 3, 64) },
	},
	"json": {
		name:    "json",
		topic:   func(run string, i int) string { return fmt.Sprintf("sensors/bench-%s-%d", run, i) },
		filter:  "sensors/#",
		sensors: func(run string, i int) []string { return []string{fmt.Sprintf("bench-%s-%d", run, i)} },
		appendPayload: func(b []byte, off float64) []byte {
			b = append(b, `{"value":`...)
			b = strconv.AppendFloat(b, off, 'f', 3, 64)
			return append(b, `,"unit":"ms"}`...)
		},
		marker: []byte(`"value":`),
	},
	"senml": {
		name:    "senml",
		topic:   func(run string, i int) string { return fmt.Sprintf("senml/bench-%s-%d", run, i) },
		filter:  "senml/#",
		sensors: func(run string, i int) []string { return []string{fmt.Sprintf("bench-%s-%d/lat", run, i)} },
		appendPayload: func(b []byte, off float64) []byte {
			b = append(b, `[{"n":"lat","u":"ms","v":`...)
			b = strconv.AppendFloat(b, off, 'f', 3, 64)
			return append(b, `}]`...)
		},
		marker: []byte(`"v":`),
	},
	"zigbee2mqtt": {
		name:   "zigbee2mqtt",
		topic:  func(run string, i int) string { return fmt.Sprintf("zigbee2mqtt/bench-%s-%d", run, i) },
		filter: "zigbee2mqtt/#",
		sensors: func(run string, i int) []string {
			d := fmt.Sprintf("bench-%s-%d", run, i)
			return []string{d + "/temperature", d + "/battery", d + "/linkquality"}
		},
		appendPayload: func(b []byte, off float64) []byte {
			b = append(b, `{"temperature":`...)
			b = strconv.AppendFloat(b, off, 'f', 3, 64)
			return append(b, `,"battery":97,"linkquality":120,"action":"none"}`...)
		},
		marker: []byte(`"temperature":`),
	},
	"esphome": {
		name:          "esphome",
		topic:         func(run string, i int) string { return fmt.Sprintf("bench-%s-%d/sensor/value/state", run, i) },
		filter:        "+/sensor/value/state",
		sensors:       func(run string, i int) []string { return []string{fmt.Sprintf("bench-%s-%d/value", run, i)} },
		appendPayload: func(b []byte, off float64) []byte { return strconv.AppendFloat(b, off, 'f', 3, 64) },
	},
	"tasmota": {
		name:   "tasmota",
		topic:  func(run string, i int) string { return fmt.Sprintf("tele/bench-%s-%d/SENSOR", run, i) },
		filter: "tele/+/SENSOR",
		sensors: func(run string, i int) []string {
			return []string{fmt.Sprintf("bench-%s-%d/BENCH/Temperature", run, i)}
		},
		appendPayload: func(b []byte, off float64) []byte {
			b = append(b, `{"Time":"`...)
			b = time.Now().UTC().AppendFormat(b, "2006-01-02T15:04:05")
			b = append(b, `","BENCH":{"Temperature":`...)
			b = strconv.AppendFloat(b, off, 'f', 3, 64)
			return append(b, `},"TempUnit":"C"}`...)
		},
		marker: []byte(`"Temperature":`),
	},
}

func formatNames() []string {
	return []string{"number", "json", "senml", "zigbee2mqtt", "esphome", "tasmota"}
}

// embeddedOffset extracts the send offset (ms) from a payload.
func (f *format) embeddedOffset(payload []byte) (float64, bool) {
	b := payload
	if len(f.marker) > 0 {
		i := bytes.Index(b, f.marker)
		if i < 0 {
			return 0, false
		}
		b = b[i+len(f.marker):]
		end := 0
		for end < len(b) && (b[end] == '.' || b[end] == '-' || (b[end] >= '0' && b[end] <= '9')) {
			end++
		}
		b = b[:end]
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}
