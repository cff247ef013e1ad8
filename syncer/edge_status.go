package syncer

import (
	"errors"
	"maps"
	"slices"
	"time"
)

// Status is the edge's sync state (EDGE.STATUS, EDGE.QUEUE).
type Status struct {
	// SyncStatus is syncing (a session with the hub, changes in flight or
	// a round under way with ops pending), idle (a session, nothing moving;
	// under the manual or periodic policy ops may wait for the next
	// round), offline (no session with the hub) or error (the last attempt
	// failed on this node: a store error).
	SyncStatus string
	// PendingOps and PendingBytes: own ops not yet acknowledged by the hub.
	PendingOps   int
	PendingBytes int64
	// OldestPending is the HLC wall time of the oldest pending op (zero
	// if none); OldestPendingAge is computed from it when read.
	OldestPending    time.Time
	OldestPendingAge time.Duration
	// Dropped counts ops dropped because the queue overflowed, ever.
	Dropped uint64
	// LastSync is when a sync round last completed (zero: never).
	LastSync     time.Time
	HubConnected bool
	Hub          string // hub node id, once known
	RTT          time.Duration
	// NeedFullSync: ops were dropped; the next sync sends full state.
	NeedFullSync  bool
	Reconnects    uint64
	LastError     string
	Policy        string
	Interval      time.Duration
	UpAcked       uint64 // own op-log seq acknowledged by the hub
	DownSeq       uint64 // hub op-log seq applied here
	FullSyncsUp   uint64
	FullSyncsDown uint64
	// HubClockOffset is the hub's clock minus ours, measured at Welcome.
	HubClockOffset time.Duration
	// SkewedNodes are writers whose HLC was seen beyond MaxClockSkew ahead
	// of this node's clock, with the largest lead seen.
	SkewedNodes map[string]time.Duration
}

// Status returns the current sync state. It never blocks.
func (e *Edge) Status() Status {
	s := *e.status.Load()
	if !s.OldestPending.IsZero() {
		s.OldestPendingAge = max(0, e.opts.Clock().Sub(s.OldestPending))
	}
	s.SkewedNodes = maps.Clone(s.SkewedNodes)
	return s
}

// LinkStats describes the hub link for the resource monitor's pacing.
type LinkStats struct {
	Connected bool
	// RTT is a smoothed round-trip time from a batch to its ack.
	RTT time.Duration
	// ConsecutiveFailures counts failed connection attempts and sessions
	// since the last success.
	ConsecutiveFailures int
	// Throughput is bytes per second (both directions) over the last
	// seconds.
	Throughput float64
	// BytesSent and BytesReceived count MQTT bytes on the hub link (sync
	// PUBLISH packets and their PUBACKs), since the Edge was created.
	BytesSent     uint64
	BytesReceived uint64
	// MessagesSent and MessagesReceived count sync messages.
	MessagesSent     uint64
	MessagesReceived uint64
}

// LinkStats returns the link figures. It never blocks.
func (e *Edge) LinkStats() LinkStats {
	s := e.status.Load()
	return LinkStats{
		Connected: s.HubConnected, RTT: e.linkRTT.Load(), ConsecutiveFailures: int(e.failures.Load()),
		Throughput: e.throughput.Load(), BytesSent: e.counters.wireOut.Load(), BytesReceived: e.counters.wireIn.Load(),
		MessagesSent: e.counters.msgsOut.Load(), MessagesReceived: e.counters.msgsIn.Load(),
	}
}

func (r *edgeRun) publishStatus() {
	c := r.core
	now := r.now()
	st := Status{
		PendingOps: r.queue.len(), PendingBytes: r.queue.bytes, Dropped: c.st.Dropped,
		HubConnected: c.phase == edgeActive, Hub: c.st.HubID, RTT: c.rtt, NeedFullSync: c.st.NeedFullUp,
		Reconnects: c.reconnects, Policy: r.opts.Policy.String(), Interval: c.cfg.Interval,
		UpAcked: c.st.UpAcked, DownSeq: c.st.DownSeq, FullSyncsUp: c.fullUps, FullSyncsDown: c.fullDowns,
		HubClockOffset: c.hubOffset,
	}
	if ts := r.queue.oldest(); ts > 0 {
		st.OldestPending = time.UnixMilli(ts)
	}
	if c.st.LastSync > 0 {
		st.LastSync = time.UnixMilli(c.st.LastSync)
	}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	if len(r.skewed) > 0 {
		st.SkewedNodes = maps.Clone(r.skewed)
	}
	switch {
	case c.phase == edgeActive && (len(c.inflight) > 0 || c.fu.active || c.fd.snapshot != 0 || (c.roundOpen && st.PendingOps > 0)):
		st.SyncStatus = "syncing"
	case c.phase == edgeActive:
		st.SyncStatus = "idle"
	case c.lastErr != nil && isLocal(c.lastErr):
		st.SyncStatus = "error"
	default:
		st.SyncStatus = "offline"
	}
	r.e.status.Store(&st)

	m := r.e.m
	m.queueOps.Set(float64(st.PendingOps))
	m.queueBytes.Set(float64(st.PendingBytes))
	if st.OldestPending.IsZero() {
		m.queueAge.Set(0)
	} else {
		m.queueAge.Set(max(0, now.Sub(st.OldestPending).Seconds()))
	}
	if c.rttSamples != r.rttSeen {
		r.rttSeen = c.rttSamples
		m.rtt.Observe(c.rtt.Seconds())
	}
	// Smoothed RTT and throughput for LinkStats.
	if c.rtt > 0 {
		if r.rttAvg == 0 {
			r.rttAvg = c.rtt
		} else {
			r.rttAvg = (7*r.rttAvg + c.rtt) / 8
		}
		r.e.linkRTT.Store(r.rttAvg)
	}
	r.e.failures.Store(int64(c.attempts))
	if dt := now.Sub(r.rateAt); dt >= time.Second {
		total := r.e.counters.wireOut.Load() + r.e.counters.wireIn.Load()
		if !r.rateAt.IsZero() {
			r.e.throughput.Store((float64(total - r.bytesPrev)) / dt.Seconds())
		}
		r.bytesPrev, r.rateAt = total, now
	}
}

func isLocal(err error) bool {
	var l localError
	return errors.As(err, &l)
}

// StatusFields returns the sync fields of EDGE.STATUS.
func (e *Edge) StatusFields() map[string]any {
	s := e.Status()
	f := map[string]any{
		"sync_status":   s.SyncStatus,
		"pending_ops":   s.PendingOps,
		"last_sync":     nil,
		"hub_connected": s.HubConnected,
		"rtt":           s.RTT.Round(time.Microsecond).String(),
		"rtt_ms":        float64(s.RTT.Microseconds()) / 1000,
		"sync_policy":   s.Policy,
	}
	if !s.LastSync.IsZero() {
		f["last_sync"] = s.LastSync.UTC().Format(time.RFC3339Nano)
	}
	if s.Hub != "" {
		f["hub"] = s.Hub
	}
	if s.NeedFullSync {
		f["need_full_sync"] = true
	}
	if s.LastError != "" {
		f["sync_error"] = s.LastError
	}
	if len(s.SkewedNodes) > 0 {
		f["clock_skewed_nodes"] = slices.Sorted(maps.Keys(s.SkewedNodes))
	}
	return f
}
