package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"

	"github.com/ferrite-edge/ferrite/test/e2e"
	"github.com/ferrite-edge/ferrite/test/pki"
)

// secureACL is the ACL of the security tests: a sensor that owns its
// topics, an admin, a monitoring user, and reply topics for the clients.
const secureACL = `
user sensor1
topic readwrite sensors/sensor1/#

user sensor2
topic readwrite sensors/sensor2/#

user admin
topic readwrite #
topic write $ferrite/cmd

user monitor
topic read sensors/#
topic write $ferrite/cmd

pattern readwrite e2e/reply/%c
pattern readwrite reply/%u/#
`

// secureFiles writes a password file (admin and monitor by ferrite passwd,
// sensor1 by mosquitto_passwd when installed) and secureACL.
func secureFiles(t *testing.T) (passwd, acl string) {
	t.Helper()
	dir := t.TempDir()
	passwd, acl = filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	ferritePasswd(t, "-c", "-b", passwd, "admin", "admin-pw")
	ferritePasswd(t, "-b", passwd, "monitor", "monitor-pw")
	if e2e.HasCommand("mosquitto_passwd") {
		if out, err := exec.Command("mosquitto_passwd", "-b", passwd, "sensor1", "sensor1-pw").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	} else {
		ferritePasswd(t, "-b", passwd, "sensor1", "sensor1-pw")
	}
	if err := os.WriteFile(acl, []byte(secureACL), 0o600); err != nil {
		t.Fatal(err)
	}
	return passwd, acl
}

func ferritePasswd(t *testing.T, args ...string) {
	t.Helper()
	if code, _, stderr := e2e.RunCLI(t, nil, append([]string{"passwd"}, args...)...); code != 0 {
		t.Fatalf("ferrite passwd %v: exit %d: %s", args, code, stderr)
	}
}

// secureConfig is a node whose clients all need a password (the loopback
// exemption is off, so the tests on 127.0.0.1 see what a remote client sees).
func secureConfig(passwd, acl string, extra ...string) string {
	return fmt.Sprintf(`
node_id: sec-node
broker:
  listen: 127.0.0.1:0
  auth:
    allow_anonymous: false
    anonymous_from_loopback: false
    password_file: %s
    acl_file: %s
    command_roles: {monitor: monitor}
http:
  listen: 127.0.0.1:0
%s`, passwd, acl, strings.Join(extra, "\n"))
}

func needMosquittoClients(t *testing.T) {
	t.Helper()
	for _, c := range []string{"mosquitto_rr", "mosquitto_pub", "mosquitto_sub"} {
		if !e2e.HasCommand(c) {
			t.Skipf("%s not on PATH (apt-get install mosquitto-clients; CI installs it)", c)
		}
	}
}

// mosq runs a mosquitto client and returns its exit code and output.
func mosq(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestSecurityUsersACLAndRoles(t *testing.T) {
	needMosquittoClients(t)
	passwd, acl := secureFiles(t)
	p := e2e.Start(t, secureConfig(passwd, acl))
	addr := p.MQTTAddr()
	port := e2e.Port(addr)
	dial := func() net.Conn {
		c, err := e2e.Dial(t, addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Anonymous and wrong passwords are refused, by paho and mosquitto_pub.
	if _, code := e2e.V5Dial(t, dial(), "anon", "", "", nil); code != 0x86 {
		t.Fatalf("anonymous: CONNACK 0x%02x", code)
	}
	if _, code := e2e.V5Dial(t, dial(), "bad", "sensor1", "nope", nil); code != 0x86 {
		t.Fatalf("wrong password: CONNACK 0x%02x", code)
	}
	pub := []string{"-h", "127.0.0.1", "-p", port, "-q", "1", "-t", "sensors/sensor1/temp", "-m", "21.5"}
	if code, out := mosq(t, "mosquitto_pub", pub...); code == 0 {
		t.Fatalf("mosquitto_pub without credentials succeeded: %s", out)
	}
	if code, out := mosq(t, "mosquitto_pub", append(pub, "-u", "sensor1", "-P", "wrong")...); code == 0 ||
		!strings.Contains(strings.ToLower(out), "not authori") {
		t.Fatalf("mosquitto_pub with a wrong password: exit %d: %s", code, out)
	}

	// The monitor sees what sensor1 publishes (mosquitto_passwd wrote
	// sensor1's hash, ferrite passwd the monitor's).
	monRecv := make(chan *paho.Publish, 8)
	mon, _ := e2e.V5Dial(t, dial(), "mon-sub", "monitor", "monitor-pw", monRecv)
	if code := e2e.SubscribeCode(t, mon, "sensors/#"); code != 1 {
		t.Fatalf("monitor subscribe: 0x%02x", code)
	}
	if code, out := mosq(t, "mosquitto_pub", append(pub, "-u", "sensor1", "-P", "sensor1-pw")...); code != 0 {
		t.Fatalf("mosquitto_pub as sensor1: exit %d: %s", code, out)
	}
	if m := e2e.Receive(t, monRecv, "sensor1's reading"); m.Topic != "sensors/sensor1/temp" || string(m.Payload) != "21.5" {
		t.Fatalf("got %s %q", m.Topic, m.Payload)
	}

	// sensor1: its own topics only; no other sensor's data, no commands.
	s1, _ := e2e.V5Dial(t, dial(), "s1", "sensor1", "sensor1-pw", nil)
	for topic, want := range map[string]byte{"sensors/sensor1/hum": 0, "sensors/sensor2/hum": 0x87, "$ferrite/cmd": 0x87, "$ferrite/sync/x/up": 0x87} {
		if code := e2e.PublishCode(t, s1, topic, "1"); code != want {
			t.Errorf("sensor1 publish %s: 0x%02x, want 0x%02x", topic, code, want)
		}
	}
	if code := e2e.SubscribeCode(t, s1, "sensors/sensor2/#"); code != 0x87 {
		t.Errorf("sensor1 subscribe to sensor2: 0x%02x", code)
	}
	if code, out := mosq(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-u", "sensor1", "-P", "sensor1-pw",
		"-t", "sensors/sensor2/#", "-C", "1", "-W", "2", "-V", "mqttv5"); !strings.Contains(out, "denied") {
		t.Errorf("mosquitto_sub as sensor1 on sensor2's topics: exit %d: %s", code, out)
	}

	// The admin runs every command, the monitor read-only ones.
	admin := e2e.NewCommanderAs(t, dial(), "admin", "admin-pw")
	admin.Do(t, "SET", "cfg:mode", "eco")
	var st map[string]any
	admin.DoInto(t, &st, "EDGE.STATUS")
	if st["node_id"] != "sec-node" {
		t.Fatalf("status %v", st)
	}
	monitor := e2e.NewCommanderAs(t, dial(), "monitor", "monitor-pw")
	monitor.DoInto(t, &st, "EDGE.STATUS")
	if v := monitor.Do(t, "GET", "cfg:mode"); v != "eco" {
		t.Fatalf("monitor GET: %v", v)
	}
	if _, errText := monitor.Try(t, "SET", "cfg:mode", "turbo"); !strings.Contains(errText, "not authorized") {
		t.Fatalf("monitor SET: %q", errText)
	}
	// The same through mosquitto_rr (MQTT 5 request/response).
	rr := []string{"-h", "127.0.0.1", "-p", port, "-t", "$ferrite/cmd", "-W", "10"}
	if code, out := mosq(t, "mosquitto_rr", append(rr, "-u", "admin", "-P", "admin-pw", "-e", "reply/admin/1", "-m", "EDGE.STATUS")...); code != 0 ||
		!strings.Contains(out, `"node_id":"sec-node"`) {
		t.Fatalf("mosquitto_rr EDGE.STATUS as admin: exit %d: %s", code, out)
	}
	if code, out := mosq(t, "mosquitto_rr", append(rr, "-u", "monitor", "-P", "monitor-pw", "-e", "reply/monitor/1", "-m", "SET cfg:mode turbo")...); code != 0 ||
		!strings.Contains(out, "not authorized") {
		t.Fatalf("mosquitto_rr SET as monitor: exit %d: %s", code, out)
	}
	if v := admin.Do(t, "GET", "cfg:mode"); v != "eco" {
		t.Fatalf("the monitor changed cfg:mode to %v", v)
	}
	metrics := httpGet(t, nil, "http://"+p.Info.HTTP+"/metrics")
	for _, want := range []string{`ferrite_auth_connects_total{outcome="refused_bad_password"}`, `ferrite_auth_denied_total{access="command"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(metrics, "ferrite_auth"))
		}
	}
}

func httpGet(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The shipped edge config: the README's quick tour works without
// credentials on the gateway itself, and a client from another address is
// refused.
func TestShippedEdgeConfigAnonymousOnlyFromLoopback(t *testing.T) {
	needMosquittoClients(t)
	ip, ok := e2e.NonLoopbackIP()
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "configs", "edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:0"
	if ok {
		listen = "0.0.0.0:0"
	}
	p := e2e.Start(t, string(cfg), "FERRITE_BROKER_LISTEN="+listen, "FERRITE_BROKER_WEBSOCKET=",
		"FERRITE_HTTP_LISTEN=127.0.0.1:0", "FERRITE_EDGE_HUB_URL=")
	port := e2e.Port(p.MQTTAddr())
	if code, out := mosq(t, "mosquitto_rr", "-h", "127.0.0.1", "-p", port, "-t", "$ferrite/cmd", "-e", "reply/me",
		"-m", "EDGE.STATUS", "-W", "10"); code != 0 || !strings.Contains(out, `"node_id":"edge-001"`) {
		t.Fatalf("quick tour mosquitto_rr: exit %d: %s", code, out)
	}
	if code, out := mosq(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "sensors/t1", "-m", "22.5"); code != 0 {
		t.Fatalf("quick tour mosquitto_pub: exit %d: %s", code, out)
	}
	if !ok {
		t.Skip("no non-loopback address on this machine: remote refusal not tested")
	}
	remote := net.JoinHostPort(ip.String(), port)
	c, err := e2e.Dial(t, remote, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := e2e.V5Dial(t, c, "remote", "", "", nil); code != 0x86 {
		t.Fatalf("anonymous client from %s: CONNACK 0x%02x", ip, code)
	}
	if code, out := mosq(t, "mosquitto_pub", "-h", ip.String(), "-p", port, "-t", "sensors/t1", "-m", "1"); code == 0 {
		t.Fatalf("mosquitto_pub from %s without credentials: exit 0: %s", ip, out)
	}
}

func TestSecurityTLS(t *testing.T) {
	needMosquittoClients(t)
	passwd, acl := secureFiles(t)
	ca := pki.NewCA(t, "site")
	cert, key := ca.Issue("gateway", true)
	p := e2e.Start(t, secureConfig(passwd, acl),
		"FERRITE_BROKER_TLS_LISTEN=127.0.0.1:0", "FERRITE_BROKER_TLS_WEBSOCKET=127.0.0.1:0",
		"FERRITE_BROKER_TLS_CERT="+cert, "FERRITE_BROKER_TLS_KEY="+key, "FERRITE_BROKER_TLS_CLIENT_CA="+ca.File,
		"FERRITE_BROKER_TLS_USE_IDENTITY_AS_USERNAME=true",
		"FERRITE_HTTP_TLS_CERT="+cert, "FERRITE_HTTP_TLS_KEY="+key)
	if p.Info.MQTTS == "" || p.Info.WSS == "" {
		t.Fatalf("TLS listeners missing from the run file: %+v", p.Info)
	}
	port := e2e.Port(p.Info.MQTTS)
	other := pki.NewCA(t, "other")

	// mosquitto clients with --cafile and a password.
	monRecv := make(chan *paho.Publish, 4)
	mconn, err := e2e.Dial(t, p.Info.MQTTS, pki.ClientTLS(t, ca, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	mon, _ := e2e.V5Dial(t, mconn, "mon", "monitor", "monitor-pw", monRecv)
	e2e.SubscribeCode(t, mon, "sensors/#")
	tlsPub := []string{"-h", "localhost", "-p", port, "--cafile", ca.File, "-q", "1", "-t", "sensors/sensor1/t", "-m", "over tls"}
	if code, out := mosq(t, "mosquitto_pub", append(tlsPub, "-u", "sensor1", "-P", "sensor1-pw")...); code != 0 {
		t.Fatalf("mosquitto_pub over TLS: exit %d: %s", code, out)
	}
	if m := e2e.Receive(t, monRecv, "message over TLS"); string(m.Payload) != "over tls" {
		t.Fatalf("got %q", m.Payload)
	}
	// A client that trusts another CA refuses the gateway.
	bad := append([]string{}, tlsPub...)
	bad[5] = other.File
	if code, out := mosq(t, "mosquitto_pub", append(bad, "-u", "sensor1", "-P", "sensor1-pw")...); code == 0 {
		t.Fatalf("mosquitto_pub trusting another CA: exit 0: %s", out)
	}
	if _, err := e2e.Dial(t, p.Info.MQTTS, pki.ClientTLS(t, other, "", "")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("paho trusting another CA: %v", err)
	}

	// A client certificate is the identity: CN sensor1, no password.
	ccert, ckey := ca.Issue("sensor1", false)
	conn, err := e2e.Dial(t, p.Info.MQTTS, pki.ClientTLS(t, ca, ccert, ckey))
	if err != nil {
		t.Fatal(err)
	}
	s1, code := e2e.V5Dial(t, conn, "s1-cert", "", "", nil)
	if code != 0 {
		t.Fatalf("certificate login: CONNACK 0x%02x", code)
	}
	if code := e2e.PublishCode(t, s1, "sensors/sensor1/cert", "1"); code != 0 {
		t.Fatalf("publish as the certificate's user: 0x%02x", code)
	}
	if code := e2e.PublishCode(t, s1, "sensors/sensor2/cert", "1"); code != 0x87 {
		t.Fatalf("publish outside the certificate user's ACL: 0x%02x", code)
	}
	if code, out := mosq(t, "mosquitto_pub", "-h", "localhost", "-p", port, "--cafile", ca.File, "--cert", ccert, "--key", ckey,
		"-q", "1", "-t", "sensors/sensor1/mosq-cert", "-m", "1"); code != 0 {
		t.Fatalf("mosquitto_pub with a client certificate: exit %d: %s", code, out)
	}

	// HTTPS for health and metrics.
	hc := &http.Client{Timeout: e2e.Timeout, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(t, ca, "", "")}}
	if body := httpGet(t, hc, "https://localhost:"+e2e.Port(p.Info.HTTP)+"/healthz"); body != "ok\n" {
		t.Fatalf("https /healthz: %q", body)
	}
	if _, err := http.Get("http://" + p.Info.HTTP + "/healthz"); err == nil {
		// Plain HTTP to a TLS port gets a 400 from net/http, not a health answer.
		if body := httpGet(t, nil, "http://"+p.Info.HTTP+"/healthz"); body == "ok\n" {
			t.Fatal("plain HTTP served")
		}
	}
}

// hubSecureACL lets each edge use only its own sync topics (its user name is
// its node id) and the admin run commands on the hub.
const hubSecureACL = `
user admin
topic readwrite #
topic write $ferrite/cmd

pattern readwrite $ferrite/sync/%u/#
pattern write $ferrite/status/%u
pattern read $ferrite/status/hub-1
pattern readwrite e2e/reply/%c
`

// The hub link over mqtts: an edge that trusts the hub's CA syncs (logging
// in with a client certificate, or with a password); an edge given another
// CA does not, and says why in EDGE.STATUS.
func TestHubLinkOverMQTTS(t *testing.T) {
	dir := t.TempDir()
	passwd, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	ferritePasswd(t, "-c", "-b", passwd, "admin", "admin-pw")
	ferritePasswd(t, "-b", passwd, "edge-b", "edge-b-pw")
	if err := os.WriteFile(acl, []byte(hubSecureACL), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := pki.NewCA(t, "hub-ca")
	cert, key := ca.Issue("hub", true)
	hub := e2e.Start(t, fmt.Sprintf(`
node_id: hub-1
mode: hub
broker:
  listen: 127.0.0.1:0
  auth:
    anonymous_from_loopback: false
    password_file: %s
    acl_file: %s
  tls:
    listen: 127.0.0.1:0
    cert: %s
    key: %s
    client_ca: %s
    use_identity_as_username: true
http:
  listen: 127.0.0.1:0
`, passwd, acl, cert, key, ca.File))
	url := "mqtts://" + hub.Info.MQTTS
	hconn, err := e2e.Dial(t, hub.MQTTAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := e2e.NewCommanderAs(t, hconn, "admin", "admin-pw")

	ecert, ekey := ca.Issue("edge-a", false) // the certificate's CN is the edge's user
	a := e2e.NewCommander(t, e2e.Start(t, edgeConfig("edge-a", url), "FERRITE_SYNC_TLS_CA="+ca.File,
		"FERRITE_SYNC_TLS_CERT="+ecert, "FERRITE_SYNC_TLS_KEY="+ekey).MQTTAddr())
	b := e2e.NewCommander(t, e2e.Start(t, edgeConfig("edge-b", url), "FERRITE_SYNC_TLS_CA="+ca.File,
		"FERRITE_SYNC_USERNAME=edge-b", "FERRITE_SYNC_PASSWORD=edge-b-pw").MQTTAddr())
	a.Do(t, "SET", "t:a", "from-a")
	b.Do(t, "SET", "t:b", "from-b")
	for _, k := range []string{"t:a", "t:b"} {
		e2e.Eventually(t, k+" on the hub", func() bool {
			raw, errText := h.Try(t, "GET", k)
			return errText == "" && string(raw) != "null"
		})
	}
	e2e.Eventually(t, "t:b relayed to edge-a", func() bool {
		raw, _ := a.Try(t, "GET", "t:b")
		return string(raw) == `"from-b"`
	})

	// A wrong CA: the edge refuses the hub's certificate and reports it.
	other := pki.NewCA(t, "not-the-hub")
	bad := e2e.Start(t, edgeConfig("edge-c", url), "FERRITE_SYNC_TLS_CA="+other.File,
		"FERRITE_SYNC_USERNAME=edge-b", "FERRITE_SYNC_PASSWORD=edge-b-pw")
	c := e2e.NewCommander(t, bad.MQTTAddr())
	e2e.Eventually(t, "a certificate error in EDGE.STATUS", func() bool {
		var st map[string]any
		c.DoInto(t, &st, "EDGE.STATUS")
		e, _ := st["sync_error"].(string)
		return st["hub_connected"] == false && strings.Contains(e, "certificate")
	})
	if _, errText := c.Try(t, "EDGE.SYNC"); errText == "" {
		t.Fatal("EDGE.SYNC succeeded with a hub certificate the edge cannot verify")
	}
	if !strings.Contains(bad.Output(), "certificate") {
		t.Fatalf("the edge's log does not name the certificate problem:\n%s", bad.Output())
	}
}

// SIGHUP reloads the password and ACL files: a new user can log in at
// once, connected clients stay connected and follow the new rules, a bad
// file keeps the previous one, a removed user is disconnected.
func TestSIGHUPReloadsUsers(t *testing.T) {
	passwd, acl := secureFiles(t)
	p := e2e.Start(t, secureConfig(passwd, acl))
	addr := p.MQTTAddr()
	dial := func() net.Conn {
		c, err := e2e.Dial(t, addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reloads := func(result string) int {
		m := httpGet(t, nil, "http://"+p.Info.HTTP+"/metrics")
		var n int
		fmt.Sscanf(grepAfter(m, `ferrite_auth_reloads_total{result="`+result+`"} `), "%d", &n)
		return n
	}
	hup := func(result string) {
		t.Helper()
		before := reloads(result)
		if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		e2e.Eventually(t, "reload "+result, func() bool { return reloads(result) > before })
	}
	recv := make(chan *paho.Publish, 8)
	s1, _ := e2e.V5Dial(t, dial(), "s1", "sensor1", "sensor1-pw", recv)
	e2e.SubscribeCode(t, s1, "sensors/sensor1/#")
	if _, code := e2e.V5Dial(t, dial(), "s2", "sensor2", "sensor2-pw", nil); code != 0x86 {
		t.Fatalf("sensor2 before it exists: 0x%02x", code)
	}

	ferritePasswd(t, "-b", passwd, "sensor2", "sensor2-pw")
	hup("ok")
	s2recv := make(chan *paho.Publish, 8)
	s2, code := e2e.V5Dial(t, dial(), "s2", "sensor2", "sensor2-pw", s2recv)
	if code != 0 {
		t.Fatalf("sensor2 after SIGHUP: 0x%02x", code)
	}
	e2e.SubscribeCode(t, s2, "sensors/sensor2/#")
	// sensor1 kept its connection and subscription through the reload.
	if code := e2e.PublishCode(t, s1, "sensors/sensor1/x", "after reload"); code != 0 {
		t.Fatalf("sensor1 after reload: 0x%02x", code)
	}
	if m := e2e.Receive(t, recv, "sensor1's own message"); string(m.Payload) != "after reload" {
		t.Fatalf("got %q", m.Payload)
	}

	// A broken ACL: the reload fails, the old rules stay, nobody is dropped.
	if err := os.WriteFile(acl, []byte("user sensor1\ntopic readwrite a/#/b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("error")
	if code := e2e.PublishCode(t, s1, "sensors/sensor1/x", "still"); code != 0 {
		t.Fatalf("sensor1 after a failed reload: 0x%02x", code)
	}
	e2e.Receive(t, recv, "sensor1's message after the failed reload")

	// New rules apply to connected clients' next publishes; a removed user
	// is disconnected.
	if err := os.WriteFile(acl, []byte("user sensor1\ntopic readwrite sensors/sensor1/new/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ferritePasswd(t, "-D", passwd, "sensor2")
	hup("ok")
	if code := e2e.PublishCode(t, s1, "sensors/sensor1/x", "old grant"); code != 0x87 {
		t.Fatalf("sensor1's old grant after reload: 0x%02x", code)
	}
	if code := e2e.PublishCode(t, s1, "sensors/sensor1/new/x", "new grant"); code != 0 {
		t.Fatalf("sensor1's new grant after reload: 0x%02x", code)
	}
	e2e.Eventually(t, "sensor2 disconnected", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := s2.Publish(ctx, &paho.Publish{Topic: "sensors/sensor2/x", QoS: 1, Payload: []byte("x")})
		return err != nil
	})
	if !p.Alive() {
		t.Fatal("ferrite died")
	}
}

// grepAfter returns what follows the first occurrence of prefix on its line.
func grepAfter(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}
