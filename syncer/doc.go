// Package syncer replicates the CRDT store between edges and a hub over
// MQTT: the edge's offline queue, the sync protocol (docs/PROTOCOL.md),
// the edge client and the hub. Two edges and a hub, as separate processes
// over a real broker, converge after any sequence of outages; nothing
// acknowledged is lost and nothing is applied twice.
//
// # Shape
//
// As in etcd/raft, the decisions are a pure core and the I/O is a thin
// driver:
//
//   - codec.go, messages*.go: the versioned binary envelope (Hello,
//     Welcome, DeltaSync, FullSync, Ack, ConflictReport), LZ4 above a
//     threshold, strict canonical decoding (garbage is an error, never a
//     panic; FuzzDecode), a golden table shared with docs/PROTOCOL.md.
//   - core_edge.go (edgeCore) and core_hub.go (hubEdge): deterministic
//     state machines, no I/O, no goroutines, no wall clock. Inputs are
//     method calls carrying the time; outputs are actions (send, read ops,
//     apply, persist, prune, export, stage, merge...) the driver executes,
//     feeding results back. Scripts in testdata/edge and testdata/hub
//     drive them (run with -rewrite to regenerate after a deliberate
//     change).
//   - edge.go, edge_exec.go: Edge, one goroutine owning the core, the
//     paho link (transport.go), the queue index and the exporter/stager
//     of full-state transfers (fullsync.go).
//   - hub.go, hub_session.go: Hub, one goroutine per edge session (edges
//     never wait for each other; their applies share the store's group
//     commit), the broker link, the op-log retention (hub_log.go), the
//     newest ops decoded once for every session's down reads
//     (hub_tail.go), and each session's filter of what its edge already
//     has (hub_filter.go). fleet_test.go and BenchmarkFleet run a hub
//     with 20 to 100 edges.
//
// # The offline queue is the op log
//
// An edge's pending changes are its own ops in the store's op log above
// the seq the hub acknowledged (up_acked): durable by construction, read
// in batches, pruned when acknowledged. queue.go keeps an exact in-memory
// index (seq, size, time) for EDGE.QUEUE and for overflow: beyond
// QueueCapacity the oldest ops are dropped (to 90% of it), counted,
// logged, and the edge marks itself as needing a FullSync — written
// durably before the op log is pruned — so the hub converges on state
// (history is lost, state is not). An edge without a hub URL keeps no
// queue at all: its ops are pruned once durable, and the need for a
// FullSync is marked in the same way for a hub configured later. The
// syncer state (cursors, flags) lives
// in the store's x keyspace (state.go); cursors are written lazily because
// a stale cursor only causes a resend that the receiver skips.
//
// # Restart safety
//
// Every ack follows a durable commit (ApplyRemote fsyncs; staged chunks
// and merges are durable), every resend is skipped by dot, every cursor
// is re-established at Hello from the side that owns it (the edge's
// up_acked and down_seq, the hub's incarnation and context). kill -9 of
// either side at any point loses nothing acknowledged and applies nothing
// twice (crash_test.go kills an edge mid-sync and the hub mid-apply in
// child processes and checks counters); the hub's state generation is
// persisted before a merge so a crash mid-merge still sends the other
// edges full state.
//
// # Wiring (for the root package)
//
// Stop the syncer (cancel Run's ctx, wait for Run) before closing the
// store, then call Close to unregister the metrics. Commands(e) and
// ConflictsCommand(st) are the command specs; Edge.StatusFields and
// Hub.StatusFields feed EDGE.STATUS; Edge implements the resource
// monitor's SyncNow/SetInterval, and LinkStats has the fields of its link
// figures.
//
// # Decisions beyond docs/DESIGN.md
//
//   - The causal context of a FullSync is known only after the snapshot
//     is read, and the receiver needs it to join anything: it travels in
//     the last chunk and the receiver stages earlier chunks durably.
//   - Remote ops are skipped by the store's causal context (not a second
//     applied-ops set as crdt/doc.go recommends): exact because the
//     protocol delivers causally (in-order batches with gap acks, one
//     relay). See docs/PROTOCOL.md, "Decisions".
//   - The store's FullSync merge logs no ops, so the hub cannot relay it;
//     instead a persisted state generation sends every other edge a
//     FullSync after a merge. Merges happen on queue overflow or a new
//     hub; a store API that logs merged changes as ops would remove the
//     cost.
//   - A batch's range starts where the previous batch ended, covering
//     skipped ranges (nothing there for the receiver); range-only
//     DeltaSyncs (at most one a second, idle streams only) move an edge's
//     cursor over the hub's log when it has nothing to receive.
//   - Sessions are identified by the edge's HLC reading; clean MQTT
//     sessions; our own reconnection (paho's auto-reconnect is off).
//   - Node ids are at most 128 bytes without / + # (topic levels).
//   - Overflow drops down to 90% of the capacity, so a full queue does not
//     prune (an fsync) on every write.
//   - An edge without a hub (empty HubURL) still runs: it bounds its op
//     log by the queue capacity; SyncNow returns ErrNoHub.
//   - sync_status "error" means the last attempt failed on this node (a
//     store error); an unreachable hub is "offline".
//   - An unanswered Hello is resent on the live link with backoff (the hub
//     is down or not subscribed) instead of tearing the link down; a hub
//     that restarts publishes a live "online" and known edges start a new
//     session at once. The hub answers a resent Hello of a live session
//     again (its Welcome was lost).
//   - Unacknowledged down batches are resent at once, then after 1, 3,
//     7... ack timeouts while the edge is silent (an idle edge whose batch
//     was lost still gets it; a gone edge costs one small message a
//     minute).
//   - FullSync merges on the hub run one at a time, and no export snapshot
//     is taken during one (a shared/exclusive lock held until the snapshot
//     exists), so the generation an edge is credited with is exact.
//   - SyncNow succeeds only through a live session: with nothing pending
//     it still reports whether the hub answers.
//   - Under store durability "none" the edge fsyncs at most once a second
//     so its writes become sendable (only durable ops are sent).
//   - An op the hub cannot decode (version skew) is logged and skipped,
//     and its batch acknowledged: it can never apply, and holding the
//     stream would stop every later op.
package syncer
