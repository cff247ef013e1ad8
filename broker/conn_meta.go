package broker

import (
	"crypto/tls"
	"errors"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"
)

// connMeta is what the broker knows about one connection beyond what mochi
// keeps: its TLS state and its publish rate limiter. It hangs off the
// guarded net.Conn that mochi holds as cl.Net.Conn, so the hook finds it
// without a map lookup.
type connMeta struct {
	tls      *tls.ConnectionState // nil for plain TCP / ws
	identity string               // set when the certificate's CN became the user name
	limiter  *rate.Limiter        // nil when publishes are not rate limited
	ids      idRemap              // see packetid.go
	// connected frees the connection's pending slot (pending.go) once its
	// CONNECT arrived.
	connected func()
	// ended is closed when mochi's attachClient for this connection has
	// returned: its goroutine will no longer touch the client map
	// (takeover.go).
	ended chan struct{}
	// retainedPhase is set while mochi sends the retained messages of a
	// SUBSCRIBE (hook.go, "Retained $ topics and wildcards").
	retainedPhase atomic.Bool
	// scanning is set while the client holds the retained-index gate for
	// a SUBSCRIBE, scanFilters is how many of its filters mochi scans
	// (retaingate.go); only the client's read goroutine touches them.
	scanning    bool
	scanFilters int
}

func (b *Broker) newConnMeta(state *tls.ConnectionState) *connMeta {
	m := &connMeta{tls: state, ended: make(chan struct{})}
	if l := b.opts.Limits; l.MaxPublishRate > 0 {
		m.limiter = rate.NewLimiter(rate.Limit(l.MaxPublishRate), l.publishBurst())
	}
	return m
}

// metaOf returns the connection metadata of a client (nil for the inline
// client and for connections that did not come through our listeners).
func metaOf(cl *mqtt.Client) *connMeta {
	if g, ok := cl.Net.Conn.(*guardConn); ok {
		return g.meta
	}
	return nil
}

// Publish rate limit outcomes (metric labels).
const (
	rateDropped      = "dropped"      // QoS 0: discarded
	rateRefused      = "refused"      // MQTT 5 QoS 1/2: PUBACK/PUBREC 0x96
	rateDisconnected = "disconnected" // MQTT 3.1.1 QoS 1/2: no way to refuse, the client is disconnected
)

// rateLimited applies the client's publish rate limit to pk. It returns nil
// when the publish may proceed, else the error OnPublish must return.
//
// A token bucket per connection (Limits.MaxPublishRate, PublishBurst)
// counts every PUBLISH, commands included. Over the limit a QoS 0 message
// is dropped; an MQTT 5 QoS 1/2 message is refused with reason code 0x96
// "message rate too high" (the client may retry later); an MQTT 3.1.1 client
// cannot be told, so it is disconnected (its unacknowledged message is
// resent when it reconnects: nothing is lost, the flood is cut).
func (b *Broker) rateLimited(cl *mqtt.Client, pk *packets.Packet) error {
	m := metaOf(cl)
	if m == nil || m.limiter == nil || m.limiter.Allow() {
		return nil
	}
	outcome := rateDropped
	switch {
	case pk.FixedHeader.Qos == 0:
	case cl.Properties.ProtocolVersion == 5:
		outcome = rateRefused
	default:
		outcome = rateDisconnected
	}
	b.metrics.rateLimited.WithLabelValues(outcome).Inc()
	b.logRate.Do(func() {
		b.log.Warn("publish rate limit exceeded", "client", cl.ID, "remote", cl.Net.Remote,
			"limit_per_second", b.opts.Limits.MaxPublishRate, "qos", pk.FixedHeader.Qos, "action", outcome)
	})
	switch outcome {
	case rateRefused:
		b.writeRefusal(cl, pk, packets.ErrMessageRateTooHigh.Code, packets.ErrMessageRateTooHigh.Reason)
	case rateDisconnected:
		_ = b.server.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
	}
	return packets.ErrRejectPacket
}

// countEstablishError counts connections mochi ended before or at CONNECT
// for a reason worth a metric.
func (b *Broker) countEstablishError(err error) {
	switch {
	case errors.Is(err, packets.ErrServerBusy):
		b.metrics.connectRefused.WithLabelValues("max_clients").Inc()
	case errors.Is(err, packets.ErrBadUsernameOrPassword):
		b.metrics.connectRefused.WithLabelValues("not_authorized").Inc()
	}
}
