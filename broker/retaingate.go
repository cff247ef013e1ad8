package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Retained-index gate: a workaround for a data race in mochi v2.7.9.
//
// mochi's TopicsIndex.scanMessages (the retained messages a SUBSCRIBE gets)
// reads each topic node's retainPath without the node's lock, while
// TopicsIndex.RetainMessage writes it under that lock. A string read torn
// by a concurrent write can yield a bad pointer/length pair; the race
// detector reports it. Nothing in mochi's API takes that lock for us, so
// the gate keeps the two apart from hooks that bracket each side:
//
//   - a retained write enters in OnPublish (or OnWill, for an immediate
//     retained will) of the last hook that provides it, and leaves in
//     OnRetainMessage of the first hook. mochi calls retainMessage right
//     after a successful OnPublish chain when the packet is retained, and
//     retainMessage calls RetainMessage then OnRetainMessage;
//   - a scan enters when the SUBACK has been written (OnPacketSent) and
//     leaves in OnPacketProcessed of the SUBSCRIBE: in between, mochi only
//     sends the retained messages of the new subscriptions. A SUBSCRIBE
//     with one filter to scan (the usual case, and the long one: a hub's
//     "ferrite/data/#" over 100k retained topics) leaves as soon as the
//     first retained message went out (OnRetainPublished): its scan is
//     over, and writers need not wait while the rest are sent. A SUBSCRIBE
//     that scans nothing (shared, retain handling 2, refused) never enters.
//
// Writers share the gate with each other, scans with each other; a waiting
// scan stops new writers so a stream of retained publishes cannot starve
// subscribers. A wait is bounded (gateWaitLimit): should a hook bracket
// ever fail to close, the broker degrades to mochi's unguarded behaviour
// and logs it, and never deadlocks. Not covered, because mochi calls no
// hook before the write: retained wills sent after a will delay, and
// mochi's own $SYS topics, which its event loop rewrites every
// sysTopicInterval (the same constant topic strings each time, so a
// subscriber to a $SYS wildcard reads the same value either way; -race
// still reports it). Nor is mochi's inline Subscribe, which the broker
// does not use.
type retainGate struct {
	log *slog.Logger

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced when a waiter may go on
	writers   int
	scans     int
	scanWait  int                  // scans waiting for writers to leave
	writeWait int                  // writes waiting for scans to leave
	held      map[*mqtt.Client]int // writes entered, per client, not yet left
	timeouts  int
}

// gateWaitLimit bounds a wait at the gate.
const gateWaitLimit = 2 * time.Second

func newRetainGate(log *slog.Logger) *retainGate {
	return &retainGate{log: log, changed: make(chan struct{}), held: make(map[*mqtt.Client]int)}
}

// wait releases g.mu until the gate changes or the deadline passes, and
// reports whether it may wait again (mu held on entry and return).
func (g *retainGate) wait(deadline time.Time) bool {
	ch := g.changed
	g.mu.Unlock()
	d := time.Until(deadline)
	ok := d > 0
	if ok {
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
			ok = false
		}
		t.Stop()
	}
	g.mu.Lock()
	return ok
}

func (g *retainGate) broadcast() {
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *retainGate) timedOut(side string) {
	g.timeouts++
	if g.timeouts == 1 || g.timeouts%1000 == 0 {
		// A long scan (a wildcard subscription over thousands of retained
		// topics) can hold writers this long too; either way nothing
		// stops, the broker only loses the guard for this access.
		g.log.Warn("retained-index gate wait timed out; continuing unguarded", "side", side,
			"writers", g.writers, "scans", g.scans, "timeouts", g.timeouts)
	}
}

// enterWrite admits a retained write by cl.
func (g *retainGate) enterWrite(cl *mqtt.Client) {
	g.mu.Lock()
	var deadline time.Time
	for g.scans > 0 || g.scanWait > 0 {
		if deadline.IsZero() {
			deadline = time.Now().Add(gateWaitLimit)
		}
		g.writeWait++
		ok := g.wait(deadline)
		g.writeWait--
		if !ok {
			g.timedOut("write")
			break
		}
	}
	g.writers++
	g.held[cl]++
	g.mu.Unlock()
}

// leaveWrite ends a retained write by cl entered with enterWrite; a write
// that did not enter (a delayed will) is ignored.
func (g *retainGate) leaveWrite(cl *mqtt.Client) {
	g.mu.Lock()
	if n := g.held[cl]; n > 0 {
		if n == 1 {
			delete(g.held, cl)
		} else {
			g.held[cl] = n - 1
		}
		g.writers--
		if g.writers == 0 && g.scanWait > 0 {
			g.broadcast()
		}
	}
	g.mu.Unlock()
}

// enterScan admits a scan of the retained index.
func (g *retainGate) enterScan() {
	g.mu.Lock()
	var deadline time.Time
	g.scanWait++
	for g.writers > 0 {
		if deadline.IsZero() {
			deadline = time.Now().Add(gateWaitLimit)
		}
		if !g.wait(deadline) {
			g.timedOut("scan")
			break
		}
	}
	g.scanWait--
	g.scans++
	g.mu.Unlock()
}

func (g *retainGate) leaveScan() {
	g.mu.Lock()
	g.scans--
	if g.scans == 0 && g.writeWait > 0 {
		g.broadcast()
	}
	g.mu.Unlock()
}

// gateEnterHook must be the last hook providing OnPublish and OnWill, so
// that when it admits a write nothing after it can stop mochi's
// retainMessage.
type gateEnterHook struct {
	mqtt.HookBase
	b *Broker
	g *retainGate
}

func (h *gateEnterHook) ID() string { return "ferrite-retain-gate-enter" }

func (h *gateEnterHook) Provides(e byte) bool {
	switch e {
	case mqtt.OnPublish, mqtt.OnWill, mqtt.OnSubscribed, mqtt.OnPacketSent,
		mqtt.OnRetainPublished, mqtt.OnPacketProcessed:
		return true
	}
	return false
}

func (h *gateEnterHook) retainAvailable() bool {
	return h.b.server.Options.Capabilities.RetainAvailable != 0
}

func (h *gateEnterHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && !pk.Ignore && h.retainAvailable() {
		h.g.enterWrite(cl)
	}
	return pk, nil
}

func (h *gateEnterHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && cl.Properties.Will.WillDelayInterval == 0 && h.retainAvailable() {
		h.g.enterWrite(cl)
	}
	return will, nil
}

// OnSubscribed counts the filters mochi will scan for retained messages
// (publishRetainedToClient: granted, not shared, retain handling not 2),
// just before it writes the SUBACK.
func (h *gateEnterHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	m := metaOf(cl)
	if m == nil {
		return
	}
	n := 0
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code &&
			!mqtt.IsSharedFilter(f.Filter) && f.RetainHandling != 2 {
			n++
		}
	}
	m.scanFilters = n
}

func (h *gateEnterHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Suback {
		return
	}
	if m := metaOf(cl); m != nil && !m.scanning && m.scanFilters > 0 {
		m.scanning = true
		h.g.enterScan()
	}
}

// OnRetainPublished: the first retained message of a one-filter scan has
// been sent, so mochi's scan (Messages) has returned.
func (h *gateEnterHook) OnRetainPublished(cl *mqtt.Client, _ packets.Packet) {
	if m := metaOf(cl); m != nil && m.scanning && m.scanFilters == 1 {
		h.leaveScan(m)
	}
}

func (h *gateEnterHook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type != packets.Subscribe {
		return
	}
	if m := metaOf(cl); m != nil && m.scanning {
		h.leaveScan(m)
	}
}

func (h *gateEnterHook) leaveScan(m *connMeta) {
	m.scanning = false
	h.g.leaveScan()
}

// gateLeaveHook must be the first hook providing OnRetainMessage: the write
// is over once mochi's RetainMessage has returned.
type gateLeaveHook struct {
	mqtt.HookBase
	g *retainGate
}

func (h *gateLeaveHook) ID() string { return "ferrite-retain-gate-leave" }

func (h *gateLeaveHook) Provides(e byte) bool { return e == mqtt.OnRetainMessage }

func (h *gateLeaveHook) OnRetainMessage(cl *mqtt.Client, _ packets.Packet, _ int64) {
	h.g.leaveWrite(cl)
}
