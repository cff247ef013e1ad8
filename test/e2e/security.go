package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
)

// Helpers of the security tests: clients with credentials or over TLS,
// reason codes instead of failures, the process's memory.

// Dial opens a TCP connection to addr, or TLS with cfg when cfg is not nil.
func Dial(t testing.TB, addr string, cfg *tls.Config) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: Timeout}, "tcp", addr, cfg)
	} else {
		c, err = net.DialTimeout("tcp", addr, Timeout)
	}
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// V5Dial connects an MQTT 5 client over conn, with a user name and
// password when user is not empty. It returns the CONNACK reason code (0:
// accepted) and, when accepted, the client; received publishes go to recv.
func V5Dial(t testing.TB, conn net.Conn, id, user, pass string, recv chan<- *paho.Publish) (*paho.Client, byte) {
	t.Helper()
	cfg := paho.ClientConfig{Conn: &lockedConn{Conn: conn}, ClientID: id}
	if recv != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { recv <- pr.Packet; return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		if ack != nil && ack.ReasonCode != 0 {
			return nil, ack.ReasonCode
		}
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, 0
}

// PublishCode publishes at QoS 1 and returns the PUBACK reason code.
func PublishCode(t testing.TB, c *paho.Client, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if r == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return r.ReasonCode
}

// SubscribeCode subscribes at QoS 1 and returns the SUBACK reason code.
func SubscribeCode(t testing.TB, c *paho.Client, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	r, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if r == nil || len(r.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return r.Reasons[0]
}

// NewCommanderAs is NewCommander for a client that logs in as user over
// conn (plain TCP or TLS). The ACL must let it read and write its reply
// topic, e2e/reply/<client id> ("pattern readwrite e2e/reply/%c").
func NewCommanderAs(t testing.TB, conn net.Conn, user, pass string) *Commander {
	t.Helper()
	id := fmt.Sprintf("e2e-cmd-%d", commanders.Add(1))
	cm := &Commander{reply: "e2e/reply/" + id, wait: make(map[string]chan []byte)}
	recv := make(chan *paho.Publish, 64)
	c, code := V5Dial(t, conn, id, user, pass, recv)
	if c == nil {
		t.Fatalf("commander %s: CONNACK 0x%02x", user, code)
	}
	cm.c = c
	if code := SubscribeCode(t, c, cm.reply); code > 2 {
		t.Fatalf("commander %s: subscribe to %s refused (0x%02x)", user, cm.reply, code)
	}
	go cm.dispatch(recv)
	t.Cleanup(func() { close(recv) })
	return cm
}

func (cm *Commander) dispatch(recv <-chan *paho.Publish) {
	for m := range recv {
		if m.Properties == nil {
			continue
		}
		cm.mu.Lock()
		ch := cm.wait[string(m.Properties.CorrelationData)]
		delete(cm.wait, string(m.Properties.CorrelationData))
		cm.mu.Unlock()
		if ch != nil {
			ch <- m.Payload
		}
	}
}

// RSSKiB is the resident set size of a process (Linux /proc/<pid>/status).
func RSSKiB(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// NonLoopbackIP is an address of this machine that is not a loopback one
// (a connection from it to a local listener is not "from loopback"), if
// the machine has any.
func NonLoopbackIP() (net.IP, bool) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP, true
			}
		}
	}
	return nil, false
}
