package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Persistence across restarts.
//
// mochi keeps its state in memory only, so a restarted gateway would forget
// every device's retained messages and every persistent session (MQTT 5
// session expiry > 0, or MQTT 3.1.1 clean session off): its subscriptions
// and the QoS 1/2 messages queued for it. mosquitto with persistence on
// (Debian's default) keeps both. With PersistState the broker writes each
// change to a StateStore (the node's store) from mochi's hooks and loads the
// state back before its listeners accept anyone.
//
// Records, by key (id = uvarint length + client id):
//
//	r<topic>               retained message (retained.go)
//	c<id>                  persistent session: mochi's storage.Client (JSON)
//	s<id><filter>          its subscription: storage.Subscription (JSON)
//	i<id><be16 packet id>  a message queued or in flight to it: storage.Message (JSON)
//
// Sessions that end with their connection are never written; a persistent
// session's records are deleted when it ends (clean start, expiry).

// StateStore keeps the broker's records by key (store.Store implements
// it). A nil record deletes the key.
type StateStore interface {
	SetBrokerRecord(ctx context.Context, key string, rec []byte) error
	// SetBrokerMeta stores small bookkeeping records (sessions,
	// subscriptions) even while the store refuses writes.
	SetBrokerMeta(ctx context.Context, key string, rec []byte) error
	DeleteBrokerRecords(ctx context.Context, prefix string) error
	BrokerRecords(ctx context.Context, prefix string, fn func(key string, rec []byte) error) error
}

// Record kinds (key prefixes; the kind label of
// ferrite_broker_persist_total).
const (
	kindRetained     = "r"
	kindSession      = "c"
	kindSubscription = "s"
	kindMessage      = "i"
)

// Results of ferrite_broker_persist_total.
const (
	persistStored  = "stored"
	persistDeleted = "deleted"
	persistFailed  = "failed"
	persistLoaded  = "loaded"
	persistCorrupt = "corrupt"
)

var persistKinds = map[string]string{
	kindRetained: "retained", kindSession: "session", kindSubscription: "subscription", kindMessage: "message",
}

// PersistState makes retained messages and persistent sessions survive
// restarts in ss. It must be called before Start.
func (b *Broker) PersistState(ss StateStore) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrStarted
	}
	b.state = ss
	return nil
}

// persistHook writes state changes to the StateStore. Its methods run on
// the goroutines mochi calls hooks on (the client's, or a publisher's).
type persistHook struct {
	mqtt.HookBase
	b *Broker

	mu sync.RWMutex
	// saved: client ids with a stored session, and the client that owns
	// the records (nil: restored, not claimed yet). Only the owner writes
	// or deletes them: an old connection ending after a takeover must not.
	saved map[string]*mqtt.Client
	pids  map[string]map[uint16]struct{} // packet ids with a message record, by client id
	none  atomic.Bool                    // saved is empty

	retainMu [64]sync.Mutex // striped by topic: read-and-write of one topic's record
	idMu     [64]sync.Mutex // striped by client id (sessions.go idLock)
}

func (h *persistHook) ID() string { return "ferrite-persist" }

// persistEvents is indexed by mochi hook event: mochi asks Provides on
// every dispatch, QoS publishes included.
var persistEvents = func() (t [256]bool) {
	for _, e := range []byte{
		mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnWillSent, mqtt.OnClientExpired,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnPacketRead,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages,
	} {
		t[e] = true
	}
	return t
}()

func (h *persistHook) Provides(e byte) bool { return persistEvents[e] }

// loadPersisted loads the stored retained messages into mochi and installs
// the hook that keeps the store up to date and hands mochi the stored
// sessions when it serves (Start, before Serve).
func (b *Broker) loadPersisted(ctx context.Context) error {
	if b.state == nil {
		return nil
	}
	h := &persistHook{b: b, saved: make(map[string]*mqtt.Client), pids: make(map[string]map[uint16]struct{})}
	h.none.Store(true)
	if err := h.loadRetained(ctx); err != nil {
		return err
	}
	if err := b.server.AddHook(h, nil); err != nil {
		return fmt.Errorf("broker: persistence hook: %w", err)
	}
	return nil
}

func (h *persistHook) loadRetained(ctx context.Context) error {
	b := h.b
	now := time.Now().Unix()
	maxAge := int64(b.opts.Limits.MessageExpiry / time.Second)
	var stale []string
	n := 0
	err := b.state.BrokerRecords(ctx, kindRetained, func(key string, rec []byte) error {
		topic := key[len(kindRetained):]
		pk, err := decodeRetained(topic, rec)
		if err != nil {
			h.count(kindRetained, persistCorrupt, 1)
			b.log.Warn("stored retained message skipped", "topic", topic, "error", err)
			stale = append(stale, key)
			return nil
		}
		if (pk.Expiry > 0 && pk.Expiry < now) || (maxAge > 0 && now-pk.Created > maxAge) {
			stale = append(stale, key)
			return nil
		}
		b.server.Topics.RetainMessage(pk)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: load retained messages: %w", err)
	}
	for _, k := range stale {
		_ = b.state.SetBrokerRecord(ctx, k, nil)
	}
	atomic.StoreInt64(&b.server.Info.Retained, int64(b.server.Topics.Retained.Len()))
	h.count(kindRetained, persistLoaded, n)
	if n > 0 || len(stale) > 0 {
		b.log.Info("retained messages loaded", "messages", n, "expired_or_corrupt", len(stale))
	}
	return nil
}

func (h *persistHook) count(kind, result string, n int) {
	h.b.metrics.persist.WithLabelValues(persistKinds[kind], result).Add(float64(n))
}

// set writes (or, with a nil rec, deletes) one record.
// The writes do not wait for an fsync, so nothing bounds them but the
// broker's life (Close cancels b.ctx): no timer per write.
func (h *persistHook) set(key string, rec []byte) {
	ctx := h.b.ctx
	kind := key[:1]
	var err error
	if kind == kindSession || kind == kindSubscription {
		err = h.b.state.SetBrokerMeta(ctx, key, rec)
	} else {
		err = h.b.state.SetBrokerRecord(ctx, key, rec)
	}
	switch {
	case err != nil:
		h.count(kind, persistFailed, 1)
		h.b.logPersist.Do(func() {
			h.b.log.Warn("broker state not written to the data dir: it is kept until a restart",
				"record", persistKinds[kind], "error", err)
		})
		if rec != nil {
			// Drop the previous record rather than bring an older state back
			// after a restart (deletes are allowed even at Critical).
			_ = h.b.state.SetBrokerRecord(ctx, key, nil)
		}
	case rec == nil:
		h.count(kind, persistDeleted, 1)
	default:
		h.count(kind, persistStored, 1)
	}
}

// OnRetainMessage records a retained message, or its removal. mochi updates
// its retained map before it calls the hook, without a lock: two publishers
// on one topic can call it in the other order. So the record is made from
// what mochi holds now, under a lock per topic: the last call writes the
// final state.
func (h *persistHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	h.syncRetained(pk.TopicName)
}

func (h *persistHook) OnRetainedExpired(topic string) { h.syncRetained(topic) }

func (h *persistHook) syncRetained(topic string) {
	f := fnv.New32a()
	_, _ = f.Write([]byte(topic))
	mu := &h.retainMu[f.Sum32()%uint32(len(h.retainMu))]
	mu.Lock()
	defer mu.Unlock()
	if pk, ok := h.b.server.Topics.Retained.Get(topic); ok && len(pk.Payload) > 0 {
		h.set(kindRetained+topic, encodeRetained(pk))
		return
	}
	h.set(kindRetained+topic, nil)
}

// clientKey is kind + the length-prefixed client id: no client id is a
// prefix of another's keys.
func clientKey(kind, id string) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(id))
	b = append(b, kind...)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return string(append(b, id...))
}
