package syncer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

// Defaults.
const (
	DefaultInterval       = 30 * time.Second
	DefaultQueueCapacity  = 10_000
	DefaultBatchBytes     = 256 << 10
	DefaultBatchOps       = 1000
	DefaultWindow         = 4
	DefaultAckTimeout     = 10 * time.Second
	DefaultMergeTimeout   = 2 * time.Minute
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = time.Minute
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 30 * time.Second
	DefaultMaxClockSkew   = time.Minute
	DefaultRetentionBytes = 256 << 20
	DefaultRetentionAge   = 7 * 24 * time.Hour
	DefaultMaxEdges       = 10_000
	DefaultIdleTimeout    = 10 * time.Minute
)

// LinkOptions are the broker connection settings shared by Edge and Hub.
type LinkOptions struct {
	// URL is the broker: mqtt://host[:1883] or mqtts://host[:8883].
	URL string
	// TLS configures mqtts (CA pool, client certificate); nil uses the
	// system roots.
	TLS      *tls.Config
	Username string
	Password string
	// TopicPrefix prefixes the sync and status topics (default "$ferrite").
	TopicPrefix    string
	ConnectTimeout time.Duration // default 10s
	KeepAlive      time.Duration // MQTT keepalive, default 30s
}

func (l *LinkOptions) defaults() {
	if l.TopicPrefix == "" {
		l.TopicPrefix = DefaultTopicPrefix
	}
	if l.ConnectTimeout == 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	if l.KeepAlive == 0 {
		l.KeepAlive = DefaultKeepAlive
	}
}

// BatchOptions bound what is in flight on one stream.
type BatchOptions struct {
	// BatchBytes bounds a DeltaSync batch or a FullSync chunk (encoded op
	// or entry bytes; default 256 KiB). One op larger than this is sent
	// alone. Keep it well under the broker's maximum packet size.
	BatchBytes int
	// BatchOps bounds the ops (or state entries) of a batch (default 1000).
	BatchOps int
	// Window bounds the unacknowledged batches or chunks (default 4).
	Window int
	// AckTimeout: an unacknowledged message older than this marks the
	// link as half-open (default 10s).
	AckTimeout time.Duration
	// MergeTimeout bounds the wait for the peer to merge a FullSync after
	// its last chunk (default 2m).
	MergeTimeout time.Duration
	// CompressThreshold is the message body size from which LZ4 is tried
	// (default 512; negative: never).
	CompressThreshold int
}

func (b *BatchOptions) defaults() {
	if b.BatchBytes == 0 {
		b.BatchBytes = DefaultBatchBytes
	}
	if b.BatchOps == 0 {
		b.BatchOps = DefaultBatchOps
	}
	if b.Window == 0 {
		b.Window = DefaultWindow
	}
	if b.AckTimeout == 0 {
		b.AckTimeout = DefaultAckTimeout
	}
	if b.MergeTimeout == 0 {
		b.MergeTimeout = DefaultMergeTimeout
	}
	if b.CompressThreshold == 0 {
		b.CompressThreshold = DefaultCompressThreshold
	}
}

// problems collects every option problem (reported all at once).
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(p, "; "))
}

func (l *LinkOptions) validate(p *problems, required bool) {
	if l.URL == "" {
		if required {
			p.add("broker URL: required")
		}
	} else if _, err := brokerURL(l.URL); err != nil {
		p.add("broker URL %q: %v", l.URL, err)
	}
	if err := validPrefix(l.TopicPrefix); err != nil {
		p.add("topic prefix %q: %v", l.TopicPrefix, err)
	}
	if l.ConnectTimeout < 0 || l.KeepAlive < time.Second {
		p.add("connect timeout %v and keepalive %v: must be positive (keepalive at least 1s)", l.ConnectTimeout, l.KeepAlive)
	}
}

func (b *BatchOptions) validate(p *problems) {
	if b.BatchBytes < 1024 || b.BatchBytes > MaxMessageSize/2 {
		p.add("batch bytes %d: out of range [1024, %d]", b.BatchBytes, MaxMessageSize/2)
	}
	if b.BatchOps < 1 || b.Window < 1 {
		p.add("batch ops %d and window %d: must be at least 1", b.BatchOps, b.Window)
	}
	if b.AckTimeout < 10*time.Millisecond || b.MergeTimeout < b.AckTimeout {
		p.add("ack timeout %v and merge timeout %v: want ack timeout >= 10ms and merge timeout >= ack timeout", b.AckTimeout, b.MergeTimeout)
	}
}

func nodeIDProblem(p *problems, id string) {
	if err := validNodeID(id); err != nil {
		p.add("node id %q: %v", id, err)
	}
}

func resolverProblem(p *problems, r crdt.Resolver) {
	if err := r.Validate(); err != nil {
		p.add("%v", err)
	}
}

var errAlreadyRunning = errors.New("syncer: Run called twice")
