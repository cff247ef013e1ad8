package ferrite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// errDataLinkDown: the external broker is not connected right now.
var errDataLinkDown = errors.New("ferrite: cloud data broker not connected")

// pahoData publishes the hub's data on an external broker (hub.broker_url)
// through a connection of its own, which paho keeps up (reconnecting with
// backoff); onConnect wakes the publisher after each (re)connection.
type pahoData struct {
	c       pahov3.Client
	timeout time.Duration
}

// newPahoData connects in the background: the first connection may come
// after the hub started (the broker may start later than the hub).
func newPahoData(n *Node, rawURL string, onConnect func()) (*pahoData, error) {
	cfg := n.cfg
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ferrite: hub.broker_url: %w", err)
	}
	switch u.Scheme {
	case "mqtt":
		u.Scheme = "tcp"
	case "mqtts":
		u.Scheme = "ssl"
	default:
		return nil, fmt.Errorf("ferrite: hub.broker_url: scheme %q (want mqtt:// or mqtts://)", u.Scheme)
	}
	tlsCfg, err := cfg.Sync.hubTLS(rawURL)
	if err != nil {
		return nil, err
	}
	log := n.log.With(LogKeyComponent, "hub-data")
	o := pahov3.NewClientOptions().
		AddBroker(u.String()).
		SetClientID("ferrite-data-" + cfg.NodeID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(cfg.Sync.BackoffMin.D()).
		SetMaxReconnectInterval(cfg.Sync.BackoffMax.D()).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(cfg.Sync.AckTimeout.D()).
		SetKeepAlive(30 * time.Second).
		SetOnConnectHandler(func(pahov3.Client) {
			log.Info("connected to the cloud data broker", "url", rawURL)
			onConnect()
		}).
		SetConnectionLostHandler(func(_ pahov3.Client, err error) {
			log.Warn("cloud data broker connection lost", "error", err)
		})
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	if cfg.Sync.Username != "" {
		o.SetUsername(cfg.Sync.Username)
		o.SetPassword(cfg.Sync.Password)
	}
	d := &pahoData{c: pahov3.NewClient(o), timeout: cfg.Sync.AckTimeout.D()}
	d.c.Connect() // with ConnectRetry, paho keeps trying in its own goroutine
	return d, nil
}

// Publish sends msgs at QoS 1 and waits for every PUBACK.
func (d *pahoData) Publish(ctx context.Context, msgs []dataMsg) error {
	if !d.c.IsConnectionOpen() {
		return errDataLinkDown
	}
	toks := make([]pahov3.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = d.c.Publish(m.topic, 1, m.retain, m.payload)
	}
	timer := time.NewTimer(d.timeout)
	defer timer.Stop()
	for _, t := range toks {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("ferrite: cloud data broker: no PUBACK within %s", d.timeout)
		}
	}
	return nil
}

// close disconnects (waiting up to 250 ms for in-flight messages).
func (d *pahoData) close() { d.c.Disconnect(250) }

// republishBuckets returns the hub's OnApplied hook and runs the publisher
// of merged buckets for cloud subscribers on a goroutine the node owns.
func (n *Node) republishBuckets(ctx context.Context, prefix string) (func(keys []string), error) {
	h, err := newHubData(prefix, n.store.Aggregate, nil, n.log.With(LogKeyComponent, "hub-data"), n.reg)
	if err != nil {
		return nil, err
	}
	if u := n.cfg.Hub.BrokerURL; u != "" {
		pd, err := newPahoData(n, u, h.connected)
		if err != nil {
			return nil, err
		}
		h.out = pd
		n.push("cloud data link", func(context.Context) error { pd.close(); return nil })
	} else {
		h.out = brokerData{n.broker}
	}
	n.goBG(ctx, "hub data", h.run)
	return h.OnApplied, nil
}
