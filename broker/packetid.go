package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet identifier workaround.
//
// "The Client and Server assign Packet Identifiers independently of each
// other" (MQTT 3.1.1 section 2.3.1; MQTT 5 section 2.2.1). mochi v2.7.9 keeps
// one in-flight table per client for both directions: processSubscribe and
// processUnsubscribe refuse a SUBSCRIBE or UNSUBSCRIBE whose packet id
// equals the id of a QoS 1/2 PUBLISH mochi itself has in flight to that
// client (reason 0x91 "packet identifier in use", 0x80 for 3.1.1), and
// paho 3.1.1 clients do not notice the refused subscription. A burst of
// retained QoS 1 messages is enough to hit it.
//
// The broker gives such a SUBSCRIBE/UNSUBSCRIBE a free identifier on the
// way in (OnPacketRead) and restores the client's own one in the SUBACK or
// UNSUBACK on the way out (OnPacketEncode): the client sees the protocol as
// the specification has it.

// idRemap maps substitute packet ids to the client's own, per connection.
type idRemap struct {
	mu sync.Mutex
	m  map[uint16]uint16 // substitute → client's id
}

// remapInbound gives pk (a SUBSCRIBE or UNSUBSCRIBE) a packet id mochi will
// not confuse with its own in-flight ones.
func (b *Broker) remapInbound(cl *mqtt.Client, pk *packets.Packet) {
	if _, inUse := cl.State.Inflight.Get(pk.PacketID); !inUse {
		return
	}
	m := metaOf(cl)
	if m == nil {
		return
	}
	m.ids.mu.Lock()
	defer m.ids.mu.Unlock()
	// mochi numbers its own publishes upwards from 1: search from the top.
	for id := uint16(65535); id > 0; id-- {
		if _, taken := m.ids.m[id]; taken {
			continue
		}
		if _, inUse := cl.State.Inflight.Get(id); inUse {
			continue
		}
		if m.ids.m == nil {
			m.ids.m = make(map[uint16]uint16)
		}
		m.ids.m[id] = pk.PacketID
		pk.PacketID = id
		b.metrics.packetIDRemaps.Inc()
		return
	}
}

// restoreOutbound puts the client's own packet id back into a SUBACK or
// UNSUBACK answering a remapped request.
func restoreOutbound(cl *mqtt.Client, pk *packets.Packet) {
	m := metaOf(cl)
	if m == nil {
		return
	}
	m.ids.mu.Lock()
	defer m.ids.mu.Unlock()
	if orig, ok := m.ids.m[pk.PacketID]; ok {
		delete(m.ids.m, pk.PacketID)
		pk.PacketID = orig
	}
}
