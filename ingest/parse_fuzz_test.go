package ingest

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// FuzzParsers feeds arbitrary payloads to every format. Invariants: no
// panic; every reading has a valid sensor id, a finite value and a time in
// range; a payload accepted by a JSON format is valid JSON.
func FuzzParsers(f *testing.F) {
	seeds := []string{
		"22.5", "ON", " off ", "-1e3", "", "{", "[", "\"x\"",
		`{"value":22.5,"unit":"celsius","ts":1708300000}`,
		`{"value":"1","ts":"2024-02-19T00:26:40Z","a":[1,{"b":[]}]}`,
		`[{"bn":"urn:dev:x:","bt":1.7e9,"bu":"V","n":"v","v":1},{"n":"c","t":-1,"vb":true},{"n":"s","s":2}]`,
		`{"temperature":21.3,"state":"ON","update":{"progress":1},"last_seen":1708300000000}`,
		`{"Time":"2024-02-19T00:26:40","AM2301":{"Temperature":22.5,"Humidity":40},"TempUnit":"C"}`,
		`{"k\u00e9y\ud83d\ude00":"\ud800","value":1}`,
	}
	for _, s := range seeds {
		f.Add(uint8(0), s)
	}
	formats := []Format{FormatAuto, FormatNumber, FormatJSON, FormatSenML, FormatZigbee2MQTT, FormatESPHome, FormatTasmota}
	rules := make([]*RuleSet, len(formats))
	for i, fm := range formats {
		rs, err := CompileRules([]Rule{{Topic: "t/{dev}", SensorID: "{dev}/{field}", Format: fm}})
		if err != nil {
			f.Fatal(err)
		}
		rules[i] = rs
	}
	received := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, which uint8, payload string) {
		fm := formats[int(which)%len(formats)]
		_, got, err := rules[int(which)%len(formats)].Parse("t/dev", []byte(payload), received)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, r := range got {
			if !validSensorID([]byte(r.Sensor)) {
				t.Fatalf("invalid sensor id %q", r.Sensor)
			}
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
				t.Fatalf("non-finite value %v", r.Value)
			}
			if ns := r.Time.UnixNano(); ns < minDeviceTime || ns >= maxDeviceTime {
				t.Fatalf("time out of range %v", r.Time)
			}
		}
		switch fm {
		case FormatJSON, FormatSenML, FormatZigbee2MQTT, FormatTasmota:
			if !json.Valid([]byte(payload)) {
				t.Fatalf("accepted invalid JSON %q", payload)
			}
		}
	})
}

// FuzzJSONStrings checks the scanner's string decoding against encoding/json.
func FuzzJSONStrings(f *testing.F) {
	for _, s := range []string{`"a"`, `"\u00e9\n\t\"\\\/"`, `"\ud83d\ude00"`, `"\ud800x"`, `"\ud800\u0041"`, "\"\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var sc jsonScanner
		sc.reset([]byte(doc))
		got, err := sc.str(nil)
		if err == nil {
			err = sc.end()
		}
		var want string
		stdErr := json.Unmarshal([]byte(doc), &want)
		if (err == nil) != (stdErr == nil) {
			// encoding/json replaces invalid UTF-8 instead of rejecting it;
			// we reject it (sensor ids and units must be valid text).
			if err != nil && stdErr == nil && !validUTF8JSON(doc) {
				return
			}
			t.Fatalf("%q: scanner err %v, encoding/json err %v", doc, err, stdErr)
		}
		if err == nil && string(got) != want {
			t.Fatalf("%q: scanner %q, encoding/json %q", doc, got, want)
		}
	})
}

func validUTF8JSON(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}
