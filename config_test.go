package ferrite

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/ingest"
)

func mustParse(t *testing.T, yaml string, env ...string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(yaml), "test.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func problemsOf(t *testing.T, yaml string, env ...string) []Problem {
	t.Helper()
	_, err := ParseConfig([]byte(yaml), "test.yaml", env)
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("want a *ConfigError, got %v", err)
	}
	return ce.Problems
}

func TestConfigDefaults(t *testing.T) {
	c := mustParse(t, "")
	host, _ := os.Hostname()
	if c.NodeID != host || c.Mode != ModeEdge || c.DataDir != "./data" || c.Broker.Listen != ":1883" ||
		c.HTTP.Listen != ":8080" || c.Store.Durability != "always" || c.Edge.Preset != "standard" ||
		c.Edge.SyncPolicy != SyncOpportunistic || c.Edge.OfflineQueueSize != 10000 ||
		c.Edge.SyncInterval.D() != 30*time.Second || c.Edge.Strategy() != StrategyCrdtMerge ||
		c.Edge.QueuePath != "" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Broker.BrokerOptions().Limits.Validate(); err != nil {
		t.Fatalf("default broker limits: %v", err)
	}
}

// allowed_lateness 0 closes buckets at their end; the default is 10s.
func TestConfigAllowedLateness(t *testing.T) {
	if got := mustParse(t, "").Ingest.aggregatorConfig().AllowedLateness; got != 10*time.Second {
		t.Fatalf("default: %v", got)
	}
	if got := mustParse(t, "ingest: {allowed_lateness: 0s}").Ingest.aggregatorConfig().AllowedLateness; got != ingest.NoLateness {
		t.Fatalf("0s: %v, want NoLateness", got)
	}
}

// A second YAML document was ignored silently, problems and all.
func TestConfigSecondDocument(t *testing.T) {
	_, err := ParseConfig([]byte("node_id: a\n---\nedge:\n  hub_ulr: x\n"), "test.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "second YAML document") || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v", err)
	}
	for _, ok := range []string{"node_id: a\n---\n", "---\nnode_id: a\n", "node_id: a\n...\n"} {
		if _, err := ParseConfig([]byte(ok), "test.yaml", nil); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestConfigFull(t *testing.T) {
	c := mustParse(t, `
node_id: edge-001
mode: hub
data_dir: /var/lib/ferrite
log: {level: debug, format: json}
broker:
  listen: 127.0.0.1:1884
  websocket: :8083
  limits:
    max_packet_size: 512kb
    max_clients: 50
    session_expiry: 1h
edge:
  hub_url: mqtts://hub.example.com:8883
  sync_interval: 1m30s
  sync_policy: periodic
  conflict_resolution: LastWriteWins
  conflict_rules:
    - {prefix: "counters:", strategy: CrdtMerge}
    - {prefix: "config:", strategy: cloud_wins}
  preset: iot
  max_keys: 5000
  resources:
    memory_limit: 128mb
    storage_limit: 1gb
    cpu_budget: low
`)
	if c.NodeID != "edge-001" || c.Mode != ModeHub || c.Log.Format != "json" || c.Broker.WebSocket != ":8083" {
		t.Fatalf("%+v", c)
	}
	if c.Broker.Limits.MaxPacketSize != 512<<10 || c.Broker.Limits.MaxClients != 50 ||
		c.Broker.Limits.SessionExpiry.D() != time.Hour || c.Broker.Limits.MaxInflight != 1024 {
		t.Fatalf("limits %+v", c.Broker.Limits)
	}
	if c.Edge.SyncInterval.D() != 90*time.Second || c.Edge.Strategy() != StrategyLWW ||
		c.Edge.QueuePath != "" {
		t.Fatalf("edge %+v", c.Edge)
	}
	want := []ConflictRule{{"counters:", StrategyCrdtMerge}, {"config:", StrategyCloudWins}}
	if !reflect.DeepEqual(c.Edge.Rules(), want) {
		t.Fatalf("rules %+v", c.Edge.Rules())
	}
	// Explicit keys override the preset; the rest comes from it.
	l := c.Edge.Limits()
	// memory_limit is the process's; the store gets the preset's budget
	// unless a quarter of the process limit is smaller.
	if l.Preset != "iot" || l.ProcessMemoryLimit != 128<<20 || l.MemoryLimit != 2<<20 || l.MaxKeys != 5000 || l.CompressionLevel != 9 || l.StorageLimit != 1<<30 {
		t.Fatalf("limits %+v", l)
	}
}

func TestConfigPresets(t *testing.T) {
	want := map[string]EdgeLimits{
		"minimal":  {Preset: "minimal", MemoryLimit: 4 << 20, MaxKeys: 10_000, CompressionLevel: 0},
		"iot":      {Preset: "iot", MemoryLimit: 2 << 20, MaxKeys: 1_000, CompressionLevel: 9},
		"mobile":   {Preset: "mobile", MemoryLimit: 32 << 20, MaxKeys: 50_000, CompressionLevel: 6},
		"standard": {Preset: "standard", MemoryLimit: 16 << 20, MaxKeys: 100_000, CompressionLevel: 0},
		"full":     {Preset: "full", MemoryLimit: 64 << 20, MaxKeys: 1_000_000, CompressionLevel: 3},
	}
	for name, w := range want {
		c := mustParse(t, "edge: {preset: "+name+"}")
		if got := c.Edge.Limits(); got != w {
			t.Errorf("%s: %+v", name, got)
		}
	}
	c := mustParse(t, "edge: {preset: full, compression_level: 0}")
	if l := c.Edge.Limits(); l.CompressionLevel != 0 || l.MaxKeys != 1_000_000 {
		t.Errorf("explicit compression 0 over full: %+v", l)
	}
}

// The acceptance case: an unknown key and a bad duration are both
// reported, each with its key and line.
func TestConfigReportsEveryProblemWithKeyAndLine(t *testing.T) {
	ps := problemsOf(t, `node_id: e1
edge:
  hub_url: http://hub
  sync_interval: 30x
  sync_polcy: periodic
broker:
  limits:
    max_clients: 0
log:
  level: loud
`)
	want := []Problem{
		{Path: "edge.hub_url", Line: 3},
		{Path: "edge.sync_interval", Line: 4},
		{Path: "edge.sync_polcy", Line: 5},
		{Path: "broker.limits.max_clients", Line: 8},
		{Path: "log.level", Line: 10},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems: %v", len(ps), ps)
	}
	for i, w := range want {
		if ps[i].Path != w.Path || ps[i].Line != w.Line {
			t.Errorf("problem %d: %v, want %s at line %d", i, ps[i], w.Path, w.Line)
		}
	}
	err := (&ConfigError{File: "x.yaml", Problems: ps}).Error()
	for _, s := range []string{"x.yaml: 5 problems", "line 5: edge.sync_polcy: unknown key", "line 4: edge.sync_interval: invalid duration \"30x\""} {
		if !strings.Contains(err, s) {
			t.Errorf("error text lacks %q:\n%s", s, err)
		}
	}
}

func TestConfigShapeErrors(t *testing.T) {
	cases := map[string]string{
		"node_id: [a, b]":                                "node_id",
		"edge: 5":                                        "edge",
		"edge: {conflict_rules: {a: b}}":                 "edge.conflict_rules",
		"edge: {conflict_rules: [{prefx: a}]}":           "edge.conflict_rules[0].prefx",
		"broker: {limits: {max_clients: ten}}":           "broker.limits.max_clients",
		"broker: {limits: {max_packet_size: 12parsecs}}": "broker.limits.max_packet_size",
		"mode: edge\nmode: hub":                          "mode",
		"edge: {resources: {memory_limit: -5mb}}":        "edge.resources.memory_limit",
		"edge: {compression_level: 12}":                  "edge.compression_level",
		"broker: {listen: 'nope'}":                       "broker.listen",
		"node_id: 'a/b'":                                 "node_id",
		"edge: {preset: huge}":                           "edge.preset",
		"edge: {sync_interval: 30}":                      "edge.sync_interval",
		"edge: {conflict_rules: [{prefix: a, strategy: x}, {prefix: a, strategy: lww}]}": "edge.conflict_rules[0].strategy",
	}
	for in, path := range cases {
		ps := problemsOf(t, in)
		if ps[0].Path != path {
			t.Errorf("%q: first problem %v, want path %s", in, ps[0], path)
		}
	}
	if ps := problemsOf(t, "a: [unclosed"); ps[0].Line != 0 || !strings.Contains(ps[0].Msg, "line 1") {
		t.Errorf("syntax error: %v", ps)
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	c := mustParse(t, "node_id: from-file\nedge: {sync_interval: 10s}",
		"FERRITE_NODE_ID=from-env",
		"FERRITE_DATA_DIR=/tmp/d",
		"FERRITE_BROKER_LISTEN=127.0.0.1:0",
		"FERRITE_HTTP_LISTEN=",
		"FERRITE_EDGE_HUB_URL=mqtt://hub:1883",
		"FERRITE_EDGE_SYNC_INTERVAL=45s",
		"FERRITE_EDGE_RESOURCES_MEMORY_LIMIT=64mb",
		"FERRITE_EDGE_COMPRESSION_LEVEL=4",
		"FERRITE_BROKER_LIMITS_MAX_CLIENTS=12",
		"FERRITE_TYPO_KEY=1",
		"FERRITE_CONFIG=ignored.yaml",
		"PATH=/bin",
	)
	if c.NodeID != "from-env" || c.DataDir != "/tmp/d" || c.Broker.Listen != "127.0.0.1:0" || c.HTTP.Listen != "" ||
		c.Edge.HubURL != "mqtt://hub:1883" || c.Edge.SyncInterval.D() != 45*time.Second ||
		c.Edge.Limits().ProcessMemoryLimit != 64<<20 || c.Edge.Limits().CompressionLevel != 4 || c.Broker.Limits.MaxClients != 12 {
		t.Fatalf("%+v", c)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "FERRITE_TYPO_KEY") {
		t.Fatalf("warnings %v", w)
	}
	ps := problemsOf(t, "", "FERRITE_EDGE_SYNC_INTERVAL=soon", "FERRITE_MODE=cloud")
	if len(ps) != 2 || ps[0].EnvVar == "" || ps[1].EnvVar == "" {
		t.Fatalf("env problems %v", ps)
	}
	if !strings.Contains(ps[0].String(), "FERRITE_") {
		t.Fatalf("problem does not name the variable: %v", ps[0])
	}
	vars := EnvVars()
	for _, v := range []string{"FERRITE_NODE_ID", "FERRITE_DATA_DIR", "FERRITE_BROKER_LISTEN", "FERRITE_HTTP_LISTEN", "FERRITE_EDGE_HUB_URL", "FERRITE_LOG_LEVEL"} {
		if !contains(vars, v) {
			t.Errorf("EnvVars lacks %s", v)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestParseSize(t *testing.T) {
	cases := map[string]Size{
		"0": 0, "512": 512, "64b": 64, "512kb": 512 << 10, "128mb": 128 << 20, "128MB": 128 << 20,
		"1gb": 1 << 30, "1GiB": 1 << 30, "2t": 2 << 40, "1.5gb": 3 << 29, " 4 mb ": 4 << 20,
	}
	for in, want := range cases {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "mb", "-1", "1.2.3kb", "12 parsecs", "99999999999tb", "NaNmb", "Infgb"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for _, s := range []Size{0, 1, 1023, 1024, 128 << 20, 3 << 29} {
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Errorf("round trip %d → %q → %d", s, s.String(), back)
		}
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("configs/*.yaml")
	if len(files) < 2 {
		t.Fatalf("configs: %v", files)
	}
	for _, f := range files {
		if _, err := LoadConfig(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestConfigMarshalRoundTrip(t *testing.T) {
	c := mustParse(t, "node_id: n1\nedge: {preset: iot, compression_level: 2, conflict_rules: [{prefix: a, strategy: lww}]}")
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out, "marshalled", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back.Edge, c.Edge) || !reflect.DeepEqual(back.Broker, c.Broker) {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("node_id: a\nedge: {sync_interval: 30s, preset: iot}"))
	f.Add([]byte("broker:\n  limits:\n    max_packet_size: 1mb\n"))
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("edge: {conflict_rules: [{prefix: a, strategy: lww}], compression_level: 3}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz", nil)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
	})
}

func TestConfigAnchorsAndNulls(t *testing.T) {
	c := mustParse(t, `
node_id: n
edge:
  conflict_rules:
    - &rule {prefix: "a:", strategy: lww}
    - {prefix: "b:", strategy: edge_wins}
  resources:
    memory_limit:
`)
	if len(c.Edge.ConflictRules) != 2 || c.Edge.Limits().MemoryLimit != 16<<20 {
		t.Fatalf("%+v", c.Edge)
	}
}

func TestLoadConfigSaysItReadsYAML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferrite-edge.toml")
	if err := os.WriteFile(path, []byte("[server]\nport = 6379\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path, nil)
	if err == nil || !strings.Contains(err.Error(), "ferrite reads YAML config files") {
		t.Fatalf("err = %v", err)
	}
}

// A variable naming a list or map of settings is a problem, not a warning
// that it "matches no config key" (found by the config audit).
func TestConfigEnvStructuredKeys(t *testing.T) {
	for _, v := range []string{"FERRITE_INGEST_RULES=x", "FERRITE_BROKER_AUTH_COMMAND_ROLES=x", "FERRITE_EDGE_CONFLICT_RULES=x"} {
		_, err := ParseConfig(nil, "test.yaml", []string{v})
		if err == nil || !strings.Contains(err.Error(), "cannot be set from the environment") {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, name := range EnvVars() {
		if name == "FERRITE_INGEST_RULES" {
			t.Error("EnvVars lists FERRITE_INGEST_RULES")
		}
	}
}

// Problems of a list item carry its line, one line each (found by the
// config audit: ingest.rules problems had no line, and two faults of one
// rule printed as two lines of one problem).
func TestConfigListItemProblems(t *testing.T) {
	_, err := ParseConfig([]byte("ingest:\n  rules:\n    - name: ok\n      topic: a/{id}\n      sensor_id: \"{id}\"\n    - name: bad\n      topic: \"\"\n      format: nope\n"), "test.yaml", nil)
	if err == nil {
		t.Fatal("accepted")
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("%T %v", err, err)
	}
	found := false
	for _, p := range ce.Problems {
		if strings.HasPrefix(p.Path, "ingest.rules[1]") {
			found = true
			if p.Line != 6 || strings.Contains(p.Msg, "\n") {
				t.Errorf("problem %+v: want line 6, one line", p)
			}
		}
	}
	if !found {
		t.Fatalf("no problem for ingest.rules[1]: %v", err)
	}
}

// A sub-second max_keepalive became 0 ("no cap") in the broker; ranges
// were printed with "1d", which no duration accepts (config audit).
func TestConfigKeepaliveAndRangeText(t *testing.T) {
	_, err := ParseConfig([]byte("broker: {limits: {max_keepalive: 500ms}}\n"), "test.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "max_keepalive") {
		t.Fatalf("500ms: %v", err)
	}
	_, err = ParseConfig([]byte("ingest: {late_horizon: 1000h}\n"), "test.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "720h]") {
		t.Fatalf("range text: %v", err)
	}
}
