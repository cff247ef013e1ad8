package test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"syscall"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

type resourcesReply struct {
	Level string `json:"level"`
	Disk  struct {
		Level   string  `json:"level"`
		Percent float64 `json:"percent"`
	} `json:"disk"`
	Actions      []string `json:"actions"`
	RefuseReason string   `json:"refuse_reason"`
	Recent       []struct {
		Action string `json:"action"`
		Result string `json:"result"`
		Freed  int64  `json:"freed"`
	} `json:"recent_actions"`
}

func (r resourcesReply) ran(action string) bool {
	for _, a := range r.Recent {
		if a.Action == action && a.Result == "ok" {
			return true
		}
	}
	return false
}

const hubConfig = `
node_id: hub-1
mode: hub
broker:
  listen: 127.0.0.1:0
http:
  listen: 127.0.0.1:0
`

// A node with a small storage_limit walks through Warning, High and
// Critical as its store fills, with each level's action observable, and
// recovers by itself once data is deleted. Only data the hub acknowledged
// is evicted.
func TestStoragePressureLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a store: slow")
	}
	hubAddr := e2e.FreeAddr(t)
	hub := e2e.Start(t, hubConfig, "FERRITE_BROKER_LISTEN="+hubAddr)
	edge := e2e.Start(t, fmt.Sprintf(`
node_id: edge-1
broker:
  listen: 127.0.0.1:0
http:
  listen: 127.0.0.1:0
store:
  durability: none
edge:
  hub_url: mqtt://%s
  sync_policy: manual
  resources:
    storage_limit: 24mb
    disk_reserve: 0
    sample_interval: 20ms
    action_interval: 100ms
    compact_interval: 100ms
    hysteresis: {samples: 1, margin: 5}
sync:
  backoff_min: 50ms
  backoff_max: 200ms
`, hubAddr))
	cm := e2e.NewCommander(t, edge.MQTTAddr())
	res := func() resourcesReply {
		var r resourcesReply
		cm.DoInto(t, &r, "EDGE.RESOURCES")
		return r
	}
	// Incompressible values: Pebble compresses its blocks.
	value := randomText(30 << 10)
	// Ephemeral keys the hub acknowledged are evictable...
	for i := range 20 {
		cm.Do(t, "SET", fmt.Sprintf("ttl:synced:%d", i), value, "EX", "3600")
	}
	cm.Do(t, "EDGE.SYNC")
	// ...ephemeral keys it never saw are not (the hub is down now).
	hub.Stop(t, syscall.SIGTERM, e2e.Timeout)
	for i := range 5 {
		cm.Do(t, "SET", fmt.Sprintf("ttl:unsynced:%d", i), value, "EX", "3600")
	}
	// Fill with durable data until the node refuses writes.
	seen := map[string]bool{}
	refused := ""
	for i := 0; i < 2000 && refused == ""; i++ {
		_, errText := cm.Try(t, "SET", fmt.Sprintf("big:%d", i), value)
		if errText != "" {
			refused = errText
		}
		seen[res().Disk.Level] = true
	}
	if refused == "" {
		t.Fatalf("2000 writes of 30 KiB under a 24 MiB storage_limit were all accepted: %+v", res())
	}
	if !strings.Contains(refused, "refus") && !strings.Contains(refused, "storage limit") {
		t.Errorf("refusal %q does not say why", refused)
	}
	for _, l := range []string{"warning", "high"} {
		if !seen[l] {
			t.Errorf("level %s never observed on the way to critical (saw %v)", l, seen)
		}
	}
	e2e.Eventually(t, "critical, compacted and evicted", func() bool {
		r := res()
		return r.Level == "critical" && r.ran("compact") && r.ran("evict")
	})
	if r := res(); r.RefuseReason == "" {
		t.Errorf("at critical without a refusal reason: %+v", r)
	}
	// An MQTT 5 publisher gets reason code 0x97 for a QoS 1 reading.
	v5 := e2e.V5Client(t, edge.MQTTAddr(), "sensor-v5", nil)
	ack, err := v5.Publish(context.Background(), &paho.Publish{Topic: "sensors/t1", QoS: 1, Payload: []byte("21.5")})
	switch {
	case err == nil:
		t.Errorf("QoS 1 reading accepted at critical: %+v", ack)
	case ack == nil || ack.ReasonCode != 0x97:
		t.Errorf("QoS 1 reading at critical: ack %+v, err %v; want reason code 0x97", ack, err)
	}
	// Eviction takes acknowledged ephemeral keys, and only those.
	e2e.Eventually(t, "an acknowledged ephemeral key evicted", func() bool {
		for i := range 20 {
			if n := cm.Do(t, "EXISTS", fmt.Sprintf("ttl:synced:%d", i)); n == float64(0) {
				return true
			}
		}
		return false
	})
	for i := range 5 {
		if n := cm.Do(t, "EXISTS", fmt.Sprintf("ttl:unsynced:%d", i)); n != float64(1) {
			t.Errorf("ttl:unsynced:%d (never acknowledged by the hub) was evicted", i)
		}
	}
	// Reads and admin keep working at critical; deletes are accepted. Once
	// the hub is back the queued changes drain, the op log is pruned and
	// compaction returns the space: the node recovers by itself.
	var keys []string
	cm.DoInto(t, &keys, "KEYS", "big:*")
	for _, k := range keys {
		cm.Do(t, "DEL", k)
	}
	hub = hub.Restart(t)
	e2e.Eventually(t, "back to normal", func() bool { return res().Level == "normal" })
	cm.Do(t, "SET", "after", "accepted")
}

func randomText(n int) string {
	b := make([]byte, n*3/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
