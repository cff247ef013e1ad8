// Package crdt is Ferrite Edge's replicated data model: hybrid logical
// clocks, dots, version vectors and causal contexts, the four conflict
// strategies, and the per-key CRDT (Entry) with its deltas and binary
// encoding. Two replicas that have seen the same updates, in any order and
// any number of times, hold the same bytes.
//
// The package is pure: no I/O, no goroutines, no wall clock (clocks are
// injected), so every rule here is tested deterministically. The design
// contract is docs/DESIGN.md, section "crdt — the data model"; the
// decisions that refine it are listed at the end of this comment.
//
// # Clocks
//
// A Timestamp is a hybrid logical clock reading packed in a uint64: Unix
// milliseconds in the high 48 bits, a logical counter in the low 16.
// HLC.Now never goes backwards and stays close to the wall clock;
// HLC.Update(remote) moves the clock past a timestamp received from another
// node, unless that timestamp is more than the configured maximum skew ahead
// of the local wall clock: then it returns ErrClockSkew and adopts nothing,
// so one node with a broken clock cannot drag every other node into the
// future (its writes are still applied; the caller decides). HLC.Last is the
// high-water mark to persist; HLC.Restore guarantees later readings are
// greater after a restart, even if the wall clock went backwards.
//
// # Dots, version vectors, contexts
//
// Every local mutation gets a Dot: the node id and that node's next
// counter (1, 2, 3...). Node ids are gateways and hubs, never sensors, so
// vectors stay small. A VersionVector maps node ids to counters; Compare
// says Before, After, Equal or Concurrent (Equal is not Concurrent). A
// Context is a causal context: a version vector plus a "cloud" of dots seen
// out of order, compacted back into the vector when the gaps fill. A replica
// keeps one Context for all its keys: every dot it has seen, whether its
// data is alive or was removed. A dot that is in the Context but tags
// nothing in the replica's state is known to be removed; that is how
// removals replicate without per-element tombstones.
//
// Important for the store and the syncer: the Context may contain a dot
// whose operation was never applied, because a later delta that removed
// that operation's data covered its dot. The operation's own removals are
// still needed. So a remote op must be skipped only if it was itself
// applied (keep a second Context of applied op dots), and the vector that
// tells a peer which ops to send must be that applied set, not the causal
// Context. Skipping by the causal Context loses removals (a deleted value
// comes back on one replica); TestConvergenceByDeltas fails that way.
//
// # Stamps and strategies
//
// A Stamp is who wrote when: (HLC timestamp, node id, role). A Strategy is
// a total order on stamps, computed identically on every replica, used to
// pick the winner among writes that did not see each other:
//
//   - LastWriteWins: later timestamp wins; equal timestamps, greater node
//     id. Every write is an overwrite of the whole key: INCR computes the
//     new total locally, so two concurrent INCRs from 5 give 6; concurrent
//     pushes keep only the winner's list. The loser is a conflict.
//   - CrdtMerge: concurrent updates merge. Counters add (no increment is
//     lost or counted twice), sets are add-wins, concurrent pushes are all
//     kept in a deterministic order, hashes merge field by field (HINCRBY
//     adds, HSET versus HSET of one field is last-writer-wins with a
//     conflict). Concurrent overwrites (SET, DEL, a type change) are
//     resolved last-writer-wins and reported as conflicts. An overwrite wins
//     over updates made concurrently to the value it replaced: DEL
//     concurrent with INCR deletes the counter, and that increment is
//     dropped (without a conflict record: the delete's intent wins).
//     The TTL sweeper's delete of an expired key (DeleteExpired) is
//     stamped just after the key's latest write, not when the sweep runs,
//     so a write made concurrently with the expiry wins over it; updates
//     of the expired value itself (EXPIRE, SADD, ...) made concurrently are
//     still dropped.
//   - CloudWins: as LastWriteWins, but a hub's write beats an edge's
//     concurrent write whatever the clocks.
//   - EdgeWins: as LastWriteWins, but an edge's write beats a hub's
//     concurrent write whatever the clocks.
//
// Under every strategy a write that saw another write simply replaces it:
// strategies only decide between concurrent writes. Aggregates (sensor
// buckets) always merge per origin, whatever the strategy. A Resolver picks
// a key's strategy by the longest matching key prefix; every replica must
// use the same one (compare Resolver.Digest).
//
// # Entries
//
// Each key's state is an Entry, a causal delta-state CRDT (Almeida et al.,
// "Delta State Replicated Data Types"). It has heads and payloads.
//
// Heads (an LWWRegister) are the key's incarnations. An overwrite creates a
// new head and removes every head and element it observed. Writes that did
// not see each other leave several heads; the winner is the greatest under
// the strategy. Heads written under CrdtMerge for a counter or collection
// carry no value: their data lives in elements. Two such heads of the same
// kind are one incarnation (two edges that SADD to a new key concurrently
// get the union). Any other loser is discarded and reported once as a
// Conflict. Losers are kept in the state until a later write observes and
// removes them; they are not pruned, because with CloudWins and EdgeWins a
// causally later write can rank below a loser, and pruning would then make
// replicas diverge.
//
// Payloads hold the elements tagged with a head: its TTL writes and, for a
// head that carries elements, its building block:
//
//   - PNCounter: per origin node a pair (P, N) of growing totals; merge is
//     the pointwise maximum; value ΣP − ΣN; overflow is ErrOverflow, never
//     a wrap.
//   - ORSet: add-wins observed-remove set; each member carries the dots of
//     the additions that added it; SREM covers the dots it saw.
//   - List: items (dot, stamp, side, index within the push, value) in a
//     fixed order: head-side items newest push first, then tail-side items
//     oldest push first. On one replica LPUSH/RPUSH/LRANGE/LTRIM behave
//     exactly like Redis; concurrent pushes are all kept. LTRIM removes the
//     items it saw outside its range; items pushed concurrently survive, so
//     a capped list may briefly exceed its cap until the next trim.
//   - ORMap (hash): each field is a slot with its own heads (String,
//     Counter, Deleted) and per counter head a PNCounter. HDEL writes a
//     Deleted head, so HDEL versus a concurrent HSET is resolved by the
//     strategy. Deleted field heads remain until the field is written again
//     or the key is overwritten.
//   - Aggregate: per origin node a Partial (count, sum, min, max, first and
//     last time) with a Version; a higher version replaces a lower one;
//     the total combines the origins. A duplicated delta never counts twice.
//   - TTL: an expiry time written by SET ... PXAT or PEXPIREAT, tagged with
//     the incarnation it applies to (concurrent TTL writes: greatest stamp
//     wins). SET without KEEPTTL starts a new incarnation without a TTL;
//     collection updates keep it. A key is invisible from its expiry time
//     on (views take now); the store's sweeper then writes a DEL.
//
// When a head is removed its payload is an orphan and is pruned: a removed
// dot never comes back. A key whose winner is Deleted, whose TTL passed, or
// whose collection is empty does not exist (Kind returns KindNone).
//
// # Mutators, deltas and joins
//
// Mutators (Set, Delete, Expire, IncrBy, HSet, HSetMulti, HDel, HIncrBy,
// LPush, RPush, LTrim, SAdd, SRem, AggregateAdd) take a Mut (dot, stamp,
// strategy, wall time) and return a *Delta without modifying the entry; a
// nil delta means "nothing to write" (the dot can be reused). A Delta is an
// Entry fragment plus Ctx, the dots it covers: its own dot and every dot it
// removes. A delta never covers a dot without carrying everything still
// alive under it (one mutation's dot may tag several members, items or
// fields and the head it created), and it carries the heads its elements
// hang from, so deltas can be applied in any order, any number of times.
//
// ApplyDelta and MergeState are the causal join: a local element survives
// if the other side holds it or never saw its dot; a remote element is added
// if the local replica never saw its dot; counters, partials and other
// non-dotted parts join by their own lattices; then heads are resolved and
// orphans pruned. The join is commutative, associative and idempotent, and
// applying a mutator's delta to any replica that has seen the mutated state
// equals merging that state (tested with random histories in laws_test.go,
// per building block in types_test.go, against a sequential model in
// model_test.go, and with readable scenarios in testdata/scenarios).
//
// # Encoding
//
// Entry, Delta, Context, VersionVector, Timestamp, Conflict and each
// building block have a versioned, deterministic binary encoding
// (AppendBinary, Decode*): a format byte, uvarints, node ids interned once
// per value so a dot costs about two bytes plus its counter. A register or
// counter delta is 30-45 bytes. Decoders are strict: they accept only the
// canonical encoding of a valid value (sorted, minimal, no unused table
// entries), return ErrCorrupt for anything else, never panic, and never size
// an allocation from unchecked input; decoding and re-encoding gives back
// the input byte for byte. testdata/golden holds fixed encodings so a format
// change is noticed.
//
// # Decisions refining docs/DESIGN.md
//
//   - Skip remote ops by an applied-ops set, not by the causal Context (see
//     above).
//   - Discarded heads are never pruned (see Entries).
//   - Every mutator returns (*Delta, error); a nil delta is a no-op.
//     HSetMulti is HSET with several fields; Expire(m, 0) is PERSIST.
//   - Kind(now) returns KindNone for a missing, deleted, expired or empty
//     key; KindDeleted only appears in heads. Views other than Kind and
//     ExpireAt ignore expiry: check Kind(now) first.
//   - Views resolve with the strategy of the last join (Entry.Strategy);
//     mutators resolve with Mut.Strategy.
//   - A TTL write is a dotted register per incarnation: an overwrite
//     concurrent with PEXPIREAT wins over it.
//   - A conflict is reported once, when its loser is first discarded
//     (Conflict.HashField marks hash-field conflicts); its ID is a hash of
//     (key, field, winner dot, loser dot). Element-carrying heads in a
//     conflict have an empty Value (their Kind says what they were).
//   - AggregateAdd takes the origin's whole partial; Version 0 means "the
//     current version plus one", a version that is not newer is ErrStale.
//   - The zero Strategy is LastWriteWins ("lww"), as in the section
//     "Stamps and strategies"; which strategy a deployment uses by default
//     is configuration.
//   - Deleted heads (and Deleted hash-field heads) stay in the state until
//     overwritten: dropping them needs causal stability (knowing every
//     replica has seen them), which this package does not track.
package crdt
