package syncer

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// The pure core (etcd/raft style). edgeCore and hubEdge are deterministic
// state machines: no I/O, no goroutines, no wall clock, no global random
// source. Inputs are method calls that carry the time; outputs are
// actions queued in order, which the driver executes (each result comes
// back as another input). Everything the protocol decides — what to send,
// what to apply, when to give up on a link, when a full-state transfer is
// needed — is here, and tested with scripts in testdata/.

// action is one thing the driver must do, in order.
type action interface{ String() string }

type (
	// actConnect: dial the hub's broker; answer with LinkUp or LinkFailed.
	actConnect struct{}
	// actDisconnect: drop the link (it is considered dead).
	actDisconnect struct{ err error }
	// actSend: publish msg on the peer's topic.
	actSend struct{ msg Message }
	// actReadUp (edge): read own durable ops after After; answer UpRead.
	actReadUp struct{ after uint64 }
	// actReadDown (hub): read durable ops after After the edge lacks;
	// answer DownRead.
	actReadDown struct{ after uint64 }
	// actApply: apply the ops of msg durably; answer Applied.
	actApply struct{ msg *DeltaSync }
	// actPersist: write the syncer state (urgent: now; else soon).
	actPersist struct{ urgent bool }
	// actPrune (edge): drop op-log entries up to upTo.
	actPrune struct{ upTo uint64 }
	// actExport: start exporting a snapshot as FullSync chunks; answer
	// with ChunkReady (when the core wants one) or ExportFailed.
	actExport struct{ snapshot uint64 }
	// actStopExport: abandon the export in progress.
	actStopExport struct{}
	// actStage: store a received FullSync chunk durably; answer Staged.
	actStage struct{ msg *FullSync }
	// actMerge: merge the staged snapshot; answer Merged.
	actMerge struct{ msg *FullSync }
	// actRecord: store conflicts a peer reported.
	actRecord struct{ conflicts []crdt.Conflict }
	// actSynced (edge): a sync round completed; wake SyncNow waiters.
	actSynced struct{}
	// actLinkFailed (edge): the link failed; fail SyncNow waiters.
	actLinkFailed struct{ err error }
	// actNote: something worth a log line (and maybe a status field).
	actNote struct {
		level slog.Level
		msg   string
		args  []any
	}
)

func (actConnect) String() string      { return "connect" }
func (a actDisconnect) String() string { return fmt.Sprintf("disconnect (%v)", a.err) }
func (a actSend) String() string       { return "send " + describe(a.msg) }
func (a actReadUp) String() string     { return fmt.Sprintf("read-up after=%d", a.after) }
func (a actReadDown) String() string   { return fmt.Sprintf("read-down after=%d", a.after) }
func (a actApply) String() string      { return "apply " + describe(a.msg) }
func (a actPersist) String() string {
	if a.urgent {
		return "persist urgent"
	}
	return "persist"
}
func (a actPrune) String() string      { return fmt.Sprintf("prune upto=%d", a.upTo) }
func (a actExport) String() string     { return fmt.Sprintf("export snapshot=%d", a.snapshot) }
func (actStopExport) String() string   { return "stop-export" }
func (a actStage) String() string      { return "stage " + describe(a.msg) }
func (a actMerge) String() string      { return "merge " + describe(a.msg) }
func (a actRecord) String() string     { return fmt.Sprintf("record %d conflicts", len(a.conflicts)) }
func (actSynced) String() string       { return "synced" }
func (a actLinkFailed) String() string { return fmt.Sprintf("link-failed (%v)", a.err) }
func (a actNote) String() string {
	return fmt.Sprintf("note %s %q", strings.ToLower(a.level.String()), a.msg)
}

// describe formats a message on one line for scripts and logs.
func describe(m Message) string {
	switch m := m.(type) {
	case *Hello:
		return fmt.Sprintf("Hello session=%d node=%s down=%d upacked=%d counter=%d fullup=%v",
			m.Session, m.Node, m.DownSeq, m.UpAcked, m.OwnCounter, m.NeedFullUp)
	case *Welcome:
		return fmt.Sprintf("Welcome session=%d hub=%s inc=%d has=%d down=%d oldest=%d fulldown=%v",
			m.Session, m.Hub, m.HubInc, m.HubHas, m.DownSeq, m.OldestSeq, m.FullDown)
	case *DeltaSync:
		return fmt.Sprintf("DeltaSync session=%d range=(%d,%d] ops=%d", m.Session, m.After, m.Upto, len(m.Ops))
	case *FullSync:
		s := fmt.Sprintf("FullSync session=%d snapshot=%d chunk=%d entries=%d", m.Session, m.Snapshot, m.Chunk, len(m.Entries))
		if m.Last {
			s += fmt.Sprintf(" last snapseq=%d", m.SnapSeq)
		}
		return s
	case *Ack:
		s := fmt.Sprintf("Ack session=%d", m.Session)
		if m.Stream == StreamFull {
			s += fmt.Sprintf(" full snapshot=%d chunk=%d", m.Snapshot, m.Chunk)
		}
		s += fmt.Sprintf(" cursor=%d", m.Cursor)
		if m.Counter != 0 {
			s += fmt.Sprintf(" counter=%d", m.Counter)
		}
		for _, f := range []struct {
			f AckFlags
			n string
		}{{AckGap, "gap"}, {AckDone, "done"}, {AckHello, "hello"}} {
			if m.Flags&f.f != 0 {
				s += " " + f.n
			}
		}
		return s
	case *ConflictReport:
		return fmt.Sprintf("ConflictReport session=%d conflicts=%d", m.Session, len(m.Conflicts))
	}
	return fmt.Sprintf("%T", m)
}

// flight is a DeltaSync batch sent and not yet acknowledged.
type flight struct {
	after, upto uint64
	sent        time.Time
	deadline    time.Time
}

// dropAcked removes the flights an ack up to cursor covers and returns the
// send time of the newest one removed (for RTT).
func dropAcked(fs []flight, cursor uint64) ([]flight, time.Time) {
	var sent time.Time
	i := 0
	for i < len(fs) && fs[i].upto <= cursor {
		sent = fs[i].sent
		i++
	}
	return fs[i:], sent
}

func oldestDeadline(fs []flight) time.Time {
	if len(fs) == 0 {
		return time.Time{}
	}
	return fs[0].deadline
}

// fullSend tracks a FullSync this side sends (chunks from an exporter).
type fullSend struct {
	active    bool
	snapshot  uint64
	sent      uint64 // chunks sent
	acked     uint64 // chunks acknowledged (in order)
	last      bool   // the last chunk was sent
	snapSeq   uint64
	deadlines []time.Time // per unacknowledged chunk, oldest first
	doneBy    time.Time   // after the last chunk's ack: wait for Done until
}

func (f *fullSend) deadline() time.Time {
	if len(f.deadlines) > 0 {
		return f.deadlines[0]
	}
	return f.doneBy
}

// fullRecv tracks a FullSync this side receives.
type fullRecv struct {
	snapshot uint64 // 0: none in progress
	next     uint64 // next chunk expected
	merged   uint64 // last snapshot merged (re-ack duplicates)
	mergedAt uint64 // its SnapSeq
}

// onChunk decides what to do with a FullSync chunk: stage it, re-ack a
// duplicate, or report a gap.
func (f *fullRecv) onChunk(m *FullSync) (stage bool, reply *Ack) {
	ack := &Ack{Session: m.Session, Stream: StreamFull, Snapshot: m.Snapshot}
	switch {
	case m.Snapshot == f.merged:
		ack.Chunk, ack.Flags, ack.Cursor = m.Chunk, AckDone, f.mergedAt
		return false, ack
	case m.Snapshot != f.snapshot && m.Chunk == 0:
		f.snapshot, f.next = m.Snapshot, 0
	case m.Snapshot != f.snapshot:
		ack.Flags = AckGap
		return false, ack
	}
	switch {
	case m.Chunk < f.next:
		ack.Chunk = m.Chunk
		return false, ack
	case m.Chunk > f.next:
		ack.Chunk, ack.Flags = f.next, AckGap
		return false, ack
	}
	f.next++
	return true, nil
}

// backoff returns the delay before connection attempt n (n >= 1): full
// jitter, uniform in [0, min(max, base·2^(n-1))), and never below 1% of
// base so a broken link cannot spin.
func backoff(rnd *rand.Rand, base, max time.Duration, n int) time.Duration {
	ceil := base
	for i := 1; i < n && ceil < max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, max)
	floor := base / 100
	if ceil <= floor {
		return floor
	}
	return floor + time.Duration(rnd.Int64N(int64(ceil-floor)))
}

// Policy is when an edge pushes its changes to the hub.
type Policy uint8

// Policies (edge.sync_policy).
const (
	// PolicyOpportunistic pushes when the link comes up and every Interval.
	PolicyOpportunistic Policy = iota
	// PolicyImmediate pushes every change as soon as it is durable.
	PolicyImmediate
	// PolicyPeriodic pushes every Interval.
	PolicyPeriodic
	// PolicyManual pushes only on SyncNow (EDGE.SYNC, Node.Sync).
	PolicyManual
)

func (p Policy) String() string {
	switch p {
	case PolicyOpportunistic:
		return "opportunistic"
	case PolicyImmediate:
		return "immediate"
	case PolicyPeriodic:
		return "periodic"
	case PolicyManual:
		return "manual"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy parses immediate, periodic, opportunistic or manual.
func ParsePolicy(s string) (Policy, error) {
	for p := PolicyOpportunistic; p <= PolicyManual; p++ {
		if strings.EqualFold(strings.TrimSpace(s), p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: sync policy %q (want immediate, periodic, opportunistic or manual)", ErrInvalidOptions, s)
}

// opsMaxCounter returns the highest dot counter among ops.
func opsMaxCounter(ops []store.Op) uint64 {
	var m uint64
	for i := range ops {
		m = max(m, ops[i].Dot.Counter)
	}
	return m
}

func earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}
