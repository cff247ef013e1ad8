package broker

import (
	"cmp"
	"slices"

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
// Before mochi hands the old session over (OnSessionEstablish, after the
// old connection ended), the hook renumbers the messages' creation seconds
// so that they are distinct and increase in the order the messages were
// queued; mochi's own resend then sends them in that order, with their
// packet ids and everything else untouched. A creation second moves by at
// most a few seconds (one per message queued in the same second); only a
// broker.limits.message_expiry cap reads it (messages' own MQTT 5 expiry
// is kept apart, in Expiry). A first attempt moved the messages out and
// resent them itself: a review showed live messages taking their packet
// ids meanwhile.

// orderInflight makes mochi resend old's in-flight messages oldest first.
func orderInflight(old *mqtt.Client) {
	pks := old.State.Inflight.GetAll(false)
	if len(pks) < 2 {
		return
	}
	sortResend(pks)
	created := make([]int64, len(pks))
	for i, pk := range pks {
		created[i] = pk.Created
		if i > 0 && created[i] <= created[i-1] {
			created[i] = created[i-1] + 1
		}
	}
	// mochi compares uint16(Created): if the seconds cross a multiple of
	// 65536 (they span more than 18 hours, or straddle the boundary),
	// number the messages consecutively up to just before the last one's.
	if uint16(created[0]) > uint16(created[len(created)-1]) || created[len(created)-1]-created[0] >= 1<<16 {
		end := created[len(created)-1] &^ 0xffff // the boundary
		for i := range created {
			created[i] = end - int64(len(created)-i)
		}
	}
	for i := range pks {
		if pks[i].Created != created[i] {
			pks[i].Created = created[i]
			old.State.Inflight.Set(pks[i])
		}
	}
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
