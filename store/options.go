package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/prometheus/client_golang/prometheus"
)

// Durability says when a write is fsynced relative to its acknowledgement.
type Durability int

const (
	// DurabilityAlways fsyncs the WAL before a write returns. Concurrent
	// writers share one fsync (group commit). The zero value: a lost
	// acknowledged write is the worst failure a gateway can have.
	DurabilityAlways Durability = iota
	// DurabilityInterval fsyncs the WAL every Options.SyncInterval; a crash
	// loses at most that much acknowledged data.
	DurabilityInterval
	// DurabilityNone never fsyncs explicitly (the OS writes back when it
	// likes; memtable flushes and Close still sync).
	DurabilityNone
)

func (d Durability) String() string {
	switch d {
	case DurabilityAlways:
		return "always"
	case DurabilityInterval:
		return "interval"
	case DurabilityNone:
		return "none"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// ParseDurability parses "always", "interval" or "none".
func ParseDurability(s string) (Durability, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "always", "":
		return DurabilityAlways, nil
	case "interval":
		return DurabilityInterval, nil
	case "none":
		return DurabilityNone, nil
	}
	return 0, fmt.Errorf("%w: durability %q (want always, interval or none)", ErrInvalidOptions, s)
}

// Preset is one of the feature document's device classes.
type Preset struct {
	Name             string
	MemoryLimit      int64
	MaxKeys          int64
	CompressionLevel int // 0: off
}

// Presets lists the device classes of the feature document ("Compact
// Storage"), smallest first.
var Presets = []Preset{
	{Name: "minimal", MemoryLimit: 4 << 20, MaxKeys: 10_000, CompressionLevel: 0},
	{Name: "iot", MemoryLimit: 2 << 20, MaxKeys: 1_000, CompressionLevel: 9},
	{Name: "mobile", MemoryLimit: 32 << 20, MaxKeys: 50_000, CompressionLevel: 6},
	{Name: "standard", MemoryLimit: 16 << 20, MaxKeys: 100_000, CompressionLevel: 0},
	{Name: "full", MemoryLimit: 64 << 20, MaxKeys: 1_000_000, CompressionLevel: 3},
}

// LookupPreset returns the preset called name.
func LookupPreset(name string) (Preset, bool) {
	for _, p := range Presets {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Preset{}, false
}

// ApplyPreset sets MemoryLimit, MaxKeys and CompressionLevel from a preset.
func (o *Options) ApplyPreset(p Preset) {
	o.MemoryLimit = p.MemoryLimit
	o.MaxKeys = p.MaxKeys
	o.CompressionLevel = p.CompressionLevel
}

// Options configure a Store. Zero values are replaced by EnsureDefaults;
// Validate reports every remaining problem at once.
type Options struct {
	// NodeID is this replica's node id. A data directory is bound to the
	// node id that created it. It must not contain '$' (see Actor).
	NodeID string
	// Actor names this data directory's writes in dots and stamps. Empty
	// (the default): a new data directory draws a fresh one, NodeID + "$"
	// + 8 random base32 letters (NewActor), and an existing one keeps the
	// actor it was created with (NodeID itself for directories created
	// before actors existed). A node whose data directory is lost starts
	// its new one under a new actor, so its new writes never reuse the
	// dots its peers already hold from the old one. Set it only to pin the
	// name (it must then match the directory's).
	Actor string
	// NewActor retires an existing data directory's actor and writes under
	// a new one from now on: for a directory restored from a backup, whose
	// actor's later writes its peers already hold (see actor.go). Its ops
	// still in the op log stay its own (OwnDot) and are still sent. Use
	// it once per restore, at the first start after it: every use adds an
	// actor to every replica's causal context.
	NewActor bool
	// Role is RoleEdge (default) or RoleHub. It orders CloudWins/EdgeWins.
	Role crdt.Role
	// Dir is the node's data directory; the database lives in Dir/store.
	Dir string
	// FS is the filesystem (default vfs.Default). Tests pass vfs.NewMem or
	// vfs.NewCrashableMem.
	FS vfs.FS

	// NoUpstream says this replica has no hub to sync with (an edge without
	// a hub URL): nothing waits for an acknowledgement, so eviction treats
	// every change as synced, as it does on a hub. Otherwise data the hub
	// has not acknowledged is never evicted.
	NoUpstream bool

	// WALDir is where Pebble's write-ahead log lives (default: inside
	// Dir/store). Every write, and so every op of the offline queue, is made
	// durable there first; it may be another device. It can change between
	// opens: the previous directory is remembered and recovered from.
	WALDir string

	// Durability is the fsync policy of local writes. Remote applies and
	// metadata changes are always fsynced.
	Durability Durability
	// SyncInterval is the fsync period under DurabilityInterval (default 100ms).
	SyncInterval time.Duration

	// MemoryLimit is the store's memory budget in bytes; Pebble's block
	// cache, memtables and the hot-entry cache are sized from it (default
	// 16 MiB, the standard preset).
	MemoryLimit int64
	// CacheSize overrides the hot-entry cache budget (default MemoryLimit/16).
	CacheSize int64
	// StorageLimit is the disk budget in bytes (0: unlimited). Above it,
	// writes that could grow the store fail with ErrStorageFull.
	StorageLimit int64
	// MaxKeys bounds the number of live keys (0: unlimited).
	MaxKeys int64
	// MaxKeySize bounds a key in bytes (default 1 KiB).
	MaxKeySize int
	// MaxValueSize bounds a value, hash field or set member (default 1 MiB).
	MaxValueSize int
	// MaxEntrySize bounds the encoded state of one key, for example a list
	// (default 16 MiB). Every write rewrites its key's whole entry.
	MaxEntrySize int
	// CompressionLevel is the LZ4 level for stored entries of 64 bytes or
	// more: 0 off, 1 fast, 2..9 LZ4-HC.
	CompressionLevel int

	// Resolver picks the conflict strategy of each key. It must be the same
	// on every replica.
	Resolver crdt.Resolver
	// MaxClockSkew is how far ahead of the local clock a remote HLC may be
	// before it is refused as the new clock (default 1 minute).
	MaxClockSkew time.Duration
	// Clock returns the wall time in unix milliseconds (default time.Now).
	Clock func() int64

	// SweepInterval is the period of the TTL sweeper (default 1s; negative
	// disables the background sweeper: expired keys stay invisible and
	// SweepExpired deletes them).
	SweepInterval time.Duration
	// SweepBatch bounds the expired keys deleted per sweep (default 256).
	SweepBatch int
	// MaxReadingsPerSensor is the ring size of each sensor's raw series
	// (default 1000).
	MaxReadingsPerSensor int
	// MaxSensors bounds the sensor registry (default 10000).
	MaxSensors int
	// MaxConflicts bounds the stored conflict records (default 10000);
	// beyond it new conflicts are counted but not stored.
	MaxConflicts int

	// Logger receives the store's logs (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives the store's metrics (default: none registered).
	Registerer prometheus.Registerer
}

// Defaults.
const (
	DefaultSyncInterval         = 100 * time.Millisecond
	DefaultMemoryLimit          = 16 << 20
	DefaultMaxKeySize           = 1 << 10
	DefaultMaxValueSize         = 1 << 20
	DefaultMaxEntrySize         = 16 << 20
	DefaultMaxClockSkew         = time.Minute
	DefaultSweepInterval        = time.Second
	DefaultSweepBatch           = 256
	DefaultMaxReadingsPerSensor = 1000
	DefaultMaxSensors           = 10_000
	DefaultMaxConflicts         = 10_000

	minMemoryLimit = 1 << 20
)

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.CacheSize == 0 {
		o.CacheSize = o.MemoryLimit / 16
	}
	if o.MaxKeySize == 0 {
		o.MaxKeySize = DefaultMaxKeySize
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.MaxEntrySize == 0 {
		o.MaxEntrySize = DefaultMaxEntrySize
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.Clock == nil {
		o.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.SweepBatch == 0 {
		o.SweepBatch = DefaultSweepBatch
	}
	if o.MaxReadingsPerSensor == 0 {
		o.MaxReadingsPerSensor = DefaultMaxReadingsPerSensor
	}
	if o.MaxSensors == 0 {
		o.MaxSensors = DefaultMaxSensors
	}
	if o.MaxConflicts == 0 {
		o.MaxConflicts = DefaultMaxConflicts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports every problem with the options, joined, each wrapping
// ErrInvalidOptions. Call EnsureDefaults first.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	switch {
	case o.NodeID == "":
		bad("NodeID is empty")
	case len(o.NodeID) > MaxNodeID:
		bad("NodeID is %d bytes (max %d)", len(o.NodeID), MaxNodeID)
	case strings.Contains(o.NodeID, actorSep):
		bad("NodeID %q contains %q (it separates the node id from the incarnation in actor names)", o.NodeID, actorSep)
	}
	if o.NewActor && o.Actor != "" {
		bad("NewActor and Actor %q exclude each other", o.Actor)
	}
	if o.Actor != "" && o.Actor != o.NodeID && ActorNode(o.Actor) != o.NodeID {
		bad("Actor %q is not NodeID %q or NodeID$<incarnation>", o.Actor, o.NodeID)
	} else if len(o.Actor) > maxOpNode {
		bad("Actor is %d bytes (max %d)", len(o.Actor), maxOpNode)
	}
	if o.Role != crdt.RoleEdge && o.Role != crdt.RoleHub {
		bad("Role %v is neither edge nor hub", o.Role)
	}
	if o.Dir == "" {
		bad("Dir is empty")
	}
	switch o.Durability {
	case DurabilityAlways, DurabilityNone:
	case DurabilityInterval:
		if o.SyncInterval <= 0 {
			bad("SyncInterval %v must be positive", o.SyncInterval)
		}
	default:
		bad("unknown durability %v", o.Durability)
	}
	if o.MemoryLimit < minMemoryLimit {
		bad("MemoryLimit %d is below %d bytes", o.MemoryLimit, minMemoryLimit)
	}
	if o.CacheSize < 0 || o.CacheSize > o.MemoryLimit {
		bad("CacheSize %d must be between 0 and MemoryLimit", o.CacheSize)
	}
	if o.StorageLimit < 0 {
		bad("StorageLimit %d is negative", o.StorageLimit)
	}
	if o.MaxKeys < 0 {
		bad("MaxKeys %d is negative", o.MaxKeys)
	}
	if o.MaxKeySize < 1 || o.MaxKeySize > 64<<10 {
		bad("MaxKeySize %d must be between 1 and 65536", o.MaxKeySize)
	}
	if o.MaxValueSize < 1 || o.MaxValueSize > 512<<20 {
		bad("MaxValueSize %d must be between 1 and 512 MiB", o.MaxValueSize)
	}
	if o.MaxEntrySize < o.MaxValueSize || o.MaxEntrySize > 1<<30 {
		bad("MaxEntrySize %d must be between MaxValueSize and 1 GiB", o.MaxEntrySize)
	}
	if o.CompressionLevel < 0 || o.CompressionLevel > 9 {
		bad("CompressionLevel %d must be between 0 and 9", o.CompressionLevel)
	}
	if o.MaxClockSkew < 0 {
		bad("MaxClockSkew %v is negative", o.MaxClockSkew)
	}
	if o.SweepBatch < 1 {
		bad("SweepBatch %d must be positive", o.SweepBatch)
	}
	if o.MaxReadingsPerSensor < 1 {
		bad("MaxReadingsPerSensor %d must be positive", o.MaxReadingsPerSensor)
	}
	if o.MaxSensors < 1 {
		bad("MaxSensors %d must be positive", o.MaxSensors)
	}
	if err := o.Resolver.Validate(); err != nil {
		bad("%v", err)
	}
	if o.MaxConflicts < 1 {
		bad("MaxConflicts %d must be positive", o.MaxConflicts)
	}
	return errors.Join(errs...)
}
