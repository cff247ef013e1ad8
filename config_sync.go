package ferrite

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// SyncConfig is the sync: section: the hub link as both sides use it. The
// edge: section says where the hub is and when to sync; this one tunes the
// protocol (see docs/PROTOCOL.md).
type SyncConfig struct {
	// TopicPrefix prefixes the sync and status topics: <prefix>/sync/<node>/up,
	// <prefix>/sync/<node>/down, <prefix>/status/<node> (default $ferrite).
	// It must be the same on the hub and its edges.
	TopicPrefix string `yaml:"topic_prefix"`
	// Username and Password authenticate to the hub's broker (edges, and a
	// hub attached to an external broker).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// BatchBytes bounds one DeltaSync batch or FullSync chunk (default
	// 256kb; keep it under the hub broker's max_packet_size).
	BatchBytes Size `yaml:"batch_bytes"`
	// BatchOps bounds the ops of one batch (default 1000).
	BatchOps int `yaml:"batch_ops"`
	// Window is the number of unacknowledged batches in flight (default 4).
	Window int `yaml:"window"`
	// AckTimeout: an unacknowledged batch older than this marks the link
	// as half-open; it is re-established (default 10s).
	AckTimeout Duration `yaml:"ack_timeout"`
	// CompressThreshold: message bodies from this size are LZ4-compressed
	// when that saves space (default 512b).
	CompressThreshold Size `yaml:"compress_threshold"`
	// BackoffMin and BackoffMax bound the reconnection delay (exponential
	// with full jitter; defaults 1s and 1m).
	BackoffMin Duration `yaml:"backoff_min"`
	BackoffMax Duration `yaml:"backoff_max"`
	// MaxClockSkew: a peer's clock further ahead than this is reported and
	// not adopted (default 1m).
	MaxClockSkew Duration `yaml:"max_clock_skew"`
	// TLS secures an mqtts:// hub link.
	TLS LinkTLSConfig `yaml:"tls"`
}

// LinkTLSConfig is sync.tls: how an mqtts:// link verifies the hub's broker
// and which certificate it presents.
type LinkTLSConfig struct {
	// CA is a PEM file of the CAs that sign the broker's certificate
	// (default: the system's roots).
	CA string `yaml:"ca"`
	// Cert and Key are a PEM client certificate and its key, for brokers
	// that authenticate clients by certificate.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName overrides the name checked in the broker's certificate
	// (default: the URL's host).
	ServerName string `yaml:"server_name"`
}

func (sc *SyncConfig) defaults() {
	*sc = SyncConfig{
		TopicPrefix:       "$ferrite",
		BatchBytes:        256 << 10,
		BatchOps:          1000,
		Window:            4,
		AckTimeout:        Duration(10 * time.Second),
		CompressThreshold: 512,
		BackoffMin:        Duration(time.Second),
		BackoffMax:        Duration(time.Minute),
		MaxClockSkew:      Duration(time.Minute),
	}
}

func (sc *SyncConfig) validate(s section, c *Config) {
	if p := sc.TopicPrefix; p == "" || strings.ContainsAny(p, "+#\x00") || strings.HasSuffix(p, "/") {
		s.add("topic_prefix", "%q must be a non-empty topic prefix without wildcards or a trailing '/'", p)
	}
	s.inRange("batch_bytes", int64(sc.BatchBytes), 1<<10, 64<<20)
	if mp := int64(c.Broker.Limits.MaxPacketSize); c.Mode == ModeHub && c.Hub.BrokerURL == "" && mp > 0 && int64(sc.BatchBytes)+(64<<10) > mp {
		s.add("batch_bytes", "%s leaves no room under broker.limits.max_packet_size %s (a batch plus its envelope must fit in one packet)", sc.BatchBytes, c.Broker.Limits.MaxPacketSize)
	}
	s.inRange("batch_ops", int64(sc.BatchOps), 1, 1_000_000)
	s.inRange("window", int64(sc.Window), 1, 1024)
	durationRange(s, "ack_timeout", sc.AckTimeout, 100*time.Millisecond, 10*time.Minute)
	s.inRange("compress_threshold", int64(sc.CompressThreshold), 0, 64<<20)
	durationRange(s, "backoff_min", sc.BackoffMin, 10*time.Millisecond, time.Hour)
	durationRange(s, "backoff_max", sc.BackoffMax, 10*time.Millisecond, 24*time.Hour)
	if sc.BackoffMax < sc.BackoffMin {
		s.add("backoff_max", "%s is below backoff_min %s", sc.BackoffMax, sc.BackoffMin)
	}
	durationRange(s, "max_clock_skew", sc.MaxClockSkew, time.Second, 24*time.Hour)
	ts := s.in("tls")
	if (sc.TLS.Cert == "") != (sc.TLS.Key == "") {
		ts.add("cert", "cert and key must be set together")
	}
	for key, f := range map[string]string{"ca": sc.TLS.CA, "cert": sc.TLS.Cert, "key": sc.TLS.Key} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				ts.add(key, "%v", err)
			}
		}
	}
}

// hubTLS is the TLS configuration of a link to rawURL: nil for mqtt://,
// verified TLS 1.2+ for mqtts://.
func (sc *SyncConfig) hubTLS(rawURL string) (*tls.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "mqtts" {
		return nil, nil //nolint:nilerr // validated with the config; plain mqtt:// needs no TLS
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: sc.TLS.ServerName}
	if sc.TLS.CA != "" {
		pem, err := os.ReadFile(sc.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("ferrite: sync.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ferrite: sync.tls.ca: no PEM certificate in %s", sc.TLS.CA)
		}
		c.RootCAs = pool
	}
	if sc.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(sc.TLS.Cert, sc.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("ferrite: sync.tls.cert: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// HubConfig is the hub: section, read in mode: hub.
type HubConfig struct {
	// BrokerURL is the broker the edges connect to: "" (default) is this
	// node's embedded broker; mqtt://host:1883 or mqtts://host:8883 attaches
	// the hub to an external broker (mosquitto, EMQX, ...) as a client.
	BrokerURL string `yaml:"broker_url"`
	// RetentionBytes and RetentionAge bound the op log kept to relay
	// changes between edges (defaults 256mb, 7 days); an edge further
	// behind gets a full state transfer.
	RetentionBytes Size     `yaml:"retention_bytes"`
	RetentionAge   Duration `yaml:"retention_age"`
	// MaxEdges bounds the edges served at once (default 10000).
	MaxEdges int `yaml:"max_edges"`
	// IdleTimeout ends an idle edge session (default 10m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DataTopic is where merged sensor buckets are republished as JSON for
	// cloud subscribers: <data_topic>/<node>/<sensor> (default ferrite/data;
	// "" disables).
	DataTopic string `yaml:"data_topic"`
}

func (h *HubConfig) defaults() {
	*h = HubConfig{
		RetentionBytes: 256 << 20,
		RetentionAge:   Duration(7 * 24 * time.Hour),
		MaxEdges:       10_000,
		IdleTimeout:    Duration(10 * time.Minute),
		DataTopic:      "ferrite/data",
	}
}

func (h *HubConfig) validate(s section, _ *Config) {
	if h.BrokerURL != "" {
		validBrokerURL(s, "broker_url", h.BrokerURL)
	}
	s.inRange("retention_bytes", int64(h.RetentionBytes), 1<<20, 1<<40)
	durationRange(s, "retention_age", h.RetentionAge, time.Minute, 365*24*time.Hour)
	s.inRange("max_edges", int64(h.MaxEdges), 1, 1_000_000)
	durationRange(s, "idle_timeout", h.IdleTimeout, time.Second, 24*time.Hour)
	if t := h.DataTopic; t != "" && (!validTopicName(t) || strings.HasSuffix(t, "/")) {
		s.add("data_topic", "%q is not a valid topic prefix", t)
	}
}

// validBrokerURL checks an mqtt:// or mqtts:// URL with a host.
func validBrokerURL(s section, key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		s.add(key, "invalid URL: %v", err)
	case u.Scheme != "mqtt" && u.Scheme != "mqtts":
		s.add(key, "scheme %q not supported (want mqtt:// or mqtts://)", u.Scheme)
	case u.Hostname() == "":
		s.add(key, "%q has no host", raw)
	}
}
