package broker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Persistent sessions (see persist.go): the session, its subscriptions and
// the messages queued or in flight to it are written as mochi's storage
// records, which mochi's own loaders (readStore, at Serve) read back.

// persistent reports whether cl's session outlives its connection
// (the condition mochi's attachClient uses to expire a session).
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval != 0
	}
	return !cl.Properties.Clean
}

// OnSessionEstablished records a persistent session, or forgets a stored
// one its client id now replaced with a session that ends with the
// connection. The new client owns the records from here on; the messages it
// inherited are written again (mochi's ClearInflights on the old client
// deleted their records, and ResendInflightMessages ran before this client
// owned them).
func (h *persistHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	mu := h.idLock(cl.ID)
	mu.Lock()
	defer mu.Unlock()
	if cur, ok := h.b.server.Clients.Get(cl.ID); !ok || cur != cl || cl.IsTakenOver() {
		return // already taken over by a newer connection, which owns the id's records
	}
	if !persistent(cl) {
		h.forgetLocked(cl.ID)
		return
	}
	h.mu.Lock()
	h.saved[cl.ID] = cl
	h.none.Store(false)
	h.mu.Unlock()
	h.b.restoredIdentity.Delete(cl.ID)
	h.saveClient(cl, 0)
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			h.saveMessage(cl, pk, pk.Created)
		}
	}
}

func (h *persistHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if unlock, ok := h.own(cl); ok {
		defer unlock()
		h.saveClient(cl, disconnectedAt(cl)) // the will is gone from the session
	}
}

func (h *persistHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	unlock, ok := h.own(cl)
	if !ok {
		return
	}
	defer unlock()
	switch {
	case expire:
		h.forgetLocked(cl.ID)
	case cl.Net.Conn != nil:
		// A DISCONNECT may have changed the session expiry (MQTT 5), and
		// the time it left starts its expiry; a restored session (mochi's
		// loader calls this too) has neither.
		h.saveClient(cl, time.Now().Unix())
	}
}

func (h *persistHook) OnClientExpired(cl *mqtt.Client) {
	if unlock, ok := h.own(cl); ok {
		defer unlock()
		h.forgetLocked(cl.ID)
	}
}

// idLock serializes the record writes of one client id: a check of the
// owner and the write it allows happen as one step.
func (h *persistHook) idLock(id string) *sync.Mutex {
	f := fnv.New32a()
	_, _ = f.Write([]byte(id))
	return &h.idMu[f.Sum32()%uint32(len(h.idMu))]
}

// own locks cl's id and reports whether cl owns a stored session; if so
// the caller writes and then unlocks.
func (h *persistHook) own(cl *mqtt.Client) (unlock func(), ok bool) {
	if h.none.Load() {
		return nil, false // no stored session at all: the common case
	}
	mu := h.idLock(cl.ID)
	mu.Lock()
	if !h.stored(cl) {
		mu.Unlock()
		return nil, false
	}
	return mu.Unlock, true
}

// forgetLocked deletes the stored session of id, if there is one (id's
// lock held).
func (h *persistHook) forgetLocked(id string) {
	h.mu.Lock()
	_, ok := h.saved[id]
	delete(h.saved, id)
	delete(h.pids, id)
	h.none.Store(len(h.saved) == 0)
	h.mu.Unlock()
	h.b.restoredIdentity.Delete(id)
	if ok {
		h.deleteSession(id)
	}
}

// stored reports whether cl owns a stored session. Only a persistent
// session can (OnSessionEstablished forgets the others), so the map is
// consulted for those only.
func (h *persistHook) stored(cl *mqtt.Client) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	o, ok := h.saved[cl.ID]
	return ok && (o == cl || o == nil)
}

// sessionRecord is mochi's storage.Client plus what the broker's
// authorization needs of a restored session.
type sessionRecord struct {
	storage.Client
	CertIdentity string `json:"cert_identity,omitempty"`
	// Disconnected is when the session's client left (unix s); 0 if it
	// was connected when the record was written (the broker then did not
	// stop cleanly) and the restart counts as the disconnection.
	Disconnected int64 `json:"disconnected,omitempty"`
}

// disconnectedAt is when cl's connection ended (unix s; now if mochi has
// not stopped it yet).
func disconnectedAt(cl *mqtt.Client) int64 {
	if t := cl.StopTime(); t > 0 {
		return t
	}
	return time.Now().Unix()
}

// saveClient writes cl's session record; disconnected is when its client
// left (unix s), 0 while it is connected.
func (h *persistHook) saveClient(cl *mqtt.Client, disconnected int64) {
	props := cl.Properties.Props.Copy(false)
	c := storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}
	rec, err := json.Marshal(sessionRecord{Client: c, CertIdentity: h.b.clientInfo(cl).CertIdentity, Disconnected: disconnected})
	if err != nil {
		h.count(kindSession, persistFailed, 1)
		return
	}
	h.set(clientKey(kindSession, cl.ID), rec)
}

func (h *persistHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	unlock, ok := h.own(cl)
	if !ok {
		return
	}
	defer unlock()
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue // refused: mochi holds no subscription
		}
		rec, err := (&storage.Subscription{
			T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: codes[i],
			Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		}).MarshalBinary()
		if err != nil {
			h.count(kindSubscription, persistFailed, 1)
			continue
		}
		h.set(clientKey(kindSubscription, cl.ID)+f.Filter, rec)
	}
}

func (h *persistHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	unlock, ok := h.own(cl)
	if !ok {
		return
	}
	defer unlock()
	for _, f := range pk.Filters {
		h.set(clientKey(kindSubscription, cl.ID)+f.Filter, nil)
	}
}

// messageKey is the record key of the message with packet id pid to id.
func messageKey(id string, pid uint16) string {
	return clientKey(kindMessage, id) + string(binary.BigEndian.AppendUint16(nil, pid))
}

// OnQosPublish records a QoS 1/2 message queued or sent to a persistent
// session. mochi also calls it for the acknowledgements of a client's own
// QoS publishes (PUBACK, PUBREC), which live for one round trip: those are
// not written.
func (h *persistHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	if unlock, ok := h.own(cl); ok {
		defer unlock()
		h.saveMessage(cl, pk, sent)
	}
}

func (h *persistHook) saveMessage(cl *mqtt.Client, pk packets.Packet, sent int64) {
	m := messageRecord(pk)
	m.T, m.Client, m.Sent = storage.InflightKey, cl.ID, sent
	rec, err := m.MarshalBinary()
	if err != nil {
		h.count(kindMessage, persistFailed, 1)
		return
	}
	h.set(messageKey(cl.ID, pk.PacketID), rec)
	h.mu.Lock()
	if h.pids[cl.ID] == nil {
		h.pids[cl.ID] = make(map[uint16]struct{})
	}
	h.pids[cl.ID][pk.PacketID] = struct{}{}
	h.mu.Unlock()
}

// deleteMessage deletes the record of packet id pid to cl's id, if one was
// written (processPublish also completes the client's own QoS 1 publishes:
// those never had one).
func (h *persistHook) deleteMessage(id string, pid uint16) {
	h.mu.Lock()
	_, ok := h.pids[id][pid]
	delete(h.pids[id], pid)
	h.mu.Unlock()
	if ok {
		h.set(messageKey(id, pid), nil)
	}
}

// OnPacketRead deletes the record of a message the client acknowledges
// that mochi no longer holds: processPacket sends a message queued for the
// client's receive maximum (NextImmediate) and drops it from the in-flight
// table at once, so its PUBACK/PUBCOMP never reaches OnQosComplete.
func (h *persistHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t := pk.FixedHeader.Type; t != packets.Puback && t != packets.Pubcomp {
		return pk, nil
	}
	if _, ok := cl.State.Inflight.Get(pk.PacketID); ok {
		return pk, nil
	}
	if unlock, ok := h.own(cl); ok {
		defer unlock()
		h.deleteMessage(cl.ID, pk.PacketID)
	}
	return pk, nil
}

func (h *persistHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if unlock, ok := h.own(cl); ok {
		defer unlock()
		h.deleteMessage(cl.ID, pk.PacketID)
	}
}

func (h *persistHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

// StoredClients hands mochi the stored sessions (at Serve).
func (h *persistHook) StoredClients() ([]storage.Client, error) {
	var out []storage.Client
	var expired []string
	now := time.Now().Unix()
	defer func() {
		// Before mochi reads their subscriptions and messages.
		for _, id := range expired {
			h.deleteSession(id)
		}
	}()
	err := h.load(kindSession, func(key string, rec []byte) error {
		var r sessionRecord
		if err := json.Unmarshal(rec, &r); err != nil || r.ID == "" || clientKey(kindSession, r.ID) != key {
			return fmt.Errorf("session record: %v", err)
		}
		if !h.restoreExpiry(&r, now) {
			expired = append(expired, r.ID)
			return nil
		}
		h.mu.Lock()
		h.saved[r.ID] = nil
		h.none.Store(false)
		h.mu.Unlock()
		if r.CertIdentity != "" {
			h.b.restoredIdentity.Store(r.ID, r.CertIdentity)
		}
		out = append(out, r.Client)
		return nil
	})
	return out, err
}

// restoreExpiry reports whether the session of r is still alive at now:
// mochi counts a restored session's expiry from the restart, so one that
// expired while the gateway was down would come back for a whole expiry
// interval. An MQTT 5 session gets the remaining interval; a 3.1.1 one
// (which mochi expires by broker.limits.session_expiry) keeps the full one.
func (h *persistHook) restoreExpiry(r *sessionRecord, now int64) bool {
	if r.Disconnected <= 0 {
		return true
	}
	limit := int64(h.b.opts.Limits.SessionExpiry / time.Second)
	expiry := limit
	v5 := r.ProtocolVersion == 5 && r.Properties.SessionExpiryIntervalFlag
	if v5 {
		expiry = min(int64(r.Properties.SessionExpiryInterval), limit)
	}
	left := r.Disconnected + expiry - now
	if left <= 0 {
		return false
	}
	if v5 {
		r.Properties.SessionExpiryInterval = uint32(left)
	}
	return true
}

// deleteSession deletes every record of id's session.
func (h *persistHook) deleteSession(id string) {
	ctx := h.b.ctx
	for _, kind := range []string{kindSubscription, kindMessage} {
		if err := h.b.state.DeleteBrokerRecords(ctx, clientKey(kind, id)); err != nil {
			h.count(kind, persistFailed, 1)
		}
	}
	h.set(clientKey(kindSession, id), nil)
}

// StoredSubscriptions hands mochi the stored sessions' subscriptions.
func (h *persistHook) StoredSubscriptions() ([]storage.Subscription, error) {
	var out []storage.Subscription
	err := h.load(kindSubscription, func(key string, rec []byte) error {
		var s storage.Subscription
		if err := s.UnmarshalBinary(rec); err != nil || clientKey(kindSubscription, s.Client)+s.Filter != key {
			return fmt.Errorf("subscription record: %v", err)
		}
		if !h.loaded(s.Client) {
			return fmt.Errorf("subscription record of %q without its session", s.Client)
		}
		out = append(out, s)
		return nil
	})
	// mochi's loader does not count what it loads; its gauges would go
	// negative as the loaded subscriptions end.
	atomic.AddInt64(&h.b.server.Info.Subscriptions, int64(len(out)))
	return out, err
}

// StoredInflightMessages hands mochi the messages queued for the stored
// sessions.
func (h *persistHook) StoredInflightMessages() ([]storage.Message, error) {
	var out []storage.Message
	err := h.load(kindMessage, func(key string, rec []byte) error {
		var m storage.Message
		if err := m.UnmarshalBinary(rec); err != nil || messageKey(m.Client, m.PacketID) != key {
			return fmt.Errorf("message record: %v", err)
		}
		if !h.loaded(m.Client) {
			return fmt.Errorf("message record of %q without its session", m.Client)
		}
		h.mu.Lock()
		if h.pids[m.Client] == nil {
			h.pids[m.Client] = make(map[uint16]struct{})
		}
		h.pids[m.Client][m.PacketID] = struct{}{}
		h.mu.Unlock()
		out = append(out, m)
		return nil
	})
	atomic.AddInt64(&h.b.server.Info.Inflight, int64(len(out)))
	return out, err
}

// load walks the records of kind; a record fn rejects is logged, counted
// and deleted, the others are counted as loaded.
func (h *persistHook) load(kind string, fn func(key string, rec []byte) error) error {
	// Bounded by the broker's life only: a slow disk with many records
	// must not fail every start. Close cancels b.ctx.
	ctx := h.b.ctx
	var bad []string
	n := 0
	err := h.b.state.BrokerRecords(ctx, kind, func(key string, rec []byte) error {
		if err := fn(key, rec); err != nil {
			h.count(kind, persistCorrupt, 1)
			h.b.log.Warn("stored broker state skipped", "record", persistKinds[kind], "error", err)
			bad = append(bad, key)
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: load %s records: %w", persistKinds[kind], err)
	}
	for _, k := range bad {
		_ = h.b.state.SetBrokerRecord(ctx, k, nil)
	}
	h.count(kind, persistLoaded, n)
	return nil
}

// loaded reports whether StoredClients loaded id's session (mochi reads
// sessions first).
func (h *persistHook) loaded(id string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.saved[id]
	return ok
}
