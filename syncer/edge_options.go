package syncer

import (
	"crypto/tls"
	"io"
	"log/slog"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/prometheus/client_golang/prometheus"
)

// EdgeOptions configure an Edge. Zero values take the defaults.
type EdgeOptions struct {
	// Store is the local replica (required).
	Store Store
	// NodeID names this edge on the hub link (default: Store.NodeID(); it
	// must be the store's node id, whose dots the edge sends).
	NodeID string
	// HubURL is the hub's broker, mqtt://host:1883 or mqtts://host:8883.
	// Empty: no hub; the edge still bounds its op log (the offline queue).
	HubURL   string
	TLS      *tls.Config
	Username string
	Password string
	// TopicPrefix prefixes the sync and status topics (default "$ferrite").
	TopicPrefix    string
	ConnectTimeout time.Duration // default 10s
	KeepAlive      time.Duration // MQTT keepalive, default 30s

	// Policy is when own changes are pushed (default opportunistic).
	Policy Policy
	// Interval is the time between periodic rounds (default 30s).
	Interval time.Duration
	// QueueCapacity bounds the offline queue in ops (default 10,000). When
	// it overflows the oldest ops are dropped (down to 90% of it), counted,
	// logged, and the next sync sends full state instead.
	QueueCapacity int
	BatchOptions
	// BackoffMin and BackoffMax bound the reconnection delay (exponential,
	// full jitter; defaults 1s and 1m).
	BackoffMin time.Duration
	BackoffMax time.Duration
	// MaxClockSkew: remote writes stamped further ahead of the local clock
	// are reported (default 1m; the store has its own bound for adopting
	// remote clocks).
	MaxClockSkew time.Duration

	// Resolver is the conflict resolver the store uses; its digest is
	// compared with the hub's (a mismatch is logged loudly).
	Resolver crdt.Resolver
	// Software is the version announced in Hello.
	Software string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Clock returns the wall time (default time.Now).
	Clock func() time.Time

	dial dialFunc // tests inject faults here
}

// EnsureDefaults fills zero fields.
func (o *EdgeOptions) EnsureDefaults() {
	if o.NodeID == "" && o.Store != nil {
		o.NodeID = o.Store.NodeID()
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.QueueCapacity == 0 {
		o.QueueCapacity = DefaultQueueCapacity
	}
	o.BatchOptions.defaults()
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.dial == nil {
		o.dial = dialPaho
	}
}

// Validate reports every problem at once.
func (o *EdgeOptions) Validate() error {
	var p problems
	if o.Store == nil {
		p.add("store: required")
	} else if o.NodeID != o.Store.NodeID() {
		p.add("node id %q differs from the store's %q", o.NodeID, o.Store.NodeID())
	}
	nodeIDProblem(&p, o.NodeID)
	l := LinkOptions{URL: o.HubURL, TopicPrefix: o.TopicPrefix, ConnectTimeout: o.ConnectTimeout, KeepAlive: o.KeepAlive}
	l.validate(&p, false)
	o.BatchOptions.validate(&p)
	if o.Policy > PolicyManual {
		p.add("policy %d: unknown", o.Policy)
	}
	if o.Interval < 10*time.Millisecond {
		p.add("interval %v: below 10ms", o.Interval)
	}
	if o.QueueCapacity < 1 {
		p.add("queue capacity %d: must be at least 1", o.QueueCapacity)
	}
	if o.BackoffMin <= 0 || o.BackoffMax < o.BackoffMin {
		p.add("backoff %v..%v: want 0 < min <= max", o.BackoffMin, o.BackoffMax)
	}
	resolverProblem(&p, o.Resolver)
	return p.err()
}
