package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// authFixture is a broker with a FileAuth over a password file and an ACL
// written to a temp dir.
type authFixture struct {
	b      *Broker
	auth   *FileAuth
	reg    *prometheus.Registry
	passwd string
	acl    string
}

const fixtureACL = `
topic read public/#
user sensor1
topic readwrite sensors/sensor1/#
user admin
topic readwrite #
topic write $ferrite/cmd
topic read reply/admin/#
topic write reply/admin/#
user monitor
topic write $ferrite/cmd
`

func newAuthFixture(t *testing.T, opts AuthOptions, bopts Options) *authFixture {
	t.Helper()
	dir := t.TempDir()
	f := &authFixture{reg: prometheus.NewRegistry(), passwd: filepath.Join(dir, "passwd"), acl: filepath.Join(dir, "acl")}
	pf := NewPasswordFile()
	for _, u := range []string{"sensor1", "admin", "monitor"} {
		if err := pf.Set(u, u+"-pw", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := pf.Save(f.passwd); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.acl, []byte(fixtureACL), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.PasswordFile, opts.ACLFile = f.passwd, f.acl
	opts.Logger, opts.Registerer = testLogger(t), f.reg
	a, err := NewFileAuth(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	bopts.Auth = a
	bopts.Registerer = f.reg
	f.b = startBroker(t, bopts)
	return f
}

// dialV5 connects an MQTT 5 client with credentials; it returns the CONNACK
// reason code and, on success, the client.
func dialV5(t testing.TB, conn net.Conn, id, user, pass string, recv chan<- *paho.Publish) (*paho.Client, byte) {
	t.Helper()
	c := newV5(conn, id, recv)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		if ack != nil {
			return nil, ack.ReasonCode
		}
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ack.ReasonCode
}

func tcpDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func subscribeCode(t testing.TB, c *paho.Client, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

func publishCode(t testing.TB, c *paho.Client, topic, payload string, props *paho.PublishProperties) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload), Properties: props})
	if r == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return r.ReasonCode
}

func TestAuthAnonymous(t *testing.T) {
	for _, tc := range []struct {
		name                string
		anonymous, loopback bool
		want                byte
	}{
		{"refused", false, false, 0x86},
		{"loopback", false, true, 0},
		{"allowed", true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuthFixture(t, AuthOptions{AllowAnonymous: tc.anonymous, AnonymousFromLoopback: tc.loopback}, Options{})
			if _, code := dialV5(t, tcpDial(t, f.b.Addr()), "anon", "", "", nil); code != tc.want {
				t.Fatalf("CONNACK 0x%02x, want 0x%02x", code, tc.want)
			}
			// MQTT 3.1.1: refused with return code 5 (not authorized) or accepted.
			o := pahov3.NewClientOptions().AddBroker("tcp://" + f.b.Addr()).SetClientID("anon3").SetAutoReconnect(false)
			c := pahov3.NewClient(o)
			tok := c.Connect()
			tok.WaitTimeout(waitTimeout)
			if (tok.Error() == nil) != (tc.want == 0) {
				t.Fatalf("v3 connect: %v", tok.Error())
			}
			c.Disconnect(0)
		})
	}
	for addr, want := range map[string]bool{"127.0.0.1:5": true, "[::1]:5": true, "10.0.0.1:5": false, "[2001:db8::1]:1": false, "garbage": false} {
		if isLoopback(addr) != want {
			t.Errorf("isLoopback(%s) != %v", addr, want)
		}
	}
}

func TestAuthPasswordsAndACL(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{}, Options{})
	addr := f.b.Addr()
	if _, code := dialV5(t, tcpDial(t, addr), "x", "sensor1", "wrong", nil); code != 0x86 {
		t.Fatalf("wrong password: CONNACK 0x%02x", code)
	}
	if _, code := dialV5(t, tcpDial(t, addr), "x", "ghost", "sensor1-pw", nil); code != 0x86 {
		t.Fatalf("unknown user: CONNACK 0x%02x", code)
	}
	adminRecv := make(chan *paho.Publish, 16)
	admin, code := dialV5(t, tcpDial(t, addr), "adm", "admin", "admin-pw", adminRecv)
	if code != 0 {
		t.Fatalf("admin: 0x%02x", code)
	}
	if c := subscribeCode(t, admin, "sensors/#"); c != 1 {
		t.Fatalf("admin subscribe: 0x%02x", c)
	}
	sensorRecv := make(chan *paho.Publish, 16)
	sensor, _ := dialV5(t, tcpDial(t, addr), "s1", "sensor1", "sensor1-pw", sensorRecv)
	// Its own topics: yes. Others', commands, sync: no.
	if c := publishCode(t, sensor, "sensors/sensor1/temp", "21", nil); c != 0 {
		t.Fatalf("own topic: 0x%02x", c)
	}
	if m := recvOne(t, adminRecv, "sensor reading"); m.Topic != "sensors/sensor1/temp" {
		t.Fatalf("admin got %s", m.Topic)
	}
	if c := publishCode(t, sensor, "sensors/other/temp", "1", nil); c != 0x87 {
		t.Fatalf("other's topic: 0x%02x", c)
	}
	if c := publishCode(t, sensor, CommandTopic, "PING", nil); c != 0x87 {
		t.Fatalf("command: 0x%02x", c)
	}
	if c := subscribeCode(t, sensor, "sensors/other/#"); c != 0x87 {
		t.Fatalf("subscribe other's: 0x%02x", c)
	}
	// A wide subscription is accepted but only delivers what may be read.
	if c := subscribeCode(t, sensor, "sensors/#"); c != 1 {
		t.Fatalf("subscribe wide: 0x%02x", c)
	}
	if c := publishCode(t, admin, "sensors/other/temp", "secret", nil); c != 0 {
		t.Fatalf("admin publish: 0x%02x", c)
	}
	if c := publishCode(t, admin, "sensors/sensor1/cmd", "visible", nil); c != 0 {
		t.Fatalf("admin publish: 0x%02x", c)
	}
	if m := recvOne(t, sensorRecv, "delivery"); m.Topic != "sensors/sensor1/cmd" {
		t.Fatalf("sensor received %s %q: deliveries are not checked", m.Topic, m.Payload)
	}
	// The admin runs commands; "#" alone would not have granted them.
	reply := func(c *paho.Client, recv chan *paho.Publish, cmd string) map[string]any {
		t.Helper()
		if code := publishCode(t, c, CommandTopic, cmd, &paho.PublishProperties{ResponseTopic: "reply/admin/1", CorrelationData: []byte(cmd)}); code != 0 {
			t.Fatalf("%s: 0x%02x", cmd, code)
		}
		for {
			m := recvOne(t, recv, "reply to "+cmd)
			if m.Topic != "reply/admin/1" {
				continue
			}
			var v map[string]any
			_ = json.Unmarshal(m.Payload, &v)
			if v == nil {
				v = map[string]any{"result": string(m.Payload)}
			}
			return v
		}
	}
	subscribeCode(t, admin, "reply/admin/#")
	if r := reply(admin, adminRecv, "PING"); r["result"] != `"PONG"` {
		t.Fatalf("admin PING: %v", r)
	}
	if v := counterValue(f.auth.denied.WithLabelValues("write")); v < 2 {
		t.Fatalf("write denials counted: %v", v)
	}
}

func TestAuthCommandRoles(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{CommandRoles: map[string]string{"monitor": RoleMonitor}}, Options{})
	for _, c := range []Command{
		{Name: "STAT", ReadOnly: true, Func: func(context.Context, *Request) (any, error) { return "stat", nil }},
		{Name: "WIPE", Func: func(context.Context, *Request) (any, error) { return "wiped", nil }},
	} {
		if err := f.b.Router().Register(c); err != nil {
			t.Fatal(err)
		}
	}
	run := func(user, cmd string) string {
		t.Helper()
		recv := make(chan *paho.Publish, 4)
		c, code := dialV5(t, tcpDial(t, f.b.Addr()), "cli-"+user, user, user+"-pw", recv)
		if code != 0 {
			t.Fatalf("connect %s: 0x%02x", user, code)
		}
		// No Response Topic: the reply goes to $ferrite/reply/<client id>,
		// which every client may read without an ACL rule.
		subscribeCode(t, c, ReplyTopicPrefix+"cli-"+user)
		publishCode(t, c, CommandTopic, cmd, nil)
		return string(recvOne(t, recv, cmd+" reply").Payload)
	}
	if got := run("monitor", "STAT"); got != `"stat"` {
		t.Fatalf("monitor STAT: %s", got)
	}
	if got := run("monitor", "WIPE"); !strings.Contains(got, "not authorized") || !strings.Contains(got, "admin role") {
		t.Fatalf("monitor WIPE: %s", got)
	}
	if got := run("admin", "WIPE"); got != `"wiped"` {
		t.Fatalf("admin WIPE: %s", got)
	}
	if _, err := NewFileAuth(AuthOptions{CommandRoles: map[string]string{"x": "root"}}); err == nil {
		t.Fatal("unknown role accepted")
	}
}

func TestAuthReloadKeepsClients(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{}, Options{})
	addr := f.b.Addr()
	sensor, _ := dialV5(t, tcpDial(t, addr), "s1", "sensor1", "sensor1-pw", nil)
	monitorDisc := make(chan *paho.Disconnect, 1)
	mconn := tcpDial(t, addr)
	mcfg := paho.ClientConfig{Conn: mconn, ClientID: "mon", OnServerDisconnect: func(d *paho.Disconnect) { monitorDisc <- d }}
	mon := paho.NewClient(mcfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := mon.Connect(ctx, &paho.Connect{ClientID: "mon", CleanStart: true, KeepAlive: 30,
		Username: "monitor", UsernameFlag: true, Password: []byte("monitor-pw"), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	// A bad file on reload: the previous files stay in force.
	if err := os.WriteFile(f.acl, []byte("bogus line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Reload(); !errors.Is(err, ErrBadACLFile) {
		t.Fatalf("reload of a bad ACL: %v", err)
	}
	if c := publishCode(t, sensor, "sensors/sensor1/t", "1", nil); c != 0 {
		t.Fatalf("after failed reload: 0x%02x", c)
	}
	// New rules and a new user; the monitor user is removed.
	pf, err := LoadPasswordFile(f.passwd)
	if err != nil {
		t.Fatal(err)
	}
	pf.Delete("monitor")
	if err := pf.Set("newbie", "newbie-pw", ""); err != nil {
		t.Fatal(err)
	}
	if err := pf.Save(f.passwd); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.acl, []byte("user sensor1\ntopic write sensors/sensor1/new/#\nuser newbie\ntopic write n/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := f.b.DisconnectRevoked(); n != 1 {
		t.Fatalf("revoked %d clients, want 1 (monitor)", n)
	}
	if d := recvOne(t, monitorDisc, "monitor's disconnect"); d.ReasonCode != 0x87 {
		t.Fatalf("monitor disconnect reason 0x%02x", d.ReasonCode)
	}
	// The sensor stayed connected; its next publishes follow the new rules.
	if c := publishCode(t, sensor, "sensors/sensor1/t", "1", nil); c != 0x87 {
		t.Fatalf("old grant after reload: 0x%02x", c)
	}
	if c := publishCode(t, sensor, "sensors/sensor1/new/t", "1", nil); c != 0 {
		t.Fatalf("new grant after reload: 0x%02x", c)
	}
	if _, code := dialV5(t, tcpDial(t, addr), "nb", "newbie", "newbie-pw", nil); code != 0 {
		t.Fatalf("new user: 0x%02x", code)
	}
	if v := counterValue(f.auth.reloads.WithLabelValues("error")); v != 1 {
		t.Fatalf("reload errors %v", v)
	}
}

func TestAuthWillNeedsWriteAccess(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{}, Options{})
	for topic, want := range map[string]byte{"sensors/sensor1/status": 0, "sensors/other/status": 0x86} {
		c := paho.NewClient(paho.ClientConfig{Conn: tcpDial(t, f.b.Addr()), ClientID: "w"})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: "w", CleanStart: true, KeepAlive: 30,
			Username: "sensor1", UsernameFlag: true, Password: []byte("sensor1-pw"), PasswordFlag: true,
			WillMessage: &paho.WillMessage{Topic: topic, Payload: []byte("gone")}})
		cancel()
		if ack == nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if ack.ReasonCode != want {
			t.Fatalf("will on %s: CONNACK 0x%02x, want 0x%02x", topic, ack.ReasonCode, want)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
}

func TestInternalUser(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{}, Options{})
	if _, code := dialV5(t, tcpDial(t, f.b.Addr()), "i", InternalUser, "guess", nil); code != 0x86 {
		t.Fatalf("internal user with a wrong password: 0x%02x", code)
	}
	c, code := dialV5(t, tcpDial(t, f.b.Addr()), "i", InternalUser, f.auth.InternalPassword(), nil)
	if code != 0 {
		t.Fatalf("internal user: 0x%02x", code)
	}
	if code := publishCode(t, c, "$ferrite/sync/e1/down", "x", nil); code != 0 {
		t.Fatalf("internal publish: 0x%02x", code)
	}
}

// BenchmarkFileAuthAuthorize is the cost the ACL adds to one publish (a
// write check) or one delivery (a read check).
func BenchmarkFileAuthAuthorize(b *testing.B) {
	dir := b.TempDir()
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte(fixtureACL+"\npattern readwrite devices/%c/#\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	pf := NewPasswordFile()
	_ = pf.Set("sensor1", "pw", "")
	pw := filepath.Join(dir, "passwd")
	if err := pf.Save(pw); err != nil {
		b.Fatal(err)
	}
	a, err := NewFileAuth(AuthOptions{PasswordFile: pw, ACLFile: acl, Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	c := ClientInfo{ID: "s1", Username: "sensor1", Remote: "10.0.0.2:4000", Listener: ListenerTCP, ProtocolVersion: 5}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Authorize(c, "sensors/sensor1/temperature", true) {
			b.Fatal("denied")
		}
	}
}

// A client id whose session belongs to another user is refused: mochi
// would hand the session over with its queued messages, resent without an
// ACL check (found by the security audit: bob read alice's messages).
func TestAuthClientIDOfAnotherUserRefused(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{}, Options{})
	addr := f.b.Addr()
	owner, code := dialV5(t, tcpDial(t, addr), "shared-id", "sensor1", "sensor1-pw", nil)
	if code != 0 {
		t.Fatalf("owner: CONNACK 0x%02x", code)
	}
	if _, code := dialV5(t, tcpDial(t, addr), "shared-id", "admin", "admin-pw", nil); code != 0x86 {
		t.Fatalf("another user taking the id over: CONNACK 0x%02x, want 0x86", code)
	}
	if c := publishCode(t, owner, "sensors/sensor1/temp", "21", nil); c != 0 {
		t.Fatalf("the owner was disconnected: 0x%02x", c)
	}
	// The same user may take its own session over, as MQTT says.
	if _, code := dialV5(t, tcpDial(t, addr), "shared-id", "sensor1", "sensor1-pw", nil); code != 0 {
		t.Fatalf("same user: CONNACK 0x%02x", code)
	}
	if v := counterValue(f.b.metrics.connectRefused.WithLabelValues("client_id_in_use")); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
}

// A publish through a topic alias is checked against the topic the alias
// stands for (mochi checks the ACL before resolving aliases; found by the
// security audit).
func TestAuthTopicAliasChecked(t *testing.T) {
	f := newAuthFixture(t, AuthOptions{}, Options{}) // default limits allow 64 topic aliases
	sensor, code := dialV5(t, tcpDial(t, f.b.Addr()), "s1", "sensor1", "sensor1-pw", nil)
	if code != 0 {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	alias := &paho.PublishProperties{TopicAlias: paho.Uint16(1)}
	if c := publishCode(t, sensor, "sensors/sensor1/temp", "1", alias); c != 0 {
		t.Fatalf("defining the alias: 0x%02x", c)
	}
	// An alias-only publish to an allowed topic works (it was checked
	// against "" and refused to clients without a catch-all rule).
	if c := publishCode(t, sensor, "", "2", alias); c != 0 {
		t.Fatalf("alias-only publish to an allowed topic: 0x%02x", c)
	}
	// The ACL now denies the topic: the alias does not get around it.
	if err := os.WriteFile(f.acl, []byte(fixtureACL+"user sensor1\ntopic deny sensors/sensor1/temp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := publishCode(t, sensor, "sensors/sensor1/temp", "3", nil); c != 0x87 {
		t.Fatalf("denied topic: 0x%02x", c)
	}
	if c := publishCode(t, sensor, "", "4", alias); c != 0x87 {
		t.Fatalf("denied topic through its alias: 0x%02x", c)
	}
}

// A publish through an alias the client never mapped is a protocol error:
// DISCONNECT 0x82 (mochi acknowledged it and sent it nowhere).
func TestUnknownTopicAliasDisconnects(t *testing.T) {
	b := startBroker(t, Options{})
	disc := make(chan *paho.Disconnect, 1)
	c := paho.NewClient(paho.ClientConfig{Conn: &lockedConn{Conn: tcpDial(t, b.Addr())}, ClientID: "alias",
		OnServerDisconnect: func(d *paho.Disconnect) { disc <- d }})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "alias", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = c.Publish(ctx, &paho.Publish{QoS: 1, Payload: []byte("x"), Properties: &paho.PublishProperties{TopicAlias: paho.Uint16(5)}})
	}()
	if d := recvOne(t, disc, "DISCONNECT"); d.ReasonCode != 0x82 {
		t.Fatalf("DISCONNECT 0x%02x, want 0x82", d.ReasonCode)
	}
}
