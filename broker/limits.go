package broker

import (
	"errors"
	"fmt"
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Limits bound what one client can make the broker hold. mochi's zero values
// mean "unlimited" (a 256 MiB CONNECT is allocated before it is read), so every
// limit here has an explicit default and zero is not accepted.
type Limits struct {
	// MaxPacketSize is the largest control packet accepted, fixed header
	// included (as mochi counts it: remaining length + 1). Announced to MQTT 5
	// clients in CONNACK.
	MaxPacketSize uint32
	// MaxClients is the number of connected clients; further CONNECTs get
	// "server busy" (v5) / "server unavailable" (3.1.1).
	MaxClients int64
	// ReceiveMaximum is how many QoS 1/2 publishes a client may have
	// unacknowledged towards the broker [MQTT-3.3.4-7].
	ReceiveMaximum uint16
	// MaxInflight is how many QoS 1/2 messages the broker keeps in flight
	// towards one client.
	MaxInflight uint16
	// MaxQueuedMessages is the outbound queue of one client; when it is full
	// mochi drops further messages for that client (even QoS 1/2) and counts
	// them as dropped.
	MaxQueuedMessages int32
	// SessionExpiry caps how long a disconnected persistent session is kept.
	SessionExpiry time.Duration
	// MessageExpiry caps how long retained and queued messages are kept; 0
	// (the default, as in mosquitto) keeps them until they are replaced or
	// their own MQTT 5 message expiry passes. mochi applies the cap to
	// retained messages by their age too, so a cap drops every retained
	// message that old (a device's retained state, a hand-made discovery
	// config), however it was published.
	MessageExpiry time.Duration
	// TopicAliasMaximum is the number of topic aliases a client may use.
	TopicAliasMaximum uint16
	// MaxKeepalive caps the keepalive a client may ask for; a client asking
	// for 0 (no keepalive) or more gets MaxKeepalive. MQTT 5 clients are told
	// (Server Keep Alive); 3.1.1 clients are disconnected when silent for
	// 1.5 × MaxKeepalive.
	MaxKeepalive time.Duration
	// ConnectTimeout is how long a new connection may take to send CONNECT.
	ConnectTimeout time.Duration
	// HandlerTimeout bounds one synchronous handler call for a QoS 1/2
	// message; past it the message is refused (not acknowledged).
	HandlerTimeout time.Duration
	// MaxPublishRate is the sustained number of PUBLISH packets per second
	// one connection may send (a token bucket); 0 disables the limit. Over
	// it QoS 0 messages are dropped, MQTT 5 QoS 1/2 messages are refused
	// with 0x96 "message rate too high" and MQTT 3.1.1 clients sending QoS
	// 1/2 are disconnected (see Broker.rateLimited).
	MaxPublishRate float64
	// PublishBurst is the bucket's size: how many publishes may arrive at
	// once above the rate (default: one second's worth, at least 1).
	PublishBurst int
	// MaxSubscriptions is how many topic filters one client may hold;
	// further filters are refused in the SUBACK (0x97 quota exceeded for
	// MQTT 5, 0x80 for 3.1.1).
	MaxSubscriptions int
}

// connectionSlack is how many connections beyond MaxClients a listener keeps
// open, so that clients over the limit get a proper CONNACK refusal from mochi
// rather than a closed socket.
const connectionSlack = 64

// DefaultLimits returns the defaults documented in docs/OPERATIONS.md.
func DefaultLimits() Limits {
	return Limits{
		MaxPacketSize:     1 << 20,
		MaxClients:        1000,
		ReceiveMaximum:    256,
		MaxInflight:       1024,
		MaxQueuedMessages: 8192,
		SessionExpiry:     24 * time.Hour,
		MessageExpiry:     0,
		TopicAliasMaximum: 64,
		MaxKeepalive:      time.Hour,
		ConnectTimeout:    10 * time.Second,
		HandlerTimeout:    30 * time.Second,
		MaxSubscriptions:  1000,
	}
}

// Validate reports every limit that is out of range.
func (l Limits) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("broker: limits: "+format, args...))
		}
	}
	check(l.MaxPacketSize >= 64 && l.MaxPacketSize <= maxRemainingLength+5,
		"max_packet_size %d out of range [64, 268435460]", l.MaxPacketSize)
	check(l.MaxClients > 0 && l.MaxClients <= 1<<20, "max_clients %d out of range [1, 1048576]", l.MaxClients)
	check(l.ReceiveMaximum > 0, "receive_maximum must be at least 1")
	check(l.MaxInflight > 0, "max_inflight must be at least 1")
	check(l.MaxQueuedMessages > 0, "max_queued_messages must be at least 1")
	check(l.MaxSubscriptions > 0, "max_subscriptions must be at least 1")
	check(l.SessionExpiry >= 0 && l.SessionExpiry <= math.MaxUint32*time.Second,
		"session_expiry %s out of range", l.SessionExpiry)
	check(l.MessageExpiry == 0 || l.MessageExpiry >= time.Second, "message_expiry %s must be 0 (no cap) or at least 1s", l.MessageExpiry)
	check(l.MaxKeepalive >= 0 && l.MaxKeepalive <= math.MaxUint16*time.Second,
		"max_keepalive %s out of range [0s, 65535s]", l.MaxKeepalive)
	check(l.ConnectTimeout > 0, "connect_timeout must be positive")
	check(l.HandlerTimeout > 0, "handler_timeout must be positive")
	check(l.MaxPublishRate >= 0 && !math.IsInf(l.MaxPublishRate, 0) && !math.IsNaN(l.MaxPublishRate),
		"max_publish_rate %v must be a non-negative number (0 disables it)", l.MaxPublishRate)
	check(l.PublishBurst >= 0, "publish_burst %d must not be negative", l.PublishBurst)
	return errors.Join(errs...)
}

// publishBurst is PublishBurst or its default.
func (l Limits) publishBurst() int {
	if l.PublishBurst > 0 {
		return l.PublishBurst
	}
	return max(1, int(math.Ceil(l.MaxPublishRate)))
}

// capabilities maps the limits onto mochi's server capabilities.
func (l Limits) capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumPacketSize = l.MaxPacketSize
	c.MaximumClients = l.MaxClients
	c.ReceiveMaximum = l.ReceiveMaximum
	c.MaximumInflight = l.MaxInflight
	c.MaximumClientWritesPending = l.MaxQueuedMessages
	c.MaximumSessionExpiryInterval = uint32(l.SessionExpiry / time.Second)
	c.MaximumMessageExpiryInterval = int64(l.MessageExpiry / time.Second)
	c.TopicAliasMaximum = l.TopicAliasMaximum
	// mochi copies a QoS 1/2 PUBLISH's properties (user properties...)
	// into its PUBACK/PUBREC and, with them, writes the reason code it
	// holds for a QoS 1 acknowledgement, 0x01 "granted QoS 1", which is
	// no PUBACK code: MQTT.js (Node-RED, zigbee2mqtt in MQTT 5 mode)
	// reports such a publish as failed [MQTT-3.4.2-1]. Without the
	// properties mochi writes the short success form.
	c.Compatibilities.NoInheritedPropertiesOnAck = true
	return c
}

// keepaliveSeconds is MaxKeepalive in the unit of the CONNECT packet.
func (l Limits) keepaliveSeconds() uint16 {
	return uint16(l.MaxKeepalive / time.Second)
}
