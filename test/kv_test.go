package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

// mosquittoRR runs one mosquitto_rr request against p and returns the reply.
func mosquittoRR(t *testing.T, p *e2e.Process, line string) string {
	t.Helper()
	out, err := exec.Command("mosquitto_rr", "-h", "127.0.0.1", "-p", e2e.Port(p.MQTTAddr()),
		"-t", "$ferrite/cmd", "-e", "reply/me", "-W", "10", "-m", line).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_rr %q: %v: %s", line, err, out)
	}
	return strings.TrimSpace(string(out))
}

// The feature document's examples, verbatim, through mosquitto_rr.
func TestFeatureDocumentExamplesWithMosquittoRR(t *testing.T) {
	if !e2e.HasCommand("mosquitto_rr") {
		t.Skip("mosquitto_rr not on PATH (apt-get install mosquitto-clients; CI installs it)")
	}
	p := e2e.Start(t, "")
	for _, c := range []struct{ line, want string }{
		{`SET sensor:temp:001 "23.5" EX 86400`, `"OK"`},
		{`LPUSH sensor:log:001 '{"temp":23.5,"ts":1708300000}'`, `1`},
		{`HINCRBY store:42:daily_revenue 2025-02-19 4999`, `4999`},
		{`LPUSH store:42:transactions '{"id":"tx-001","amount":49.99}'`, `1`},
		{`GET sensor:temp:001`, `"23.5"`},
		{`LRANGE sensor:log:001 0 -1`, `["{\"temp\":23.5,\"ts\":1708300000}"]`},
		{`HINCRBY store:42:daily_revenue 2025-02-19 1`, `5000`},
		{`HGETALL store:42:daily_revenue`, `{"2025-02-19":"5000"}`},
	} {
		if got := mosquittoRR(t, p, c.line); got != c.want {
			t.Errorf("%s → %s, want %s", c.line, got, c.want)
		}
	}
	var ttl int64
	if err := json.Unmarshal([]byte(mosquittoRR(t, p, "TTL sensor:temp:001")), &ttl); err != nil || ttl < 86000 || ttl > 86400 {
		t.Errorf("TTL sensor:temp:001 = %d (%v)", ttl, err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(mosquittoRR(t, p, "EDGE.STATUS")), &st); err != nil {
		t.Fatal(err)
	}
	// No hub configured: nothing queues for one (the ops are pruned); a
	// hub configured later gets the full state.
	if st["pending_ops"].(float64) != 0 || st["need_full_sync"] != true || st["sync_status"] == nil {
		t.Errorf("EDGE.STATUS %v", st)
	}
}

// Every command family over MQTT 5, including the errors a Redis user
// expects, against the real binary and its Pebble store.
func TestKeyValueCommands(t *testing.T) {
	p := e2e.Start(t, "")
	cm := e2e.NewCommander(t, p.MQTTAddr())
	ok := func(want string, args ...string) {
		t.Helper()
		raw, errText := cm.Try(t, args...)
		if errText != "" || string(raw) != want {
			t.Errorf("%v → %s (error %q), want %s", args, raw, errText, want)
		}
	}
	fails := func(want string, args ...string) {
		t.Helper()
		if _, errText := cm.Try(t, args...); !strings.Contains(errText, want) {
			t.Errorf("%v → error %q, want one containing %q", args, errText, want)
		}
	}
	ok(`"OK"`, "SET", "k", "v")
	ok(`null`, "SET", "k", "w", "NX")
	ok(`"v"`, "GET", "k")
	ok(`1`, "INCR", "n")
	ok(`11`, "INCRBY", "n", "10")
	ok(`8`, "DECRBY", "n", "3")
	ok(`2`, "SADD", "s", "a", "b")
	ok(`["a","b"]`, "SMEMBERS", "s")
	ok(`2`, "RPUSH", "l", "x", "y")
	ok(`["x","y"]`, "LRANGE", "l", "0", "-1")
	ok(`1`, "HSET", "h", "f", "1")
	ok(`5`, "HINCRBY", "h", "f", "4")
	ok(`1`, "EXISTS", "k")
	ok(`1`, "DEL", "k")
	ok(`null`, "GET", "k")
	fails("WRONGTYPE", "GET", "s")
	fails("WRONGTYPE", "LPUSH", "h", "z")
	fails("not an integer", "INCRBY", "n", "ten")
	fails("wrong number of arguments", "GET")
	fails("unknown command", "FLUSHALL")
	fails("invalid expire", "SET", "k", "v", "EX", "0")
	var keys []string
	cm.DoInto(t, &keys, "KEYS", "*")
	if strings.Join(keys, ",") != "h,l,n,s" {
		t.Errorf("KEYS * = %v", keys)
	}
	// State survives a restart (the store is on disk, fsynced).
	if code := p.Stop(t, 15, e2e.Timeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p = p.Restart(t)
	cm = e2e.NewCommander(t, p.MQTTAddr())
	ok(`"8"`, "GET", "n")
	ok(`["x","y"]`, "LRANGE", "l", "0", "-1")
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
