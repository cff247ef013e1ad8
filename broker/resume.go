package broker

import (
	"cmp"
	"slices"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Resuming a session in order.
//
// When a persistent session resumes, mochi v2.7.9 resends its queued and
// unacknowledged messages in the order of Inflight.GetAll, which sorts by
// the low 16 bits of each message's creation second with an unstable sort
// over a map: messages queued within one second come back shuffled, so a
// client that keeps the last value (ON then OFF) can end in the wrong state
// [MQTT-4.6.0-6] (found by a conformance run against mosquitto: 22 queued
// messages came back in a different order each time).
//
// The hook moves the messages out of the old session before mochi looks at
// it (OnSessionEstablish, after the old connection ended), so mochi inherits
// and resends none, and sends them itself, oldest first, once the new
// session is established (OnSessionEstablished). If the new connection
// fails before that (its CONNACK cannot be written), serveConn puts them
// back into the client mochi keeps for the session, so the next resume
// still has them.

// resume is a session's messages waiting to be resent in order.
type resume struct {
	cl  *mqtt.Client
	pks []packets.Packet
}

// moveInflight takes old's in-flight messages for cl when mochi is about to
// hand old's session to cl (the condition of mochi's inheritClientSession).
// old's connection has ended: its fields are stable.
func (h *hook) moveInflight(old, cl *mqtt.Client, connect packets.Packet) {
	m := metaOf(cl)
	if m == nil || connect.Connect.Clean || (old.Properties.Clean && old.Properties.ProtocolVersion < 5) {
		return // mochi discards the old session's messages
	}
	pks := old.State.Inflight.GetAll(false)
	if len(pks) < 2 {
		return // nothing to order
	}
	for _, pk := range pks {
		old.State.Inflight.Delete(pk.PacketID)
	}
	sortResend(pks)
	m.resume = &resume{cl: cl, pks: pks}
}

// sortResend orders messages oldest first: by creation second, then by
// packet id, which mochi hands out increasing (wrapping after 65535).
func sortResend(pks []packets.Packet) {
	slices.SortStableFunc(pks, func(a, b packets.Packet) int {
		return cmp.Compare(a.Created, b.Created)
	})
	for i := 0; i < len(pks); {
		j := i
		for j < len(pks) && pks[j].Created == pks[i].Created {
			j++
		}
		group := pks[i:j]
		lo, hi := uint16(65535), uint16(0)
		for _, pk := range group {
			lo, hi = min(lo, pk.PacketID), max(hi, pk.PacketID)
		}
		wrapped := hi-lo > 1<<15 // ids wrapped within the second: low ids are newer
		slices.SortStableFunc(group, func(a, b packets.Packet) int {
			return cmp.Compare(resendRank(a.PacketID, wrapped), resendRank(b.PacketID, wrapped))
		})
		i = j
	}
}

func resendRank(id uint16, wrapped bool) int {
	if wrapped && id < 1<<15 {
		return int(id) + 1<<16
	}
	return int(id)
}

// OnSessionEstablished sends the messages moveInflight took, in order,
// the way mochi's ResendInflightMessages does.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	m := metaOf(cl)
	if m == nil || m.resume == nil {
		return
	}
	r := m.resume
	m.resume = nil
	for _, pk := range r.pks {
		cl.State.Inflight.Set(pk)
	}
	for _, pk := range r.pks {
		if pk.FixedHeader.Type == packets.Publish {
			pk.FixedHeader.Dup = true // [MQTT-3.3.1-1]
		}
		if err := cl.WritePacket(pk); err != nil {
			return // the rest stay in flight for the next resume
		}
		if t := pk.FixedHeader.Type; t == packets.Puback || t == packets.Pubcomp {
			if cl.State.Inflight.Delete(pk.PacketID) {
				atomic.AddInt64(&h.b.server.Info.Inflight, -1)
			}
		}
	}
}

// restoreResume puts back messages a connection took but never sent (its
// session was not established), so the session keeps them.
func restoreResume(m *connMeta) {
	if r := m.resume; r != nil {
		m.resume = nil
		for _, pk := range r.pks {
			r.cl.State.Inflight.Set(pk)
		}
	}
}
