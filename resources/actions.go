package resources

import (
	"context"
	"fmt"
	"time"
)

// The interfaces below are what the monitor acts on. Other packages (store,
// ingest, syncer) implement them and the root package wires them into
// Options; any of them may be left nil, and the monitor then skips that
// action. Calls come from the monitor's action goroutine (one call at a time,
// never concurrently with each other) except SetRefuseWrites,
// SetHighCompression and SetInterval, which are called from the sampling
// goroutine and must return at once.

// Evictor frees storage by removing least-recently-used evictable data (keys
// with a TTL; raw sensor readings already aggregated and synced). It must
// never remove data whose ops the hub has not acknowledged. bytes is the
// amount the monitor wants freed to get back under the Warning threshold; an
// Evictor may free less (nothing evictable is left) and reports what it
// freed. Space is reclaimed on disk by the Compact that follows.
type Evictor interface {
	Evict(ctx context.Context, bytes int64) (freed int64, err error)
}

// MemoryReleaser frees memory held by caches and buffers (the store's hot
// entry cache, ingest buffers). bytes is the amount wanted, as for Evictor.
type MemoryReleaser interface {
	ReleaseMemory(ctx context.Context, bytes int64) (freed int64, err error)
}

// Compactor reclaims disk space left by deletions and evictions (a Pebble
// manual compaction). It may take long; it must honour ctx.
type Compactor interface {
	Compact(ctx context.Context) error
}

// Offloader drops raw sensor readings that are already aggregated into
// buckets and synced to the hub, returning how many it dropped.
type Offloader interface {
	DropSyncedRawReadings(ctx context.Context) (dropped int64, err error)
}

// RollUp closes and writes the sensor aggregator's open buckets early, so
// that the raw readings behind them become offloadable.
type RollUp interface {
	RollUp(ctx context.Context) error
}

// WriteGate refuses or accepts new writes. A non-empty reason refuses them:
// MQTT 5 publishers get reason code 0x97 (quota exceeded) with the reason,
// commands get an error with it, QoS 0 readings are counted as refused;
// reads, sync and admin commands keep working. An empty reason accepts
// writes again. Must not block.
type WriteGate interface {
	SetRefuseWrites(reason string)
}

// CompressionRaiser switches the store to its strongest value compression
// (on) and back to the configured one (off). Must not block.
type CompressionRaiser interface {
	SetHighCompression(on bool)
}

// SyncController is the syncer's pacing. SyncNow runs a sync round (or asks
// for one) and returns when it is done, failed or ctx ends; SetInterval
// changes the time between periodic rounds and must not block.
type SyncController interface {
	SyncNow(ctx context.Context) error
	SetInterval(d time.Duration)
}

// LinkStatsProvider reports the link to the hub (the syncer implements it).
// Must not block.
type LinkStatsProvider interface {
	LinkStats() LinkStats
}

// ActionKind names an action the policy decides.
type ActionKind uint8

const (
	// One-shot actions, run in this order within a batch (on the action
	// goroutine): roll up before offload so the raw readings behind the
	// closed buckets can go; evict before compact so the space is reclaimed.
	ActSyncNow       ActionKind = iota + 1 // SyncController.SyncNow
	ActRollUp                              // RollUp.RollUp
	ActOffload                             // Offloader.DropSyncedRawReadings
	ActEvict                               // Evictor.Evict(Bytes)
	ActReleaseMemory                       // MemoryReleaser.ReleaseMemory(Bytes)
	ActFreeOSMemory                        // runtime/debug.FreeOSMemory
	ActCompact                             // Compactor.Compact

	// State actions, applied at once on the sampling goroutine.
	ActRefuseWrites    // WriteGate.SetRefuseWrites(Reason)
	ActAcceptWrites    // WriteGate.SetRefuseWrites("")
	ActHighCompression // CompressionRaiser.SetHighCompression(On)
	ActSetSyncInterval // SyncController.SetInterval(Interval)
)

var actionNames = [...]string{
	ActSyncNow: "sync_now", ActRollUp: "roll_up", ActOffload: "offload", ActEvict: "evict",
	ActReleaseMemory: "release_memory", ActFreeOSMemory: "free_os_memory", ActCompact: "compact",
	ActRefuseWrites: "refuse_writes", ActAcceptWrites: "accept_writes",
	ActHighCompression: "high_compression", ActSetSyncInterval: "set_sync_interval",
}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) && actionNames[k] != "" {
		return actionNames[k]
	}
	return fmt.Sprintf("action(%d)", uint8(k))
}

// MarshalText writes the action's name.
func (k ActionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads an action's name.
func (k *ActionKind) UnmarshalText(b []byte) error {
	return unmarshalName(k, actionNames[:], "action", b)
}

// OneShot reports whether the action runs on the action goroutine (true) or
// sets a state at once (false).
func (k ActionKind) OneShot() bool { return k >= ActSyncNow && k <= ActCompact }

// Action is one decision of the policy.
type Action struct {
	Kind ActionKind
	// Resource is the resource the action relieves (evict: disk, release
	// memory: memory).
	Resource Resource
	// Bytes is the amount to free (evict, release memory).
	Bytes int64
	// Reason is the refusal reason (refuse writes).
	Reason string
	// On switches high compression.
	On bool
	// Interval is the sync interval to set.
	Interval time.Duration
}

func (a Action) String() string {
	switch a.Kind {
	case ActEvict, ActReleaseMemory:
		return fmt.Sprintf("%s(%s)", a.Kind, formatBytes(a.Bytes))
	case ActHighCompression:
		return fmt.Sprintf("%s(%t)", a.Kind, a.On)
	case ActSetSyncInterval:
		return fmt.Sprintf("%s(%s)", a.Kind, a.Interval)
	}
	return a.Kind.String()
}
