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
// disconnects the old client itself and waits until its connection's
// goroutine has left attachClient (connMeta.ended), so nothing of the old
// connection can touch the client map afterwards: a session that ended
// with it is gone from the map and mochi finds nothing to take over; a
// persistent one is still there and mochi inherits it as usual, after the
// old connection's will and disconnect hooks ran. The old session's kind
// is not read here: its own goroutine may rewrite its expiry on DISCONNECT
// (a data race). A session restored from the data dir has no connection
// and nothing to wait for.

// takeoverWait bounds the wait for the old connection to leave. Its
// goroutine only has to see its socket closed and run the disconnect hooks.
const takeoverWait = 5 * time.Second

// OnSessionEstablish runs on the new client's goroutine after it is
// authenticated and before mochi inherits or replaces the old session.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	old, ok := h.b.server.Clients.Get(cl.ID)
	if !ok || old == cl {
		return
	}
	m := metaOf(old)
	if m == nil {
		// A restored session: no connection, no goroutine.
		orderInflight(old)
		return
	}
	// Whatever the old session's kind (reading its expiry here would race
	// with its own DISCONNECT), end the old connection and let its goroutine
	// finish: its will, OnDisconnect and, for a session that ends with it,
	// its removal from the map all happen before mochi looks for the session.
	_ = h.b.server.DisconnectClient(old, packets.ErrSessionTakenOver)
	// Wait until the old connection's attachClient has returned: from then
	// on its goroutine cannot delete the id from the map. A client that
	// returned early (CONNACK write failed) stays in the map without a
	// goroutine; mochi takes it over as usual.
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select {
	case <-m.ended:
	case <-h.b.ctx.Done():
		return
	case <-t.C:
		h.b.log.Warn("session takeover: the old connection did not end in time", "client", cl.ID,
			"old_remote", old.Net.Remote, "waited", takeoverWait)
		return
	}
	// The session mochi will hand over, if any (one that ended with its
	// connection is gone from the map by now).
	if cur, ok := h.b.server.Clients.Get(cl.ID); ok && cur == old {
		orderInflight(old)
	}
}
