package ingest

import (
	"errors"
	"math"
	"testing"
	"time"
)

var testReceived = time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)

func defaultRuleSet(t testing.TB) *RuleSet {
	t.Helper()
	rs, err := CompileRules(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

type wantReading struct {
	sensor string
	value  float64
	unit   string
	ts     time.Time // zero: the receive time
}

func TestParseFormats(t *testing.T) {
	rs := defaultRuleSet(t)
	ts := time.Date(2024, 2, 19, 0, 26, 40, 0, time.UTC) // 1708302400
	tests := []struct {
		name    string
		topic   string
		payload string
		rule    string
		want    []wantReading
		err     error
	}{
		{"plain number", "sensors/temp-001", "22.5", "sensors", []wantReading{{"temp-001", 22.5, "", time.Time{}}}, nil},
		{"number with spaces", "sensors/t", " -3e2\n", "sensors", []wantReading{{"t", -300, "", time.Time{}}}, nil},
		{"ON", "sensors/relay", "ON", "sensors", []wantReading{{"relay", 1, "", time.Time{}}}, nil},
		{"off", "sensors/relay", "off", "sensors", []wantReading{{"relay", 0, "", time.Time{}}}, nil},
		{"true", "sensors/door", "true", "sensors", []wantReading{{"door", 1, "", time.Time{}}}, nil},
		{"FALSE", "sensors/door", "FALSE", "sensors", []wantReading{{"door", 0, "", time.Time{}}}, nil},
		{"json seconds", "sensors/temp", `{"value":22.5,"unit":"celsius","ts":1708302400}`, "sensors",
			[]wantReading{{"temp", 22.5, "celsius", ts}}, nil},
		{"json millis", "sensors/temp", `{"value":1,"ts":1708302400000}`, "sensors", []wantReading{{"temp", 1, "", ts}}, nil},
		{"json micros", "sensors/temp", `{"value":1,"ts":1708302400000000}`, "sensors", []wantReading{{"temp", 1, "", ts}}, nil},
		{"json nanos", "sensors/temp", `{"value":1,"ts":1708302400000000000}`, "sensors", []wantReading{{"temp", 1, "", ts}}, nil},
		{"json fractional seconds", "sensors/temp", `{"value":1,"ts":1708302400.5}`, "sensors",
			[]wantReading{{"temp", 1, "", ts.Add(500 * time.Millisecond)}}, nil},
		{"json rfc3339", "sensors/temp", `{"value":1,"time":"2024-02-19T01:26:40+01:00"}`, "sensors", []wantReading{{"temp", 1, "", ts}}, nil},
		{"json ts string number", "sensors/temp", `{"value":1,"timestamp":"1708302400"}`, "sensors", []wantReading{{"temp", 1, "", ts}}, nil},
		{"json no clock", "sensors/temp", `{"value":1,"ts":12345}`, "sensors", []wantReading{{"temp", 1, "", time.Time{}}}, nil},
		{"json string value", "sensors/temp", `{"value":"21.5","extra":[1,{"a":2}]}`, "sensors", []wantReading{{"temp", 21.5, "", time.Time{}}}, nil},
		{"json bool value", "sensors/temp", `{"value":true}`, "sensors", []wantReading{{"temp", 1, "", time.Time{}}}, nil},
		{"json escaped unit", "sensors/temp", `{"unit":"\u00b0C","value":5}`, "sensors", []wantReading{{"temp", 5, "°C", time.Time{}}}, nil},
		{"json no value", "sensors/temp", `{"temp":1}`, "sensors", nil, ErrNoValue},
		{"json bad value", "sensors/temp", `{"value":"warm"}`, "sensors", nil, ErrBadNumber},
		{"json bad ts", "sensors/temp", `{"value":1,"ts":"yesterday"}`, "sensors", nil, ErrBadTimestamp},
		{"json negative ts", "sensors/temp", `{"value":1,"ts":-5}`, "sensors", nil, ErrBadTimestamp},
		{"json truncated", "sensors/temp", `{"value":1`, "sensors", nil, ErrBadJSON},
		{"json trailing", "sensors/temp", `{"value":1} x`, "sensors", nil, ErrBadJSON},
		{"empty", "sensors/temp", "  ", "sensors", nil, ErrEmptyPayload},
		{"text", "sensors/temp", "hot", "sensors", nil, ErrBadNumber},
		{"nan", "sensors/temp", "NaN", "sensors", nil, ErrBadNumber},
		{"inf", "sensors/temp", "1e999", "sensors", nil, ErrBadNumber},
		{"hex", "sensors/temp", "0x10", "sensors", nil, ErrBadNumber},
		{"no rule", "other/temp", "1", "", nil, nil},
		{"dollar topic", "$SYS/sensor/x/state", "1", "", nil, nil},
		{"senml rfc example", "senml/dev1", `[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1,"bt":1708302400},
			{"n":"current","t":-5,"v":1.2},{"n":"current","t":-4,"v":1.3},{"n":"status","vs":"ok"}]`, "senml",
			[]wantReading{
				{"urn:dev:ow:10e2073a01080063:voltage", 120.1, "V", ts},
				{"urn:dev:ow:10e2073a01080063:current", 1.2, "", ts.Add(-5 * time.Second)},
				{"urn:dev:ow:10e2073a01080063:current", 1.3, "", ts.Add(-4 * time.Second)},
			}, nil},
		{"senml fractional base time", "senml/f", `[{"bn":"f/","bt":1708302400.123,"n":"t","v":1}]`, "senml",
			[]wantReading{{"f/t", 1, "", ts.Add(123 * time.Millisecond)}}, nil},
		{"senml relative and base value", "senml/x", `[{"bn":"dev/","bv":10,"bu":"A","n":"a","v":1,"t":-10},{"n":"b","vb":true,"u":"bool"},{"n":"c","s":5,"bs":1}]`, "senml",
			[]wantReading{
				{"dev/a", 11, "A", testReceived.Add(-10 * time.Second)},
				{"dev/b", 1, "bool", time.Time{}},
				{"dev/c", 6, "A", time.Time{}},
			}, nil},
		{"senml must understand", "senml/x", `[{"n":"a","v":1,"foo_":1}]`, "senml", nil, ErrBadSenML},
		{"senml bad name", "senml/x", `[{"n":"-a","v":1}]`, "senml", nil, ErrBadSenML},
		{"senml v string", "senml/x", `[{"n":"a","v":"1"}]`, "senml", nil, ErrBadSenML},
		{"senml not array", "senml/x", `{"n":"a","v":1}`, "senml", nil, ErrBadSenML},
		{"senml only strings", "senml/x", `[{"n":"a","vs":"x"}]`, "senml", nil, ErrNoValue},
		{"senml auto on sensors", "sensors/dev", `[{"n":"t","v":3}]`, "sensors", []wantReading{{"dev/t", 3, "", time.Time{}}}, nil},
		{"zigbee2mqtt", "zigbee2mqtt/living_th", `{"temperature":21.3,"humidity":48,"battery":97,"linkquality":120,"state":"ON","contact":false,
			"action":"single","update":{"state":"idle","progress":12.5},"color":{"x":0.3},"list":[1,2],"n":null}`, "zigbee2mqtt",
			[]wantReading{
				{"living_th/temperature", 21.3, "°C", time.Time{}},
				{"living_th/humidity", 48, "%", time.Time{}},
				{"living_th/battery", 97, "%", time.Time{}},
				{"living_th/linkquality", 120, "lqi", time.Time{}},
				{"living_th/state", 1, "", time.Time{}},
				{"living_th/contact", 0, "", time.Time{}},
				{"living_th/update/progress", 12.5, "", time.Time{}},
				{"living_th/color/x", 0.3, "", time.Time{}},
			}, nil},
		{"zigbee2mqtt last_seen", "zigbee2mqtt/plug", `{"power":3.5,"last_seen":"2024-02-19T00:26:40Z"}`, "zigbee2mqtt",
			[]wantReading{{"plug/power", 3.5, "W", ts}}, nil},
		{"zigbee2mqtt voltages", "zigbee2mqtt/v", `{"voltage":229,"x":{"voltage":3000}}`, "zigbee2mqtt",
			[]wantReading{{"v/voltage", 229, "V", testReceived}, {"v/x/voltage", 3000, "mV", testReceived}}, nil},
		{"zigbee2mqtt strings only", "zigbee2mqtt/btn", `{"action":"single"}`, "zigbee2mqtt", nil, nil},
		{"zigbee2mqtt not object", "zigbee2mqtt/btn", `"online"`, "zigbee2mqtt", nil, ErrNoValue},
		{"esphome", "kitchen/sensor/temperature/state", "19.25", "esphome", []wantReading{{"kitchen/temperature", 19.25, "", time.Time{}}}, nil},
		{"esphome binary", "door/binary_sensor/contact/state", "OFF", "esphome-binary", []wantReading{{"door/contact", 0, "", time.Time{}}}, nil},
		{"esphome text", "kitchen/sensor/temperature/state", "unavailable", "esphome", nil, ErrBadNumber},
		{"tasmota", "tele/sonoff/SENSOR", `{"Time":"2024-02-19T00:26:40","AM2301":{"Temperature":22.5,"Humidity":40},"ENERGY":{"Power":12,"Total":1.5},"TempUnit":"C"}`, "tasmota",
			[]wantReading{
				{"sonoff/AM2301/Temperature", 22.5, "C", ts},
				{"sonoff/AM2301/Humidity", 40, "%", ts},
				{"sonoff/ENERGY/Power", 12, "", ts},
				{"sonoff/ENERGY/Total", 1.5, "", ts},
			}, nil},
		{"deep json", "sensors/x", `{"a":` + nest(20) + `}`, "sensors", nil, ErrBadJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, got, err := rs.Parse(tt.topic, []byte(tt.payload), testReceived)
			if rule != tt.rule {
				t.Fatalf("rule = %q, want %q", rule, tt.rule)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d readings %+v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				wts := w.ts
				if wts.IsZero() {
					wts = testReceived
				}
				if g.Sensor != w.sensor || math.Abs(g.Value-w.value) > 1e-9 || g.Unit != w.unit || !g.Time.Equal(wts) {
					t.Errorf("reading %d = %+v, want %+v (ts %v)", i, g, w, wts)
				}
			}
		})
	}
}

func nest(n int) string {
	s := "1"
	for range n {
		s = `{"a":` + s + `}`
	}
	return s
}

func TestRuleValidate(t *testing.T) {
	bad := []Rule{
		{Topic: "", SensorID: "x"},
		{Topic: "a/#/b", SensorID: "x"},
		{Topic: "a/b+", SensorID: "x"},
		{Topic: "a/{x}/{x}", SensorID: "{x}"},
		{Topic: "a/+", SensorID: ""},
		{Topic: "a/+", SensorID: "{2}"},
		{Topic: "a/+", SensorID: "{nope}"},
		{Topic: "a/+", SensorID: "{1"},
		{Topic: "a/+", SensorID: "1}"},
		{Topic: "a/+", SensorID: "{1}", Format: "xml"},
		{Topic: "a/+", SensorID: "{1}", Format: FormatTasmota, ValuePath: "v"},
	}
	for _, r := range bad {
		if err := r.Validate(); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("rule %+v: err = %v, want ErrInvalidRule", r, err)
		}
	}
	good := []Rule{
		{Topic: "a/#", SensorID: "{5}"},
		{Topic: "{site}/+/x", SensorID: "{site}-{1}-{field}", Format: FormatZigbee2MQTT},
		{Topic: "plain", SensorID: "fixed", Format: FormatNumber},
	}
	for _, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("rule %+v: %v", r, err)
		}
	}
	if _, err := CompileRules([]Rule{{Name: "a", Topic: "x", SensorID: "x"}, {Name: "a", Topic: "y", SensorID: "y"}}); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("duplicate names: err = %v", err)
	}
}

func TestTopicMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"+/+", "/x", true},
	}
	for _, tt := range tests {
		c, err := compileRule(Rule{Topic: tt.filter, SensorID: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.match(tt.topic, splitTopic(nil, tt.topic)); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestSensorIDTemplateHashLevel(t *testing.T) {
	rs, err := CompileRules([]Rule{{Topic: "site/#", SensorID: "{1}:{3}", Format: FormatNumber}})
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := rs.Parse("site/a/b/c", []byte("1"), testReceived)
	if err != nil || len(got) != 1 || got[0].Sensor != "a:c" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, _, err := rs.Parse("site/a", []byte("1"), testReceived); !errors.Is(err, ErrInvalidSensorID) {
		t.Fatalf("missing level: err = %v", err)
	}
}

func TestTimestampHeuristics(t *testing.T) {
	want := time.Date(2024, 2, 19, 0, 26, 40, 0, time.UTC).UnixNano()
	for _, raw := range []string{"1708302400", "1708302400000", "1708302400000000", "1708302400000000000", "1.7083024e9", "1708302400000.0"} {
		ns, ok, err := tsFromNumber([]byte(raw))
		if err != nil || !ok || ns != want {
			t.Errorf("%s: got %d %v %v, want %d", raw, ns, ok, err, want)
		}
	}
	// Fractions are kept to the millisecond exactly (found by the HA audit:
	// .123 s was stored as .122).
	base := time.Date(2026, 11, 27, 18, 45, 8, 0, time.UTC).UnixNano()
	for raw, frac := range map[string]int64{"1795805108.123": 123e6, "1795805108.001": 1e6, "1795805108.25": 250e6, "1795805108123.5": 123500e3} {
		if ns, ok, err := tsFromNumber([]byte(raw)); err != nil || !ok || ns != base+frac {
			t.Errorf("%s: got %d %v %v, want %d", raw, ns, ok, err, base+frac)
		}
	}
	for _, raw := range []string{"0", "12345", "946684799"} {
		if _, ok, err := tsFromNumber([]byte(raw)); ok || err != nil {
			t.Errorf("%s: want no-clock fallback, got ok=%v err=%v", raw, ok, err)
		}
	}
	// Out of range: negative, beyond float64/int64, and dates from 2262 on
	// in every unit (the audit found 2e10 s read as 2019: i*1e9 wrapped).
	for _, raw := range []string{"-1", "99999999999999999999", "9.3e18", "1e300",
		"20000000000", "9300000000", "20000000000000", "20000000000000000", "9223372036854775807"} {
		if _, _, err := tsFromNumber([]byte(raw)); !errors.Is(err, ErrBadTimestamp) {
			t.Errorf("%s: err = %v, want ErrBadTimestamp", raw, err)
		}
	}
	// The last second before the limit is still read.
	if ns, ok, err := tsFromNumber([]byte("9214646399")); err != nil || !ok || ns != 9214646399e9 {
		t.Errorf("2261-12-31: got %d %v %v", ns, ok, err)
	}
	// RFC 3339 allows lower-case 't' and 'z'.
	for _, raw := range []string{"2024-02-19t00:26:40Z", "2024-02-19T00:26:40z", "2024-02-19t00:26:40z", "2024-02-19t01:26:40+01:00"} {
		if ns, ok, err := tsFromString([]byte(raw), time.UTC); err != nil || !ok || ns != want {
			t.Errorf("%s: got %d %v %v, want %d", raw, ns, ok, err, want)
		}
	}
}
