package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Session takeover.
//
// mochi v2.7.9 races when a client connects with the id of a connected
// client whose session ends with its connection (MQTT 5 session expiry 0,
// or MQTT 3.1.1 clean session): inheritClientSession disconnects the old
// client first and marks it taken over only afterwards, while the old
// connection's goroutine, on its way out of attachClient, checks that mark
// and, not seeing it yet, runs s.Clients.Delete(id), which can land after
// the new client was added under the same id. The new client is then
// connected but missing from the client map, and mochi delivers nothing to
// it (publishToSubscribers looks subscribers up there) until it reconnects
// (found as a flaky test: a reply lost in about 1 of 50 takeovers under
// -race). A sensor that reconnects before its old half-open socket timed
// out does exactly this.
//
// The workaround: before mochi looks for the old session, the hook
// disconnects the old client itself and waits until its goroutine has
// removed it from the map, so mochi finds no session to take over (as the
// old session ended with its connection, there is nothing to inherit).
// Sessions that outlive their connection are left to mochi: that path
// marks the old client before anything can observe it.

// takeoverWait bounds the wait for the old connection to leave. Its
// goroutine only has to see its socket closed and run the disconnect hooks.
const takeoverWait = 5 * time.Second

// OnSessionEstablish runs on the new client's goroutine after it is
// authenticated and before mochi inherits or replaces the old session.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	old, ok := h.b.server.Clients.Get(cl.ID)
	if !ok || old == cl || !sessionEndsWithConnection(old) {
		return
	}
	_ = h.b.server.DisconnectClient(old, packets.ErrSessionTakenOver)
	deadline := time.Now().Add(takeoverWait)
	for {
		cur, ok := h.b.server.Clients.Get(cl.ID)
		if !ok || cur != old {
			return
		}
		if time.Now().After(deadline) || h.b.ctx.Err() != nil {
			h.b.log.Warn("session takeover: the old connection did not end in time", "client", cl.ID,
				"old_remote", old.Net.Remote, "waited", takeoverWait)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// sessionEndsWithConnection reports whether mochi expires cl's session when
// its connection ends (the condition attachClient uses).
func sessionEndsWithConnection(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}
