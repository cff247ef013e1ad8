package ferrite

import (
	"math"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
)

// BrokerConfig is the broker: section.
type BrokerConfig struct {
	// Listen is the MQTT TCP address (default ":1883"; "" disables it).
	Listen string `yaml:"listen"`
	// WebSocket is the MQTT-over-WebSocket address ("" disables it).
	WebSocket string          `yaml:"websocket"`
	Auth      AuthConfig      `yaml:"auth"`
	TLS       BrokerTLSConfig `yaml:"tls"`
	Limits    BrokerLimits    `yaml:"limits"`
	Commands  CommandsConfig  `yaml:"commands"`
	// Persistence keeps retained messages and persistent sessions in the
	// data dir across restarts, as mosquitto's persistence does (default
	// true).
	Persistence bool `yaml:"persistence"`
}

// BrokerLimits is broker.limits: (see broker.Limits for each meaning).
type BrokerLimits struct {
	MaxPacketSize     Size     `yaml:"max_packet_size"`
	MaxClients        int64    `yaml:"max_clients"`
	ReceiveMaximum    int64    `yaml:"receive_maximum"`
	MaxInflight       int64    `yaml:"max_inflight"`
	MaxQueuedMessages int64    `yaml:"max_queued_messages"`
	SessionExpiry     Duration `yaml:"session_expiry"`
	MessageExpiry     Duration `yaml:"message_expiry"`
	TopicAliasMaximum int64    `yaml:"topic_alias_maximum"`
	MaxKeepalive      Duration `yaml:"max_keepalive"`
	ConnectTimeout    Duration `yaml:"connect_timeout"`
	HandlerTimeout    Duration `yaml:"handler_timeout"`
	// MaxPublishRate is the publishes per second one client may send
	// (0: unlimited); PublishBurst the bucket size (0: one second's worth).
	MaxPublishRate float64 `yaml:"max_publish_rate"`
	PublishBurst   int64   `yaml:"publish_burst"`
	// MaxSubscriptions is the topic filters one client may hold.
	MaxSubscriptions int64 `yaml:"max_subscriptions"`
}

// CommandsConfig is broker.commands: the $ferrite/cmd worker pool.
type CommandsConfig struct {
	Workers   int64    `yaml:"workers"`
	QueueSize int64    `yaml:"queue_size"`
	Timeout   Duration `yaml:"timeout"`
}

func (b *BrokerConfig) defaults() {
	l := broker.DefaultLimits()
	*b = BrokerConfig{
		Listen:      ":1883",
		Persistence: true,
		Limits: BrokerLimits{
			MaxPacketSize:     Size(l.MaxPacketSize),
			MaxClients:        l.MaxClients,
			ReceiveMaximum:    int64(l.ReceiveMaximum),
			MaxInflight:       int64(l.MaxInflight),
			MaxQueuedMessages: int64(l.MaxQueuedMessages),
			SessionExpiry:     Duration(l.SessionExpiry),
			MessageExpiry:     Duration(l.MessageExpiry),
			TopicAliasMaximum: int64(l.TopicAliasMaximum),
			MaxKeepalive:      Duration(l.MaxKeepalive),
			ConnectTimeout:    Duration(l.ConnectTimeout),
			HandlerTimeout:    Duration(l.HandlerTimeout),
			MaxSubscriptions:  int64(l.MaxSubscriptions),
		},
		Commands: CommandsConfig{Workers: 4, QueueSize: 256, Timeout: Duration(10 * time.Second)},
		TLS:      BrokerTLSConfig{Listen: ":8883"},
	}
	b.Auth.defaults()
}

func (b *BrokerConfig) validate(s section, _ *Config) {
	if b.Listen == "" && b.WebSocket == "" && !b.TLS.Enabled() {
		s.add("listen", "no MQTT listener: set listen, websocket or tls")
	}
	b.Auth.validate(s.in("auth"))
	b.TLS.validate(s.in("tls"))
	validAddr(s, "listen", b.Listen)
	validAddr(s, "websocket", b.WebSocket)
	l, ls := b.Limits, s.in("limits")
	ls.inRange("max_packet_size", int64(l.MaxPacketSize), 64, 268_435_460)
	ls.inRange("max_clients", l.MaxClients, 1, 1<<20)
	ls.inRange("receive_maximum", l.ReceiveMaximum, 1, math.MaxUint16)
	ls.inRange("max_inflight", l.MaxInflight, 1, math.MaxUint16)
	ls.inRange("max_queued_messages", l.MaxQueuedMessages, 1, math.MaxInt32)
	ls.inRange("topic_alias_maximum", l.TopicAliasMaximum, 0, math.MaxUint16)
	durationRange(ls, "session_expiry", l.SessionExpiry, 0, math.MaxUint32*time.Second)
	if l.MessageExpiry != 0 { // 0: no cap
		durationRange(ls, "message_expiry", l.MessageExpiry, time.Second, 100*365*24*time.Hour)
	}
	durationRange(ls, "max_keepalive", l.MaxKeepalive, 0, math.MaxUint16*time.Second)
	if d := l.MaxKeepalive.D(); d > 0 && d < time.Second {
		ls.add("max_keepalive", "%s is below the 1s resolution of MQTT keepalives (0 means no cap)", l.MaxKeepalive)
	}
	durationRange(ls, "connect_timeout", l.ConnectTimeout, time.Millisecond, time.Hour)
	durationRange(ls, "handler_timeout", l.HandlerTimeout, time.Millisecond, time.Hour)
	if r := l.MaxPublishRate; r < 0 || r > 1e9 || math.IsNaN(r) {
		ls.add("max_publish_rate", "%v out of range [0, 1e9] (0 disables the limit)", r)
	}
	ls.inRange("publish_burst", l.PublishBurst, 0, 1<<30)
	ls.inRange("max_subscriptions", l.MaxSubscriptions, 1, 1<<20)
	cs := s.in("commands")
	cs.inRange("workers", b.Commands.Workers, 1, 1024)
	cs.inRange("queue_size", b.Commands.QueueSize, 1, 1<<20)
	durationRange(cs, "timeout", b.Commands.Timeout, time.Millisecond, time.Hour)
}

// BrokerOptions maps the section onto broker.Options (Logger, Registerer,
// Auth and, when the TLS listeners are on, TLS are the caller's: see
// ServerTLS and AuthConfig.AuthOptions).
func (b *BrokerConfig) BrokerOptions() broker.Options {
	l := b.Limits
	o := broker.Options{
		Listen:    b.Listen,
		WebSocket: b.WebSocket,
		Limits: broker.Limits{
			MaxPacketSize:     uint32(l.MaxPacketSize),
			MaxClients:        l.MaxClients,
			ReceiveMaximum:    uint16(l.ReceiveMaximum),
			MaxInflight:       uint16(l.MaxInflight),
			MaxQueuedMessages: int32(l.MaxQueuedMessages),
			SessionExpiry:     l.SessionExpiry.D(),
			MessageExpiry:     l.MessageExpiry.D(),
			TopicAliasMaximum: uint16(l.TopicAliasMaximum),
			MaxKeepalive:      l.MaxKeepalive.D(),
			ConnectTimeout:    l.ConnectTimeout.D(),
			HandlerTimeout:    l.HandlerTimeout.D(),
			MaxPublishRate:    l.MaxPublishRate,
			PublishBurst:      int(l.PublishBurst),
			MaxSubscriptions:  int(l.MaxSubscriptions),
		},
		Commands: broker.RouterOptions{
			Workers:   int(b.Commands.Workers),
			QueueSize: int(b.Commands.QueueSize),
			Timeout:   b.Commands.Timeout.D(),
		},
	}
	if b.TLS.Enabled() {
		o.TLSListen, o.TLSWebSocket = b.TLS.Listen, b.TLS.WebSocket
		o.IdentityAsUsername = b.TLS.UseIdentityAsUsername
	}
	return o
}

// ServerTLS loads broker.tls's certificate files (nil when the TLS
// listeners are off).
func (b *BrokerConfig) ServerTLS() (*broker.ServerTLS, error) {
	if !b.TLS.Enabled() {
		return nil, nil
	}
	return broker.LoadServerTLS(b.TLS.files())
}
