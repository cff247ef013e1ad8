package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Store is a Pebble-backed CRDT key-value store. All methods are safe for
// concurrent use.
type Store struct {
	opts    Options
	log     *slog.Logger
	db      *pebble.DB
	node    string
	actor   string         // names this directory's writes in dots and stamps (actor.go)
	retired []retiredActor // this directory's earlier actors (Options.NewActor); fixed after Open
	role    crdt.Role
	hlc     *crdt.HLC
	cache   *hotCache[*cached]
	metrics *metrics

	// dbMu guards the Pebble handle against Close: every call that touches
	// Pebble (including a writer waiting for its fsync) holds it shared;
	// Close takes it exclusively. Pebble panics on use after Close.
	dbMu   sync.RWMutex
	closed atomic.Bool

	// qmu guards the queue of writers waiting to be combined (write.go).
	qmu     sync.Mutex
	queue   []*pendingWrite
	leading bool

	// wmu serialises mutations of replicated state: it orders dots, op
	// sequence numbers and HLC stamps with the WAL, so WAL order is op
	// order (the durable watermark relies on it).
	wmu     sync.Mutex
	counter uint64        // last dot counter issued by this node
	seq     uint64        // last op log sequence number
	live    int64         // live keys (not Deleted; expired until swept)
	ctx     *crdt.Context // every dot this replica has seen
	codec   *valueCodec
	// highCodec is the strongest compression, used while the resource
	// monitor asks for it (highCompression).
	highCodec       *valueCodec
	highCompression atomic.Bool
	entBuf          []byte // scratch: encoded entry
	deltaBuf        []byte // scratch: encoded delta
	stateBuf        []byte // scratch: state record
	recBuf          []byte // scratch: record
	keyBuf          []byte // scratch: pebble key
	nConfl          int    // stored conflict records

	lastSeq   atomic.Uint64 // == seq, readable without wmu
	liveKeys  atomic.Int64  // == live
	applied   atomic.Uint64 // highest seq written to the WAL
	durable   atomic.Uint64 // highest seq known fsynced
	pruned    atomic.Uint64 // op log pruned up to this seq
	synced    atomic.Uint64 // ops <= this are acknowledged upstream
	walErr    atomic.Pointer[error]
	refusal   atomic.Pointer[string]
	diskUsage atomic.Uint64
	usageAt   atomic.Int64 // unix nanos of the last on-demand DiskUsage
	inflight  atomic.Int64 // local writes waiting for their commit
	unsynced  atomic.Bool  // a broker record may be unsynced: SyncWAL must fsync

	notifyMu sync.Mutex
	notifyCh chan struct{} // closed when durable advances; nil if nobody waits

	seriesMu sync.Mutex
	sensors  map[string]*sensorState

	stop chan struct{}
	wg   sync.WaitGroup
}

// cached is a decoded entry in the hot cache.
type cached struct {
	e    *crdt.Entry
	seq  uint64 // local op seq of the last change (0: before any op)
	size int    // stored record size (compressed)
	raw  int    // encoded entry size (what MaxEntrySize bounds)
	live bool   // entryLive(e) as of the last stage (writers only)
	exp  int64  // e.ExpireAt() as of the last stage
}

func (c *cached) cost(key string) int64 {
	// A decoded entry is roughly twice its encoding, plus the node, map
	// slot and key.
	return int64(2*c.size + len(key) + 160)
}

// Open opens (creating if needed) the store in opts.Dir/store and recovers
// its state after a crash: Pebble replays its WAL, then the store reloads
// its counter, HLC high-water mark, context and sensor registry.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:      opts,
		log:       opts.Logger.With("component", "store"),
		node:      opts.NodeID,
		role:      opts.Role,
		hlc:       crdt.NewHLC(opts.Clock, opts.MaxClockSkew),
		cache:     newHotCache[*cached](opts.CacheSize),
		codec:     newValueCodec(opts.CompressionLevel),
		highCodec: newValueCodec(maxCompressionLevel),
		ctx:       crdt.NewContext(),
		sensors:   make(map[string]*sensorState),
		stop:      make(chan struct{}),
	}
	// Pebble creates the directory and fsyncs every parent it created: a
	// new data directory whose entry is not durable in its parent loses
	// every synced write in it on power loss.
	path := opts.FS.PathJoin(opts.Dir, "store")
	po := pebbleOptions(&s.opts, &s.inflight)
	walDirs(opts.FS, path, opts.WALDir, po)
	db, err := pebble.Open(path, po)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.db = db
	if err := recordWALDir(opts.FS, path, opts.WALDir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: record the WAL directory: %w", err)
	}
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.metrics = newMetrics(s, opts.Registerer)
	s.refreshDiskUsage()
	s.wg.Add(1)
	go s.background()
	s.log.Info("store opened", "dir", path, "node", s.node, "actor", s.actor, "role", s.role,
		"seq", s.seq, "counter", s.counter, "keys", s.live, "durability", opts.Durability.String())
	return s, nil
}

// Close stops the background work, persists the metadata, fsyncs and
// closes Pebble. It waits for in-flight calls; calls made after it return
// ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var errs []error
	if s.walErr.Load() == nil {
		b := s.db.NewBatch()
		s.putState(b)
		s.putContext(b)
		s.flushSensors(b)
		if err := b.Commit(pebble.Sync); err != nil {
			errs = append(errs, fmt.Errorf("store: persist metadata: %w", err))
		}
		_ = b.Close()
	}
	if s.metrics != nil {
		s.metrics.unregister()
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close pebble: %w", err))
	}
	s.wakeWaiters()
	return errors.Join(errs...)
}

// enter guards a call that touches Pebble; leave must follow.
func (s *Store) enter() error {
	s.dbMu.RLock()
	if s.closed.Load() {
		s.dbMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.dbMu.RUnlock() }

// checkRead reports why a read cannot proceed.
func (s *Store) checkRead(ctx context.Context) error {
	return ctx.Err()
}

// checkWrite reports why a write cannot proceed. grows says the write may
// add data: such writes are refused while SetRefuseWrites is in force and
// when the storage limit is reached; deletions always proceed.
func (s *Store) checkWrite(ctx context.Context, grows bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p := s.walErr.Load(); p != nil {
		return *p
	}
	if !grows {
		return nil
	}
	if r := s.refusal.Load(); r != nil {
		return fmt.Errorf("%w: %s", ErrWritesRefused, *r)
	}
	if lim := s.opts.StorageLimit; lim > 0 && s.diskUsage.Load() >= uint64(lim) {
		return fmt.Errorf("%w: %d of %d bytes used", ErrStorageFull, s.diskUsage.Load(), lim)
	}
	return nil
}

// SetRefuseWrites makes writes that could grow the store fail with
// ErrWritesRefused and reason (the resource monitor's Critical level).
// Deletions, expiry, remote applies and reads continue. An empty reason
// lifts the refusal.
func (s *Store) SetRefuseWrites(reason string) {
	if reason == "" {
		if s.refusal.Swap(nil) != nil {
			s.log.Info("writes accepted again")
		}
		return
	}
	if s.refusal.Swap(&reason) == nil {
		s.log.Warn("refusing writes", "reason", reason)
	}
}

// NodeID returns this replica's node id.
func (s *Store) NodeID() string { return s.node }

// Role returns this replica's role.
func (s *Store) Role() crdt.Role { return s.role }

// Now returns a fresh HLC timestamp from the store's clock.
func (s *Store) Now() crdt.Timestamp { return s.hlc.Now() }

// DBSize returns the number of keys, counting expired keys the sweeper has
// not deleted yet (as Redis does).
func (s *Store) DBSize(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.liveKeys.Load(), nil
}
