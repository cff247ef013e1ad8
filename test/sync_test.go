package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

// state renders every key of a node, by type, as "key=type:value" lines
// sorted: equal renderings mean converged replicas.
func state(t *testing.T, cm *e2e.Commander, prefix string) string {
	t.Helper()
	var keys []string
	cm.DoInto(t, &keys, "KEYS", prefix+"*")
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		var typ string
		cm.DoInto(t, &typ, "TYPE", k)
		var v any
		switch typ {
		case "string":
			v = cm.Do(t, "GET", k)
		case "hash":
			v = cm.Do(t, "HGETALL", k)
		case "list":
			v = cm.Do(t, "LRANGE", k, "0", "-1")
		case "set":
			v = cm.Do(t, "SMEMBERS", k)
		}
		j, _ := json.Marshal(v)
		fmt.Fprintf(&b, "%s=%s:%s\n", k, typ, j)
	}
	return b.String()
}

// edgeConfig is an edge syncing immediately with the hub at hubURL;
// edgeKeys are more lines of its edge: section (indented by two spaces).
func edgeConfig(node, hubURL string, edgeKeys ...string) string {
	return fmt.Sprintf(`
node_id: %s
broker:
  listen: 127.0.0.1:0
http:
  listen: 127.0.0.1:0
sync:
  backoff_min: 50ms
  backoff_max: 500ms
  ack_timeout: 2s
edge:
  hub_url: %s
  sync_policy: immediate
%s`, node, hubURL, strings.Join(edgeKeys, "\n"))
}

// converge waits until every commander renders the same state (under
// prefix) and returns it.
func converge(t *testing.T, prefix string, cms ...*e2e.Commander) string {
	t.Helper()
	var last []string
	deadline := time.Now().Add(e2e.Timeout)
	for {
		last = last[:0]
		for _, cm := range cms {
			last = append(last, state(t, cm, prefix))
		}
		same := true
		for _, s := range last[1:] {
			same = same && s == last[0]
		}
		if same && last[0] != "" {
			return last[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge:\n%s", strings.Join(last, "\n---\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeWhileOffline makes both edges write the same and different keys.
func writeWhileOffline(t *testing.T, a, b *e2e.Commander) {
	t.Helper()
	for i := range 20 {
		a.Do(t, "HINCRBY", "t:revenue", "day", "10")
		b.Do(t, "HINCRBY", "t:revenue", "day", "5")
		a.Do(t, "SET", fmt.Sprintf("t:a:%d", i), "from-a")
		b.Do(t, "SET", fmt.Sprintf("t:b:%d", i), "from-b")
	}
	a.Do(t, "SET", "t:shared", "a-wrote-this")
	b.Do(t, "SET", "t:shared", "b-wrote-this")
	a.Do(t, "SADD", "t:tags", "red", "green")
	b.Do(t, "SADD", "t:tags", "blue")
	a.Do(t, "SREM", "t:tags", "green")
}

func checkConverged(t *testing.T, final string) {
	t.Helper()
	for _, want := range []string{
		`t:revenue=hash:{"day":"300"}`, // 20×10 + 20×5: no increment lost or doubled
		`t:tags=set:["blue","red"]`,
		`t:a:19=string:"from-a"`, `t:b:19=string:"from-b"`,
	} {
		if !strings.Contains(final, want) {
			t.Errorf("converged state lacks %s:\n%s", want, final)
		}
	}
}

func conflictsOn(t *testing.T, cm *e2e.Commander, key string) int {
	t.Helper()
	var cs []struct {
		Key string `json:"key"`
	}
	cm.DoInto(t, &cs, "EDGE.CONFLICTS")
	n := 0
	for _, c := range cs {
		if c.Key == key {
			n++
		}
	}
	return n
}

// Hub and two edges as separate processes: both edges write the same and
// different keys while the hub is down; the hub starts; all three converge,
// counters exact, the concurrent SET reported once per replica.
func TestSyncTwoEdgesAndHubConverge(t *testing.T) {
	hubAddr := e2e.FreeAddr(t)
	url := "mqtt://" + hubAddr
	ea := e2e.Start(t, edgeConfig("edge-a", url))
	eb := e2e.Start(t, edgeConfig("edge-b", url))
	a, b := e2e.NewCommander(t, ea.MQTTAddr()), e2e.NewCommander(t, eb.MQTTAddr())
	writeWhileOffline(t, a, b)
	hub := e2e.Start(t, hubConfig, "FERRITE_BROKER_LISTEN="+hubAddr)
	h := e2e.NewCommander(t, hub.MQTTAddr())
	final := converge(t, "t:", a, b, h)
	checkConverged(t, final)
	for name, cm := range map[string]*e2e.Commander{"edge-a": a, "edge-b": b, "hub": h} {
		if n := conflictsOn(t, cm, "t:shared"); n != 1 {
			t.Errorf("%s: %d conflicts recorded on t:shared, want 1", name, n)
		}
	}
	// The hub's EDGE.STATUS lists the edges it serves.
	var st struct {
		Edges []struct {
			Node    string `json:"node"`
			Syncing bool   `json:"syncing"`
			Lag     uint64 `json:"lag_ops"`
		} `json:"edges"`
	}
	h.DoInto(t, &st, "EDGE.STATUS")
	if len(st.Edges) != 2 || st.Edges[0].Node != "edge-a" || st.Edges[1].Node != "edge-b" || !st.Edges[0].Syncing {
		t.Errorf("hub EDGE.STATUS edges: %+v", st.Edges)
	}
	// The hub restarts: nothing is lost, nothing applied twice.
	hub.Stop(t, syscall.SIGTERM, e2e.Timeout)
	a.Do(t, "HINCRBY", "t:revenue", "day", "1")
	hub = hub.Restart(t)
	h = e2e.NewCommander(t, hub.MQTTAddr())
	final = converge(t, "t:", a, b, h)
	if !strings.Contains(final, `t:revenue=hash:{"day":"301"}`) {
		t.Errorf("after hub restart:\n%s", final)
	}
}

// startMosquitto runs a mosquitto broker on a free port for the test.
func startMosquitto(t *testing.T) string {
	t.Helper()
	if !e2e.HasCommand("mosquitto") {
		t.Skip("mosquitto not on PATH (apt-get install mosquitto; CI installs it)")
	}
	addr := e2e.FreeAddr(t)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\n", e2e.Port(addr))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto", "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	e2e.Eventually(t, "mosquitto listening", func() bool {
		c, err := netDial(addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// The same story with an external mosquitto as the hub's broker: the hub
// attaches to it as a client, the edges connect to it.
func TestSyncThroughExternalMosquitto(t *testing.T) {
	broker := startMosquitto(t)
	url := "mqtt://" + broker
	ea := e2e.Start(t, edgeConfig("edge-a", url))
	eb := e2e.Start(t, edgeConfig("edge-b", url))
	a, b := e2e.NewCommander(t, ea.MQTTAddr()), e2e.NewCommander(t, eb.MQTTAddr())
	writeWhileOffline(t, a, b) // the hub is not attached yet
	hub := e2e.Start(t, hubConfig+"hub:\n  broker_url: "+url+"\n")
	h := e2e.NewCommander(t, hub.MQTTAddr())
	checkConverged(t, converge(t, "t:", a, b, h))
}

// An edge whose offline queue overflows drops its oldest ops, then sends
// its state instead: nothing of the final state is lost.
func TestSyncQueueOverflowFullSync(t *testing.T) {
	hubAddr := e2e.FreeAddr(t)
	url := "mqtt://" + hubAddr
	ea := e2e.Start(t, edgeConfig("edge-a", url, "  offline_queue_size: 50"))
	eb := e2e.Start(t, edgeConfig("edge-b", url))
	a, b := e2e.NewCommander(t, ea.MQTTAddr()), e2e.NewCommander(t, eb.MQTTAddr())
	for i := range 300 {
		a.Do(t, "SET", fmt.Sprintf("t:k%d", i%120), fmt.Sprint(i))
		a.Do(t, "INCR", "t:count")
	}
	var q struct {
		Dropped      int64 `json:"dropped"`
		NeedFullSync bool  `json:"need_full_sync"`
	}
	a.DoInto(t, &q, "EDGE.QUEUE")
	if q.Dropped == 0 || !q.NeedFullSync {
		t.Fatalf("600 ops into a queue of 50: %+v", q)
	}
	hub := e2e.Start(t, hubConfig, "FERRITE_BROKER_LISTEN="+hubAddr)
	h := e2e.NewCommander(t, hub.MQTTAddr())
	final := converge(t, "t:", a, b, h)
	if !strings.Contains(final, `t:count=string:"300"`) || !strings.Contains(final, `t:k59=string:"299"`) {
		t.Errorf("after FullSync:\n%s", final)
	}
	a.DoInto(t, &q, "EDGE.QUEUE")
	if q.NeedFullSync {
		t.Errorf("still needs a full sync after converging: %+v", q)
	}
}

// kill -9 of an edge in the middle of a sync, and of the hub in the middle
// of applying: after restarts every acknowledged write is everywhere, and
// counters prove nothing was applied twice.
func TestSyncSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("several process restarts")
	}
	hubAddr := e2e.FreeAddr(t)
	url := "mqtt://" + hubAddr
	hub := e2e.Start(t, hubConfig, "FERRITE_BROKER_LISTEN="+hubAddr)
	ea := e2e.Start(t, edgeConfig("edge-a", url))
	eb := e2e.Start(t, edgeConfig("edge-b", url))
	a, b := e2e.NewCommander(t, ea.MQTTAddr()), e2e.NewCommander(t, eb.MQTTAddr())
	want := 0
	for round := range 3 {
		for range 200 {
			a.Do(t, "INCR", "t:n")
			b.Do(t, "INCR", "t:n")
			want += 2
		}
		// Kill while the queued increments are still flowing.
		if round%2 == 0 {
			ea.Stop(t, syscall.SIGKILL, e2e.Timeout)
			ea = ea.Restart(t)
			a = e2e.NewCommander(t, ea.MQTTAddr())
		} else {
			hub.Stop(t, syscall.SIGKILL, e2e.Timeout)
			hub = hub.Restart(t)
		}
	}
	h := e2e.NewCommander(t, hub.MQTTAddr())
	final := converge(t, "t:", a, b, h)
	if w := fmt.Sprintf(`t:n=string:"%d"`, want); !strings.Contains(final, w) {
		t.Errorf("after kill -9s: %s, want %s", final, w)
	}
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
