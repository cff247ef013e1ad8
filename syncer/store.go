package syncer

import (
	"context"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Store is what the syncer needs of the local replica; *store.Store
// implements it. The contract the syncer relies on:
//
//   - OpsSince returns durable ops only, in seq order, and a next cursor
//     past every op it scanned; PruneOps never prunes beyond the durable
//     watermark; OldestSeq only grows.
//   - ApplyRemote skips ops whose dot the context holds, applies the rest,
//     logs them under new local seqs and is durable when it returns.
//     (It skips by the causal context: this is exact only when every
//     replica receives each origin's ops in order, which the protocol
//     guarantees: a batch is applied only if it follows the receiver's
//     cursor, see docs/PROTOCOL.md.)
//   - ExportState reads one consistent snapshot in ascending key order;
//     every op whose seq was published (LastSeq) before the call is in it.
//   - MergeState/FinishMergeState join a peer's full state, chunk by chunk
//     in the exporter's key order (after: the previous chunk's last key),
//     under the peer's context, durably; FinishMergeState merges the
//     context.
//   - SetSyncState is durable when it returns.
//   - DurableChanged is closed when the durable watermark next advances.
type Store interface {
	NodeID() string
	// Actor names this replica's writes in dots (store.Store.Actor): the
	// node id, or node$incarnation.
	Actor() string
	// OwnDot reports whether a dot is a write of this data directory: of
	// its actor, or of one it retired (store.Options.NewActor) up to the
	// counter it retired at.
	OwnDot(d crdt.Dot) bool
	Role() crdt.Role
	Now() crdt.Timestamp
	Context() *crdt.Context
	// Seen: the highest contiguous and the highest counter of node's dots
	// in the context (without copying it).
	Seen(node string) (contiguous, highest uint64)

	DurableSeq() uint64
	LastSeq() uint64
	DurableChanged() <-chan struct{}
	SyncWAL(ctx context.Context) error

	OpsSince(ctx context.Context, q store.OpsQuery) ([]store.Op, uint64, error)
	OldestSeq() uint64
	PrunedSeq() uint64
	PruneOps(ctx context.Context, upTo uint64) error
	MarkSynced(ctx context.Context, seq uint64) error

	ApplyRemote(ctx context.Context, ops []store.Op) (store.ApplyResult, error)
	ExportState(ctx context.Context, fn func(key string, entry []byte) error) (*crdt.Context, error)
	MergeState(ctx context.Context, remoteCtx *crdt.Context, after string, chunk []store.StateEntry) ([]crdt.Conflict, error)
	FinishMergeState(ctx context.Context, remoteCtx *crdt.Context, after string) ([]crdt.Conflict, error)

	SyncState(ctx context.Context, name string) ([]byte, error)
	SetSyncState(ctx context.Context, name string, value []byte) error

	RecordConflicts(ctx context.Context, confl []crdt.Conflict) error
	Conflicts(ctx context.Context, limit int) ([]store.ConflictRecord, error)
	ClearConflicts(ctx context.Context) (int, error)
}

var _ Store = (*store.Store)(nil)
