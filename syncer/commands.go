package syncer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Command is a transport-neutral command spec; the root package registers
// it on the broker's command router and the Go API. Args exclude the
// command name; MaxArgs < 0 means unbounded.
type Command struct {
	Name     string
	MinArgs  int
	MaxArgs  int
	ReadOnly bool
	Help     string
	Run      func(ctx context.Context, args []string) (any, error)
}

// ErrBadArgument is returned by commands for an argument they cannot use.
var ErrBadArgument = errors.New("syncer: bad argument")

// QueueReply is the reply of EDGE.QUEUE.
type QueueReply struct {
	PendingOps       int     `json:"pending_ops"`
	PendingBytes     int64   `json:"pending_bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	Oldest           string  `json:"oldest,omitempty"` // RFC 3339
	Dropped          uint64  `json:"dropped"`
	Capacity         int     `json:"capacity"`
	NeedFullSync     bool    `json:"need_full_sync"`
}

// SyncReply is the reply of EDGE.SYNC.
type SyncReply struct {
	Synced     bool   `json:"synced"`
	PendingOps int    `json:"pending_ops"`
	LastSync   string `json:"last_sync,omitempty"`
}

// ConflictHead is one side of a conflict in EDGE.CONFLICTS.
type ConflictHead struct {
	Node  string `json:"node"`  // the writer's node id
	Actor string `json:"actor"` // the writer's data directory (store.Store.Actor)
	Dot   string `json:"dot"`
	Time  string `json:"time"` // RFC 3339 (the write's HLC wall time)
	Role  string `json:"role"`
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// ConflictReply is one conflict in EDGE.CONFLICTS.
type ConflictReply struct {
	ID         string       `json:"id"`
	Key        string       `json:"key"`
	Field      string       `json:"field,omitempty"`
	Strategy   string       `json:"strategy"`
	Winner     ConflictHead `json:"winner"`
	Loser      ConflictHead `json:"loser"`
	DetectedAt string       `json:"detected_at"`
}

// Commands returns EDGE.SYNC, EDGE.QUEUE and EDGE.CONFLICTS bound to e.
func Commands(e *Edge) []Command {
	return []Command{
		{
			Name: "EDGE.SYNC", MinArgs: 0, MaxArgs: 0,
			Help: "EDGE.SYNC — push every pending change to the hub now; replies when the hub acknowledged them, or with the error",
			Run: func(ctx context.Context, _ []string) (any, error) {
				if err := e.SyncNow(ctx); err != nil {
					return nil, err
				}
				s := e.Status()
				r := SyncReply{Synced: true, PendingOps: s.PendingOps}
				if !s.LastSync.IsZero() {
					r.LastSync = s.LastSync.UTC().Format(time.RFC3339Nano)
				}
				return r, nil
			},
		},
		{
			Name: "EDGE.QUEUE", MinArgs: 0, MaxArgs: 0, ReadOnly: true,
			Help: "EDGE.QUEUE — the offline queue: pending ops and bytes, age of the oldest, ops dropped on overflow, capacity",
			Run: func(context.Context, []string) (any, error) {
				s := e.Status()
				r := QueueReply{PendingOps: s.PendingOps, PendingBytes: s.PendingBytes, Dropped: s.Dropped,
					Capacity: e.opts.QueueCapacity, NeedFullSync: s.NeedFullSync, OldestAgeSeconds: s.OldestPendingAge.Seconds()}
				if !s.OldestPending.IsZero() {
					r.Oldest = s.OldestPending.UTC().Format(time.RFC3339Nano)
				}
				return r, nil
			},
		},
		ConflictsCommand(e.opts.Store),
	}
}

// ConflictsCommand returns EDGE.CONFLICTS [CLEAR | <limit> | <id>...]:
// list the recorded conflicts with both values, clear them all, or clear
// the ones named by id. Works on any replica (hub included).
func ConflictsCommand(st Store) Command {
	return Command{
		Name: "EDGE.CONFLICTS", MinArgs: 0, MaxArgs: -1,
		Help: "EDGE.CONFLICTS [<limit>] | CLEAR — concurrent writes resolved by the conflict strategy: key, winner and loser (node, time, value); CLEAR forgets them",
		Run: func(ctx context.Context, args []string) (any, error) {
			limit := 100
			switch {
			case len(args) == 1 && strings.EqualFold(args[0], "CLEAR"):
				n, err := st.ClearConflicts(ctx)
				if err != nil {
					return nil, err
				}
				return map[string]int{"cleared": n}, nil
			case len(args) == 1:
				n, err := strconv.Atoi(args[0])
				if err != nil || n < 1 || n > 10_000 {
					return nil, fmt.Errorf("%w: %q (want CLEAR or a limit in [1, 10000])", ErrBadArgument, args[0])
				}
				limit = n
			case len(args) > 1:
				return nil, fmt.Errorf("%w: want EDGE.CONFLICTS [<limit> | CLEAR]", ErrBadArgument)
			}
			recs, err := st.Conflicts(ctx, limit)
			if err != nil {
				return nil, err
			}
			out := make([]ConflictReply, len(recs))
			for i := range recs {
				out[i] = conflictReply(&recs[i])
			}
			return out, nil
		},
	}
}

func conflictReply(r *store.ConflictRecord) ConflictReply {
	c := &r.Conflict
	out := ConflictReply{
		ID: c.IDString(), Key: c.Key, Strategy: c.Strategy.String(),
		Winner: conflictHead(&c.Winner), Loser: conflictHead(&c.Loser),
		DetectedAt: time.UnixMilli(r.DetectedAt).UTC().Format(time.RFC3339Nano),
	}
	if c.HashField {
		out.Field = c.Field
	}
	return out
}

func conflictHead(h *crdt.Head) ConflictHead {
	return ConflictHead{
		Node: store.ActorNode(h.Stamp.Node), Actor: h.Stamp.Node, Dot: h.Dot.String(), Role: h.Stamp.Role.String(), Kind: h.Kind.String(),
		Time:  time.UnixMilli(h.Stamp.TS.Physical()).UTC().Format(time.RFC3339Nano),
		Value: crdt.DisplayValue(h.Kind, h.Value),
	}
}

// StatusFields returns the hub's fields of EDGE.STATUS.
func (h *Hub) StatusFields() map[string]any {
	s := h.Status()
	live := 0
	for _, e := range s.Edges {
		if e.Session {
			live++
		}
	}
	edges := make([]map[string]any, 0, min(len(s.Edges), statusMaxEdges))
	for _, e := range s.Edges[:min(len(s.Edges), statusMaxEdges)] {
		edges = append(edges, edgeStatusFields(e))
	}
	return map[string]any{
		"sync_role":        "hub",
		"broker_connected": s.Connected,
		"edges_known":      len(s.Edges),
		"edges_syncing":    live,
		"edges":            edges,
		"edges_truncated":  len(s.Edges) > statusMaxEdges,
		"log_oldest_seq":   s.LogOldest,
		"log_last_seq":     s.LogLast,
		"log_bytes":        s.LogBytes,
	}
}

// statusMaxEdges bounds the edges EDGE.STATUS lists on a hub (sorted by
// node id), so that the reply stays a small MQTT message on a large fleet.
const statusMaxEdges = 256

func edgeStatusFields(e EdgeStatus) map[string]any {
	f := map[string]any{
		"node":            e.Node,
		"online":          e.Connected,
		"syncing":         e.Session,
		"up_acked":        e.UpAcked,
		"down_acked":      e.DownAcked,
		"lag_ops":         e.Lag,
		"need_full_sync":  e.NeedFullSync,
		"full_syncs_up":   e.FullSyncsUp,
		"full_syncs_down": e.FullSyncsDown,
	}
	if !e.LastSeen.IsZero() {
		f["last_seen"] = e.LastSeen.UTC().Format(time.RFC3339Nano)
	}
	if e.Session {
		f["rtt_ms"] = float64(e.RTT.Microseconds()) / 1000
		f["clock_offset_ms"] = e.ClockOffset.Milliseconds()
	}
	return f
}
