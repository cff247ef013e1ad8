package syncer

import (
	"slices"
	"strings"
	"time"
)

// EdgeStatus is what the hub knows of one edge.
type EdgeStatus struct {
	Node string
	// Connected is the edge's retained status on the broker (online).
	Connected bool
	// Session is true while the edge has a live session on this hub.
	Session  bool
	LastSeen time.Time
	// UpAcked is the edge's op-log seq the hub acknowledged last.
	UpAcked uint64
	// DownAcked is the hub op-log seq the edge has everything up to.
	DownAcked uint64
	// Lag is how many hub op-log seqs the edge is behind.
	Lag          uint64
	NeedFullSync bool
	// ClockOffset is the edge's clock minus the hub's, at its Hello.
	ClockOffset   time.Duration
	RTT           time.Duration
	FullSyncsUp   uint64
	FullSyncsDown uint64
}

// HubStatus is the hub's sync state.
type HubStatus struct {
	Connected bool // to the broker
	LogOldest uint64
	LogLast   uint64
	LogBytes  int64 // estimate
	StateGen  uint64
	Edges     []EdgeStatus // sorted by node
}

func (s *hubSession) publishStatus() {
	c := s.core
	if c.rttSamples != s.rttSeen {
		s.rttSeen = c.rttSamples
		s.h.m.rtt.Observe(c.rtt.Seconds())
	}
	st := EdgeStatus{
		Node: s.node, Session: c.active, UpAcked: c.rec.UpAcked, DownAcked: c.rec.DownCursor,
		NeedFullSync: c.needFull || c.fd.active, ClockOffset: c.clockOffset, RTT: c.rtt,
		FullSyncsUp: c.fullUps, FullSyncsDown: c.fullDowns,
	}
	if c.rec.LastSeen > 0 {
		st.LastSeen = time.UnixMilli(c.rec.LastSeen)
	}
	s.status.Store(&st)
}

// Status returns the hub's state and every known edge's. It never blocks
// on the network.
func (h *Hub) Status() HubStatus {
	st := h.opts.Store
	hs := HubStatus{Connected: h.link.Load() != nil, LogOldest: st.OldestSeq(), LogLast: st.LastSeq(), LogBytes: h.index.bytes()}
	h.mu.Lock()
	hs.StateGen = h.meta.StateGen
	for n, r := range h.records {
		e := EdgeStatus{Node: n, UpAcked: r.UpAcked, DownAcked: r.DownCursor, NeedFullSync: r.HaveGen < h.meta.StateGen}
		if r.LastSeen > 0 {
			e.LastSeen = time.UnixMilli(r.LastSeen)
		}
		if s := h.sessions[n]; s != nil {
			if live := s.status.Load(); live != nil {
				e = *live
			}
		}
		e.Connected = h.online[n]
		if hs.LogLast > e.DownAcked {
			e.Lag = hs.LogLast - e.DownAcked
		}
		hs.Edges = append(hs.Edges, e)
	}
	h.mu.Unlock()
	slices.SortFunc(hs.Edges, func(a, b EdgeStatus) int { return strings.Compare(a.Node, b.Node) })
	return hs
}
