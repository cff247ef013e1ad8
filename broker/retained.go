package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Retained messages across restarts.
//
// mochi keeps retained messages in memory only, so a restarted gateway
// would forget every device's retained state, where mosquitto (persistence
// true, Debian's default) keeps them. With PersistRetained the broker
// writes each retained-message change to a RetainedStore (the node's
// store) from mochi's OnRetainMessage hook, and loads them back into
// mochi's topic index before its listeners accept anyone.
//
// mochi's own loader (StoredRetainedMessages → storage.Message.ToPacket)
// drops a message's absolute expiry and protocol version, so MQTT 5
// message expiry would not survive a restart; the broker loads the
// packets itself instead.

// RetainedStore keeps retained message records by topic (store.Store
// implements it). A nil record deletes the topic's record.
type RetainedStore interface {
	SetRetained(ctx context.Context, topic string, record []byte) error
	Retained(ctx context.Context, fn func(topic string, record []byte) error) error
}

// retainedWriteTimeout bounds one write of a retained message.
const retainedWriteTimeout = 5 * time.Second

// Results of ferrite_broker_retained_persist_total.
const (
	retainedStored  = "stored"
	retainedDeleted = "deleted"
	retainedFailed  = "failed"
	retainedLoaded  = "loaded"
	retainedCorrupt = "corrupt"
)

// PersistRetained makes retained messages survive restarts in rs. It must
// be called before Start.
func (b *Broker) PersistRetained(rs RetainedStore) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrStarted
	}
	b.retained = rs
	return nil
}

// loadRetained loads the stored retained messages into mochi and installs
// the hook that keeps the store up to date (Start, before Serve).
func (b *Broker) loadRetained(ctx context.Context) error {
	if b.retained == nil {
		return nil
	}
	now := time.Now().Unix()
	maxAge := int64(b.opts.Limits.MessageExpiry / time.Second)
	var stale []string
	n := 0
	err := b.retained.Retained(ctx, func(topic string, rec []byte) error {
		pk, err := decodeRetained(topic, rec)
		if err != nil {
			b.metrics.retainedPersist.WithLabelValues(retainedCorrupt).Inc()
			b.log.Warn("stored retained message skipped", "topic", topic, "error", err)
			stale = append(stale, topic)
			return nil
		}
		if (pk.Expiry > 0 && pk.Expiry < now) || (maxAge > 0 && now-pk.Created > maxAge) {
			stale = append(stale, topic)
			return nil
		}
		b.server.Topics.RetainMessage(pk)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: load retained messages: %w", err)
	}
	for _, t := range stale {
		_ = b.retained.SetRetained(ctx, t, nil)
	}
	atomic.StoreInt64(&b.server.Info.Retained, int64(b.server.Topics.Retained.Len()))
	b.metrics.retainedPersist.WithLabelValues(retainedLoaded).Add(float64(n))
	if n > 0 || len(stale) > 0 {
		b.log.Info("retained messages loaded", "messages", n, "expired_or_corrupt", len(stale))
	}
	if err := b.server.AddHook(&retainHook{b: b}, nil); err != nil {
		return fmt.Errorf("broker: retain hook: %w", err)
	}
	return nil
}

// retainHook writes retained-message changes to the RetainedStore. It runs
// on the publisher's goroutine, after mochi changed its index.
type retainHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *retainHook) ID() string { return "ferrite-retained" }

func (h *retainHook) Provides(b byte) bool {
	return b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired
}

func (h *retainHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	if len(pk.Payload) == 0 {
		h.set(pk.TopicName, nil) // an empty retained message clears the topic
		return
	}
	h.set(pk.TopicName, encodeRetained(pk))
}

func (h *retainHook) OnRetainedExpired(topic string) { h.set(topic, nil) }

func (h *retainHook) set(topic string, rec []byte) {
	ctx, cancel := context.WithTimeout(h.b.ctx, retainedWriteTimeout)
	defer cancel()
	err := h.b.retained.SetRetained(ctx, topic, rec)
	switch {
	case err != nil:
		h.b.metrics.retainedPersist.WithLabelValues(retainedFailed).Inc()
		h.b.logRetain.Do(func() {
			h.b.log.Warn("retained message not written to the data dir: it is kept until a restart", "topic", topic, "error", err)
		})
	case rec == nil:
		h.b.metrics.retainedPersist.WithLabelValues(retainedDeleted).Inc()
	default:
		h.b.metrics.retainedPersist.WithLabelValues(retainedStored).Inc()
	}
}

// The record of a retained message, version 1:
//
//	byte     1
//	varint   created (unix s), expiry (unix s, 0: none)
//	byte     QoS, protocol version, payload format flag<<1 | payload format
//	string   origin client id, content type, response topic
//	bytes    correlation data
//	uvarint  user property count, then key and value strings
//	rest     payload
//
// Strings and bytes are uvarint length + content.
const retainedVersion = 1

var errRetainedRecord = errors.New("malformed retained message record")

func encodeRetained(pk packets.Packet) []byte {
	p := &pk.Properties
	n := 32 + len(pk.Origin) + len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData) + len(pk.Payload)
	for _, u := range p.User {
		n += 8 + len(u.Key) + len(u.Val)
	}
	b := make([]byte, 0, n)
	b = append(b, retainedVersion)
	b = binary.AppendVarint(b, pk.Created)
	b = binary.AppendVarint(b, pk.Expiry)
	pf := p.PayloadFormat & 1
	if p.PayloadFormatFlag {
		pf |= 2
	}
	b = append(b, pk.FixedHeader.Qos, pk.ProtocolVersion, pf)
	for _, s := range []string{pk.Origin, p.ContentType, p.ResponseTopic} {
		b = appendString(b, s)
	}
	b = appendString(b, string(p.CorrelationData))
	b = binary.AppendUvarint(b, uint64(len(p.User)))
	for _, u := range p.User {
		b = appendString(appendString(b, u.Key), u.Val)
	}
	return append(b, pk.Payload...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeRetained rebuilds the retained packet of topic from its record.
func decodeRetained(topic string, rec []byte) (packets.Packet, error) {
	r := retainedReader{b: rec}
	if r.byte() != retainedVersion {
		return packets.Packet{}, fmt.Errorf("%w: version", errRetainedRecord)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName:   topic,
	}
	pk.Created, pk.Expiry = r.varint(), r.varint()
	pk.FixedHeader.Qos, pk.ProtocolVersion = r.byte(), r.byte()
	pf := r.byte()
	pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = pf&1, pf&2 != 0
	pk.Origin = r.string()
	pk.Properties.ContentType = r.string()
	pk.Properties.ResponseTopic = r.string()
	if c := r.string(); c != "" {
		pk.Properties.CorrelationData = []byte(c)
	}
	nu := r.uvarint()
	if nu > uint64(len(r.b)) {
		r.err = true
	}
	for i := uint64(0); i < nu && !r.err; i++ {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: r.string(), Val: r.string()})
	}
	if r.err || pk.FixedHeader.Qos > 2 {
		return packets.Packet{}, errRetainedRecord
	}
	pk.Payload = append([]byte(nil), r.b...)
	if len(pk.Payload) == 0 {
		return packets.Packet{}, fmt.Errorf("%w: empty payload", errRetainedRecord)
	}
	return pk, nil
}

// retainedReader reads a record; after a short read err is set and every
// read returns zero values.
type retainedReader struct {
	b   []byte
	err bool
}

func (r *retainedReader) byte() byte {
	if r.err || len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *retainedReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if r.err || n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *retainedReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if r.err || n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *retainedReader) string() string {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
