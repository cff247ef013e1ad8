package broker

import (
	"crypto/tls"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/ferrite-edge/ferrite/test/pki"
)

// tlsFixture is a broker with mqtts and wss listeners, client certificates
// verified against ca, and identity-as-username on.
func tlsFixture(t *testing.T, require bool) (*authFixture, *pki.CA) {
	t.Helper()
	ca := pki.NewCA(t, "test")
	cert, key := ca.Issue("broker", true)
	st, err := LoadServerTLS(TLSFiles{Cert: cert, Key: key, ClientCA: ca.File, RequireClientCert: require})
	if err != nil {
		t.Fatal(err)
	}
	f := newAuthFixture(t, AuthOptions{}, Options{
		TLSListen: "127.0.0.1:0", TLSWebSocket: "127.0.0.1:0", TLS: st, IdentityAsUsername: true,
	})
	return f, ca
}

func tlsDial(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestTLSListenerClientCertificates(t *testing.T) {
	f, ca := tlsFixture(t, false)
	addr := f.b.TLSAddr()
	if addr == "" || f.b.TLSWebSocketAddr() == "" {
		t.Fatal("TLS listeners not bound")
	}
	// The certificate's CN is the user name: no password needed.
	cert, key := ca.Issue("sensor1", false)
	conn, err := tlsDial(t, addr, pki.ClientTLS(t, ca, cert, key))
	if err != nil {
		t.Fatal(err)
	}
	c, code := dialV5(t, conn, "s1", "", "", nil)
	if code != 0 {
		t.Fatalf("certificate client: CONNACK 0x%02x", code)
	}
	if code := publishCode(t, c, "sensors/sensor1/t", "1", nil); code != 0 {
		t.Fatalf("publish as sensor1: 0x%02x", code)
	}
	if code := publishCode(t, c, "sensors/admin/t", "1", nil); code != 0x87 {
		t.Fatalf("publish outside sensor1's rules: 0x%02x", code)
	}
	// Claiming another user name in CONNECT changes nothing: the CN wins.
	conn2, err := tlsDial(t, addr, pki.ClientTLS(t, ca, cert, key))
	if err != nil {
		t.Fatal(err)
	}
	c2, code := dialV5(t, conn2, "s1b", "admin", "wrong", nil)
	if code != 0 {
		t.Fatalf("certificate client claiming admin: 0x%02x", code)
	}
	if code := publishCode(t, c2, "anything/else", "1", nil); code != 0x87 {
		t.Fatalf("a certificate client got another user's rights: 0x%02x", code)
	}
	// No certificate: the password path, over TLS.
	conn3, err := tlsDial(t, addr, pki.ClientTLS(t, ca, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, code := dialV5(t, conn3, "a", "admin", "admin-pw", nil); code != 0 {
		t.Fatalf("password over TLS: 0x%02x", code)
	}
	// A client certificate from another CA fails the handshake.
	other := pki.NewCA(t, "other")
	ocert, okey := other.Issue("sensor1", false)
	forced := pki.ClientTLS(t, ca, ocert, okey)
	kp := forced.Certificates[0]
	// Go's client only offers a certificate the server's CA list names:
	// force it, as a hostile client would.
	forced.Certificates = nil
	forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	if conn, err := tlsDial(t, addr, forced); err == nil {
		// TLS 1.3: the client learns of the refusal on its first read.
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("certificate of an unknown CA accepted")
		}
	}
	// A client that does not trust the broker's CA refuses it.
	if _, err := tlsDial(t, addr, pki.ClientTLS(t, other, "", "")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: %v", err)
	}
	// TLS 1.1 is refused.
	old := pki.ClientTLS(t, ca, "", "")
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := tlsDial(t, addr, old); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	eventually(t, "handshake failures counted", func() bool {
		return counterValue(f.b.metrics.tlsFailures.WithLabelValues(ListenerTLS)) >= 2
	})
}

func TestTLSRequireClientCert(t *testing.T) {
	f, ca := tlsFixture(t, true)
	conn, err := tlsDial(t, f.b.TLSAddr(), pki.ClientTLS(t, ca, "", ""))
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("client without a certificate accepted")
		}
	}
	if _, err := LoadServerTLS(TLSFiles{Cert: "x", Key: "y", RequireClientCert: true}); err == nil {
		t.Fatal("require_client_cert without client_ca accepted")
	}
}

// The packet guard reads what TLS decrypted: the crashing SUBSCRIBE closes
// only its own TLS connection.
func TestTLSGuardedHostilePacket(t *testing.T) {
	f, ca := tlsFixture(t, false)
	good, _ := dialV5(t, tcpDial(t, f.b.Addr()), "good", "admin", "admin-pw", nil)
	conn, err := tlsDial(t, f.b.TLSAddr(), pki.ClientTLS(t, ca, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	// Anonymous clients are refused here: log in with a password.
	connect := buildConnectV5("h", "admin", "admin-pw")
	if _, err := conn.Write(connect); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(conn, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("CONNACK: %x %v", hdr, err)
	}
	if _, err := io.ReadFull(conn, make([]byte, hdr[1])); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(hazardSubscribe); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn)
	if code := publishCode(t, good, "x/y", "still here", nil); code != 0 {
		t.Fatalf("other client: 0x%02x", code)
	}
	if v := counterValue(f.b.metrics.packetsRejected.WithLabelValues(reasonPanic)); v != 1 {
		t.Fatalf("panics caught by the guard: %v", v)
	}
}

// buildConnectV5 encodes an MQTT 5 CONNECT with user name and password.
func buildConnectV5(id, user, pass string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 5, 0xc2, 0, 60, 0) // v5, user+password+clean start, keepalive 60, no properties
	body = append(body, str(id)...)
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

func TestTLSWebSocket(t *testing.T) {
	f, ca := tlsFixture(t, false)
	cert, key := ca.Issue("sensor1", false)
	o := pahov3.NewClientOptions().AddBroker("wss://localhost:" + portOf(f.b.TLSWebSocketAddr()) + "/mqtt").
		SetClientID("wss1").SetAutoReconnect(false).SetTLSConfig(pki.ClientTLS(t, ca, cert, key))
	c := pahov3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("wss connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	recv := make(chan *paho.Publish, 1)
	admin, _ := dialV5(t, tcpDial(t, f.b.Addr()), "adm", "admin", "admin-pw", recv)
	subscribeCode(t, admin, "sensors/#")
	if tok := c.Publish("sensors/sensor1/ws", 1, false, "over wss"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if m := recvOne(t, recv, "wss message"); string(m.Payload) != "over wss" {
		t.Fatalf("got %q", m.Payload)
	}
}

func TestServerTLSReload(t *testing.T) {
	ca := pki.NewCA(t, "r")
	cert, key := ca.Issue("broker", true)
	st, err := LoadServerTLS(TLSFiles{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, Options{TLSListen: "127.0.0.1:0", TLS: st})
	serialOf := func() string {
		c, err := tlsDial(t, b.TLSAddr(), pki.ClientTLS(t, ca, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serialOf()
	cert2, key2 := ca.Issue("broker", true) // same names, new serial
	if err := os.Rename(cert2, cert); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(key2, key); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if after := serialOf(); after == before {
		t.Fatal("certificate not reloaded")
	}
	if err := os.WriteFile(cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(); err == nil {
		t.Fatal("bad certificate reloaded")
	}
	serialOf() // the previous certificate is still served
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}
