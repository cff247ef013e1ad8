package syncer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The hub link: one MQTT 3.1.1 connection (paho.mqtt.golang), clean
// session, QoS 1, our own reconnection and backoff (paho's auto-reconnect
// is off: the core decides when to retry). Every sync message is
// acknowledged at the application level, so a message the broker drops
// (subscriber momentarily absent, session gone) is resent by the protocol;
// a persistent session would only replay stale messages.

// Topics, under a configurable prefix (default "$ferrite").
func upTopic(prefix, node string) string     { return prefix + "/sync/" + node + "/up" }
func downTopic(prefix, node string) string   { return prefix + "/sync/" + node + "/down" }
func statusTopic(prefix, node string) string { return prefix + "/status/" + node }

// Status payloads (retained; the offline one is also the last will).
const (
	statusOnline  = "online"
	statusOffline = "offline"
)

// DefaultTopicPrefix is the prefix of the sync and status topics.
const DefaultTopicPrefix = "$ferrite"

// validNodeID reports why id cannot name a node (it is a topic level).
func validNodeID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > MaxNodeID:
		return fmt.Errorf("%d bytes, more than %d", len(id), MaxNodeID)
	case !utf8.ValidString(id):
		return errors.New("not valid UTF-8")
	case strings.ContainsAny(id, "/+#\x00"):
		return errors.New("contains / + # or NUL (it is an MQTT topic level)")
	case strings.Contains(id, "$"):
		// It separates a node id from an incarnation in actor names
		// (store/actor.go): a node named "e$abcdefgh" would write as
		// another node's data directory.
		return errors.New("contains $ (it separates the node id from the incarnation in actor names)")
	}
	return nil
}

func validPrefix(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case strings.ContainsAny(p, "+#\x00"):
		return errors.New("contains + # or NUL")
	case strings.HasSuffix(p, "/"):
		return errors.New("ends with /")
	}
	return nil
}

// inbound is a message received on a subscription.
type inbound struct {
	topic    string
	payload  []byte
	retained bool
}

// link is a connected MQTT client. Publish does not wait for the PUBACK
// (the protocol has its own acks) but reports an error the client knows
// at once (not connected, write timeout).
type link interface {
	Publish(topic string, payload []byte, retained bool) error
	Subscribe(topic string) error
	// Close disconnects; graceful first publishes the retained offline
	// status (a clean disconnect suppresses the last will).
	Close(graceful bool)
}

// linkConfig configures a dial.
type linkConfig struct {
	URL            string
	TLS            *tls.Config
	Username       string
	Password       string
	ClientID       string
	StatusTopic    string // retained online/offline, last will
	Subscribe      []string
	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	WriteTimeout   time.Duration
	OnMessage      func(inbound)
	OnLost         func(error)
	Counters       *linkCounters
}

// linkCounters count the bytes and messages of a link (for metrics and
// LinkStats); shared across reconnections.
type linkCounters struct {
	bytesOut, bytesIn atomic.Uint64 // sync message payloads
	msgsOut, msgsIn   atomic.Uint64
	wireOut, wireIn   atomic.Uint64 // MQTT bytes: PUBLISH packets, and the PUBACKs answering them
}

// publishSize is the size of an MQTT 3.1.1 QoS 1 PUBLISH packet: fixed
// header (type, remaining length), topic, packet id, payload.
func publishSize(topic string, payload int) uint64 {
	rem := 2 + len(topic) + 2 + payload
	return uint64(1 + uvarintLen(uint64(rem)) + rem)
}

const pubackSize = 4

// dialFunc connects; tests wrap it to inject faults.
type dialFunc func(ctx context.Context, cfg linkConfig) (link, error)

// brokerURL checks a mqtt:// or mqtts:// URL and returns it in the form
// paho expects.
func brokerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "tcp"
	case "mqtts", "ssl", "tls":
		u.Scheme = "ssl"
	default:
		return "", fmt.Errorf("scheme %q (want mqtt:// or mqtts://)", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", errors.New("no host")
	}
	if u.Port() == "" {
		port := "1883"
		if u.Scheme == "ssl" {
			port = "8883"
		}
		u.Host = u.Hostname() + ":" + port
		if strings.Contains(u.Hostname(), ":") {
			u.Host = "[" + u.Hostname() + "]:" + port
		}
	}
	return u.String(), nil
}

type pahoLink struct {
	c      mqtt.Client
	cfg    linkConfig
	closed atomic.Bool
}

// dialPaho connects with paho, subscribes, and publishes the retained
// online status.
func dialPaho(ctx context.Context, cfg linkConfig) (link, error) {
	u, err := brokerURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	l := &pahoLink{cfg: cfg}
	o := mqtt.NewClientOptions().
		AddBroker(u).
		SetClientID(cfg.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(cfg.KeepAlive/2+time.Second).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.WriteTimeout).
		SetBinaryWill(cfg.StatusTopic, []byte(statusOffline), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			if !l.closed.Load() && cfg.OnLost != nil {
				cfg.OnLost(err)
			}
		})
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		o.SetPassword(cfg.Password)
	}
	l.c = mqtt.NewClient(o)
	if err := wait(ctx, l.c.Connect(), cfg.ConnectTimeout); err != nil {
		l.c.Disconnect(0)
		return nil, err
	}
	for _, t := range cfg.Subscribe {
		if err := l.Subscribe(t); err != nil {
			l.Close(false)
			return nil, err
		}
	}
	if err := wait(ctx, l.c.Publish(cfg.StatusTopic, 1, true, []byte(statusOnline)), cfg.ConnectTimeout); err != nil {
		l.Close(false)
		return nil, fmt.Errorf("publish status: %w", err)
	}
	return l, nil
}

// wait waits for a paho token, ctx, or the timeout.
func wait(ctx context.Context, t mqtt.Token, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("no answer from the broker in %v", timeout)
	}
}

func (l *pahoLink) Subscribe(topic string) error {
	t := l.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if c := l.cfg.Counters; c != nil {
			c.bytesIn.Add(uint64(len(m.Payload())))
			c.msgsIn.Add(1)
			c.wireIn.Add(publishSize(m.Topic(), len(m.Payload())))
			c.wireOut.Add(pubackSize)
		}
		// Never block paho's router: the receiver's queue is bounded and
		// drops on overflow (the protocol resends).
		l.cfg.OnMessage(inbound{topic: m.Topic(), payload: m.Payload(), retained: m.Retained()})
	})
	if err := wait(context.Background(), t, l.cfg.ConnectTimeout); err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	return nil
}

func (l *pahoLink) Publish(topic string, payload []byte, retained bool) error {
	t := l.c.Publish(topic, 1, retained, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return err
		}
	default:
	}
	if c := l.cfg.Counters; c != nil {
		c.bytesOut.Add(uint64(len(payload)))
		c.msgsOut.Add(1)
		c.wireOut.Add(publishSize(topic, len(payload)))
		c.wireIn.Add(pubackSize)
	}
	return nil
}

func (l *pahoLink) Close(graceful bool) {
	if l.closed.Swap(true) {
		return
	}
	// A clean DISCONNECT suppresses the last will: say offline first (best
	// effort; a dead link cannot, and then the broker's keepalive expiry
	// publishes the will anyway).
	if l.c.IsConnected() {
		grace := 250 * time.Millisecond
		if graceful {
			grace = time.Second
		}
		_ = wait(context.Background(), l.c.Publish(l.cfg.StatusTopic, 1, true, []byte(statusOffline)), grace)
		l.c.Disconnect(100)
		return
	}
	l.c.Disconnect(0)
}
