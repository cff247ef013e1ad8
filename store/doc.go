// Package store is Ferrite Edge's local state: a CRDT key-value store on
// Pebble v2. Every write lands here first, survives power loss under the
// configured durability policy, and feeds the syncer through the op log.
//
// # Layout
//
// One Pebble database lives in <data_dir>/store. Every Pebble key starts
// with a one-byte prefix naming its keyspace:
//
//	d<key>                         data: the key's compact-encoded crdt.Entry
//	m<name>                        metadata: format, node, actor, state,
//	                               context, pruned, synced
//	o<be64 seq>                    op log (also the sync journal)
//	t<be64 expireAt ms><key>       TTL index, ordered by expiry
//	s r<uvarint len><id><be64 i>   sensor series: raw readings ring (local)
//	s i<id>                        sensor registry (local)
//	c<16-byte id>                  conflicts table
//	r<16-byte id>                  conflicts cleared in the last hour
//	x<name>                        syncer state (opaque to the store)
//	b<key>                         broker records: retained messages, persistent
//	                               sessions (opaque to the store)
//
// A data record is uvarint(seq of the op that last changed the key) followed
// by the compact value (see value.go) of the encoded entry: inline with a
// one-byte header up to 23 bytes, LZ4-compressed from 64 bytes when the
// preset enables compression and the result is smaller. The seq lets Evict
// know whether a key's changes reached the hub.
//
// # Writes
//
// A local mutation, under the store's write mutex: assign a dot (this data
// directory's actor, counter+1; actor.go), an HLC stamp and a seq; load the entry (hot cache or Pebble);
// build the crdt delta; apply it; write the new record, the op
// {seq, dot, stamp, key, delta}, the TTL index change and the replica state
// (counter, HLC high-water, seq, live keys) in one batch; commit it with
// ApplyNoSyncWait; release the mutex; wait for the fsync (durability
// "always"). Concurrent writers are combined: the first queued writer leads,
// stages every queued write into one batch and commits it, so a group
// shares one mutex handoff, one commit and one fsync (group commit). While
// many writers wait on fsyncs, the next fsync is delayed a little (2 µs per
// writer in flight, at most 64 µs; never for fewer than 4 writers) so it
// covers more of them. Policies: always (default), interval (a background
// fsync every SyncInterval), none. Flushed and compacted sstables end at
// keyspace boundaries (a Pebble span policy), so the append-only op log is
// not rewritten by compactions of the randomly overwritten data keys.
//
// The durable watermark (DurableSeq) is the highest seq known fsynced; the
// syncer reads only ops at or below it (OpsSince), because an op a crash
// can still erase could come back with the same dot and different content.
// After a failed fsync the store refuses writes until reopened.
//
// # Reads
//
// Reads see the hot-entry cache (decoded entries, LRU, bounded in bytes)
// or Pebble, and pass the current time to the entry's views: an expired key
// is invisible at once. A read may observe a write whose fsync is still in
// flight (as in Pebble); its writer is acknowledged only after the fsync.
//
// # Replication
//
// ApplyRemote applies peers' ops idempotently (dots already in the context
// are skipped), stores the conflicts the joins report, logs the ops under
// new local seqs for relaying, and fsyncs before returning. ExportState,
// MergeState and FinishMergeState exchange full state. The context is one
// crdt.Context per replica; the actor's own dots are 1..counter and are not
// rewritten on every local write. Each data directory writes under its own
// actor, node$incarnation (actor.go), so a node whose data directory was
// lost never reuses a dot its peers hold.
//
// # TTL, limits, eviction
//
// The sweeper deletes expired keys (bounded work per tick) with ordinary
// replicated deletes. MaxKeys, MaxKeySize, MaxValueSize and MaxEntrySize
// give clear errors; StorageLimit (Pebble's disk usage) and
// SetRefuseWrites refuse writes that could grow the store while deletes
// still work. Pebble's block cache and memtables and the hot cache are
// sized from MemoryLimit. Evict drops raw readings already aggregated and
// acknowledged upstream, then deletes (replicated, as Redis propagates
// evictions) least recently used keys with a TTL whose changes are
// acknowledged upstream; never data not yet synced.
//
// # Decisions beyond docs/DESIGN.md
//
//   - Deleted keys keep a small tombstone entry (a Deleted head): dropping
//     it would let a concurrent older write win on this replica and lose on
//     the others. They do not count as keys. Garbage-collecting tombstones
//     once causally stable is future work.
//   - State merged by FullSync produces no ops, so a hub does not relay it to
//     other edges; they converge on their own next FullSync.
//   - Remote ops are applied whatever the local limits (convergence first);
//     an op whose HLC is beyond MaxClockSkew is applied but its clock is not
//     adopted.
//   - Every local write is one op per key (HSET of several fields included);
//     a write that changes nothing (DEL of a missing key, SREM of absent
//     members) writes nothing and uses no dot.
//   - OpsSince takes an OpsQuery (After, Limit, MaxBytes, Origin, Filter)
//     and returns the cursor to resume from; MergeState takes the chunk's
//     lower bound (after) instead of a set of seen keys, so a FullSync of a
//     large store never holds the peer's key set in memory.
//   - Evicting a key is a replicated delete (see above), and only keys with
//     a TTL are evictable.
//   - The hot cache gets MemoryLimit/16 by default (DESIGN: unspecified);
//     LZ4 levels mean what they mean to the lz4 tool (level n of LZ4-HC
//     tries 2^(n-1) matches).
//   - SetSyncState (opaque records under x) is always fsynced.
//   - Broker records (b) are written without an fsync; SyncWAL makes the
//     ones written before it durable under every durability policy (the
//     node relies on it for a forgotten sensor's Home Assistant entity).
//   - ForgetSensor deletes a sensor's ring and registry record and writes
//     the caller's x records in the same fsynced batch (ingest drops the
//     sensor's checkpoint there): a crash cannot keep one without the
//     other. Its replicated aggregate keys are not touched.
package store
