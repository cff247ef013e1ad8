package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
)

// Commander sends $ferrite/cmd requests over one MQTT 5 connection and
// matches replies by correlation data.
type Commander struct {
	c     *paho.Client
	reply string
	seq   atomic.Uint64
	mu    sync.Mutex
	wait  map[string]chan []byte
}

var commanders atomic.Uint64

// NewCommander connects to addr (host:port) and subscribes to its own reply
// topic.
func NewCommander(t testing.TB, addr string) *Commander {
	t.Helper()
	id := fmt.Sprintf("e2e-cmd-%d", commanders.Add(1))
	cm := &Commander{reply: "e2e/reply/" + id, wait: make(map[string]chan []byte)}
	recv := make(chan *paho.Publish, 64)
	cm.c = V5Client(t, addr, id, recv)
	V5Subscribe(t, cm.c, cm.reply, 1)
	go cm.dispatch(recv)
	t.Cleanup(func() { close(recv) })
	return cm
}

// Try runs one command (sent as a JSON array, so no quoting issues) and
// returns the raw JSON reply and the error text of an {"error": ...} reply.
func (cm *Commander) Try(t testing.TB, args ...string) (json.RawMessage, string) {
	t.Helper()
	corr := strconv.FormatUint(cm.seq.Add(1), 10)
	ch := make(chan []byte, 1)
	cm.mu.Lock()
	cm.wait[corr] = ch
	cm.mu.Unlock()
	payload, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	_, err := cm.c.Publish(ctx, &paho.Publish{Topic: "$ferrite/cmd", QoS: 1, Payload: payload,
		Properties: &paho.PublishProperties{ResponseTopic: cm.reply, CorrelationData: []byte(corr)}})
	if err != nil {
		t.Fatalf("command %v: %v", args, err)
	}
	select {
	case b := <-ch:
		var e struct {
			Error *string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != nil {
			return b, *e.Error
		}
		return b, ""
	case <-time.After(Timeout):
		t.Fatalf("no reply to %v", args)
		return nil, ""
	}
}

// Do runs a command that must succeed and decodes its reply into a value
// of type any (use DoInto for a typed reply).
func (cm *Commander) Do(t testing.TB, args ...string) any {
	t.Helper()
	var v any
	cm.DoInto(t, &v, args...)
	return v
}

// DoInto runs a command that must succeed and decodes its reply into v.
func (cm *Commander) DoInto(t testing.TB, v any, args ...string) {
	t.Helper()
	raw, errText := cm.Try(t, args...)
	if errText != "" {
		t.Fatalf("%v: error %q", args, errText)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%v: reply %s: %v", args, raw, err)
	}
}

// Eventually polls cond every 20ms until it holds or Timeout passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a process that must keep its address across restarts (a hub its
// edges reconnect to).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Race reports whether the tests (and so the binary under test) are built
// with the race detector, which inflates and pins a process's RSS.
func Race() bool { return raceEnabled }

// lockedConn makes paho.golang write each packet atomically. paho.golang
// v0.23.0 writes a packet's fixed header and body as net.Buffers and locks
// around them only when the connection implements sync.Locker; on a
// *tls.Conn that is several Write calls, so a keepalive PINGREQ written
// concurrently can land inside a PUBLISH, which the broker rightly closes
// as malformed.
type lockedConn struct {
	net.Conn
	sync.Mutex
}
