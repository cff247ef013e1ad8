package broker

import (
	"context"
	"encoding/binary"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Persistent sessions (see persist.go): the session, its subscriptions and
// the messages queued or in flight to it are written as mochi's storage
// records, which mochi's own loaders (readStore, at Serve) read back.

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool { return !sessionEndsWithConnection(cl) }

// OnSessionEstablished records a persistent session, or forgets a stored
// one its client id now replaced with a session that ends with the
// connection.
func (h *persistHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if !persistent(cl) {
		h.forget(cl.ID)
		return
	}
	h.mu.Lock()
	h.saved[cl.ID] = struct{}{}
	h.mu.Unlock()
	h.saveClient(cl)
}

func (h *persistHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.saveClient(cl) // the will is gone from the session
	}
}

func (h *persistHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && cl.StopCause() != packets.ErrSessionTakenOver {
		h.forget(cl.ID)
	}
}

func (h *persistHook) OnClientExpired(cl *mqtt.Client) { h.forget(cl.ID) }

// forget deletes the stored session of id, if there is one.
func (h *persistHook) forget(id string) {
	h.mu.Lock()
	_, ok := h.saved[id]
	delete(h.saved, id)
	h.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, persistWriteTimeout)
	defer cancel()
	for _, kind := range []string{kindSubscription, kindMessage} {
		if err := h.b.state.DeleteBrokerRecords(ctx, clientKey(kind, id)); err != nil {
			h.count(kind, persistFailed, 1)
		}
	}
	h.set(clientKey(kindSession, id), nil)
}

// stored reports whether cl's session is stored. Only a persistent
// session can be (OnSessionEstablished forgets the others), so the map is
// consulted for those only.
func (h *persistHook) stored(cl *mqtt.Client) bool {
	if !persistent(cl) {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.saved[cl.ID]
	return ok
}

func (h *persistHook) saveClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	rec, err := (&storage.Client{
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
	}).MarshalBinary()
	if err != nil {
		h.count(kindSession, persistFailed, 1)
		return
	}
	h.set(clientKey(kindSession, cl.ID), rec)
}

func (h *persistHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !h.stored(cl) {
		return
	}
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
	if !h.stored(cl) {
		return
	}
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
	if pk.FixedHeader.Type != packets.Publish || !h.stored(cl) {
		return
	}
	props := pk.Properties.Copy(false)
	rec, err := (&storage.Message{
		T: storage.InflightKey, Client: cl.ID, Origin: pk.Origin, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: pk.Payload, Sent: sent, Created: pk.Created, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, PayloadFormatFlag: props.PayloadFormatFlag,
			MessageExpiryInterval: props.MessageExpiryInterval, ContentType: props.ContentType,
			ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, User: props.User,
		},
	}).MarshalBinary()
	if err != nil {
		h.count(kindMessage, persistFailed, 1)
		return
	}
	h.set(messageKey(cl.ID, pk.PacketID), rec)
}

func (h *persistHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if h.stored(cl) {
		h.set(messageKey(cl.ID, pk.PacketID), nil)
	}
}

func (h *persistHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

// StoredClients hands mochi the stored sessions (at Serve).
func (h *persistHook) StoredClients() ([]storage.Client, error) {
	var out []storage.Client
	err := h.load(kindSession, func(key string, rec []byte) error {
		var c storage.Client
		if err := c.UnmarshalBinary(rec); err != nil || c.ID == "" || clientKey(kindSession, c.ID) != key {
			return fmt.Errorf("session record: %v", err)
		}
		h.mu.Lock()
		h.saved[c.ID] = struct{}{}
		h.mu.Unlock()
		out = append(out, c)
		return nil
	})
	return out, err
}

// StoredSubscriptions hands mochi the stored sessions' subscriptions.
func (h *persistHook) StoredSubscriptions() ([]storage.Subscription, error) {
	var out []storage.Subscription
	err := h.load(kindSubscription, func(key string, rec []byte) error {
		var s storage.Subscription
		if err := s.UnmarshalBinary(rec); err != nil || clientKey(kindSubscription, s.Client)+s.Filter != key {
			return fmt.Errorf("subscription record: %v", err)
		}
		out = append(out, s)
		return nil
	})
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
		out = append(out, m)
		return nil
	})
	return out, err
}

// load walks the records of kind; a record fn rejects is logged, counted
// and deleted, the others are counted as loaded.
func (h *persistHook) load(kind string, fn func(key string, rec []byte) error) error {
	ctx, cancel := context.WithTimeout(h.b.ctx, persistWriteTimeout)
	defer cancel()
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
