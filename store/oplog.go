package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Op is one entry of the op log: a mutation of one key, made locally or
// received from a peer. The op log is also the sync journal: OpsSince reads
// it for the syncer, ApplyRemote appends the ops it applies (with new local
// sequence numbers, so a hub can relay them), PruneOps drops acknowledged
// ones.
type Op struct {
	Seq   uint64     // local sequence number (per replica, from 1)
	Dot   crdt.Dot   // origin: the node and counter that made the mutation
	Stamp crdt.Stamp // when, by whom, in which role
	Key   string
	Delta []byte // encoded crdt.Delta
}

const (
	opVersion    = 1
	maxOpKey     = 64 << 10
	maxOpNode    = 255
	maxOpDelta   = 1 << 30
	opFlagStamp  = 1 << 0 // Stamp.Node differs from Dot.Node
	opRoleShift  = 1
	opRoleMask   = 0x7
	opKnownFlags = opFlagStamp | opRoleMask<<opRoleShift
)

// AppendBinary appends the op's encoding: version, uvarint seq, dot node,
// uvarint counter, 8-byte HLC, flags (role; stamp node if it differs from
// the dot's), key, delta (length-prefixed).
func (op *Op) AppendBinary(b []byte) []byte {
	b = append(b, opVersion)
	b = binary.AppendUvarint(b, op.Seq)
	b = appendString(b, op.Dot.Node)
	b = binary.AppendUvarint(b, op.Dot.Counter)
	b = op.Stamp.TS.AppendBinary(b)
	flags := byte(op.Stamp.Role&opRoleMask) << opRoleShift
	if op.Stamp.Node != op.Dot.Node {
		flags |= opFlagStamp
	}
	b = append(b, flags)
	if flags&opFlagStamp != 0 {
		b = appendString(b, op.Stamp.Node)
	}
	b = appendString(b, op.Key)
	return appendBytes(b, op.Delta)
}

// EncodedSize returns len(op.AppendBinary(nil)) without encoding.
func (op *Op) EncodedSize() int {
	n := 1 + uvarintLen(op.Seq) + uvarintLen(uint64(len(op.Dot.Node))) + len(op.Dot.Node) +
		uvarintLen(op.Dot.Counter) + 8 + 1 + uvarintLen(uint64(len(op.Key))) + len(op.Key) +
		uvarintLen(uint64(len(op.Delta))) + len(op.Delta)
	if op.Stamp.Node != op.Dot.Node {
		n += uvarintLen(uint64(len(op.Stamp.Node))) + len(op.Stamp.Node)
	}
	return n
}

// DecodeOp decodes an op encoded by AppendBinary. The result does not
// alias b. Garbage gives an error wrapping ErrCorrupt, never a panic.
func DecodeOp(b []byte) (Op, error) {
	r := reader{b: b}
	var op Op
	if v := r.byte(); r.err == nil && v != opVersion {
		return Op{}, fmt.Errorf("%w: op version %d", ErrCorrupt, v)
	}
	op.Seq = r.uvarint()
	op.Dot.Node = r.str(maxOpNode)
	op.Dot.Counter = r.uvarint()
	op.Stamp.TS = crdt.Timestamp(r.uint64())
	flags := r.byte()
	if flags&^opKnownFlags != 0 {
		r.fail("unknown op flags 0x%02x", flags)
	}
	op.Stamp.Role = crdt.Role(flags >> opRoleShift & opRoleMask)
	op.Stamp.Node = op.Dot.Node
	if flags&opFlagStamp != 0 {
		op.Stamp.Node = r.str(maxOpNode)
	}
	op.Key = r.str(maxOpKey)
	if d := r.bytes(maxOpDelta); r.err == nil {
		op.Delta = append([]byte(nil), d...)
	}
	if err := r.done(); err != nil {
		return Op{}, fmt.Errorf("op: %w", err)
	}
	if op.Dot.Node == "" || op.Dot.Counter == 0 {
		return Op{}, fmt.Errorf("%w: op without a dot", ErrCorrupt)
	}
	return op, nil
}

// OpsQuery selects ops for OpsSince.
type OpsQuery struct {
	// After: return ops with Seq > After.
	After uint64
	// Limit bounds the number of ops returned (default 1000).
	Limit int
	// MaxBytes bounds their total encoded size (default 1 MiB). At least
	// one op is returned if any matches, whatever its size.
	MaxBytes int
	// Origin, if set, selects the ops whose Dot.Node is Origin (an edge
	// sends only its own ops upstream).
	Origin string
	// Filter, if set, selects the ops it returns true for (a hub sends an
	// edge the ops its version vector does not cover). It runs after
	// Origin.
	Filter func(*Op) bool
}

// OpsSince returns durable ops after q.After, oldest first, and the seq to
// pass as After next time (past the last op scanned, including filtered
// ones, so filtered ranges are not rescanned). Ops above the durable
// watermark are never returned: a crash could still erase them.
func (s *Store) OpsSince(ctx context.Context, q OpsQuery) ([]Op, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, q.After, err
	}
	if err := s.enter(); err != nil {
		return nil, q.After, err
	}
	defer s.leave()
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = 1 << 20
	}
	durable := s.durable.Load()
	next := q.After
	if q.After >= durable {
		return nil, next, nil
	}
	lo := opKey(nil, q.After+1)
	hi := opKey(nil, durable+1)
	if durable == math.MaxUint64 {
		hi = []byte{prefixOp + 1}
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, next, err
	}
	defer it.Close()
	var ops []Op
	size := 0
	exhausted := true
	for it.First(); it.Valid(); it.Next() {
		seq, ok := opSeqFromKey(it.Key())
		if !ok {
			return nil, q.After, fmt.Errorf("%w: op key %x", ErrCorrupt, it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, q.After, err
		}
		if len(ops) > 0 && size+len(v) > q.MaxBytes {
			exhausted = false
			break
		}
		op, err := DecodeOp(v)
		if err != nil {
			return nil, q.After, fmt.Errorf("op %d: %w", seq, err)
		}
		op.Seq = seq
		next = seq
		if (q.Origin != "" && op.Dot.Node != q.Origin) || (q.Filter != nil && !q.Filter(&op)) {
			continue
		}
		ops = append(ops, op)
		size += len(v)
		if len(ops) >= q.Limit {
			exhausted = false
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, q.After, err
		}
	}
	if err := it.Error(); err != nil {
		return nil, q.After, err
	}
	if exhausted {
		// Everything durable was scanned (pruned gaps included).
		next = durable
	}
	return ops, next, nil
}

// OldestSeq returns the seq of the oldest op still in the log (PrunedSeq+1;
// greater than LastSeq when the log is empty).
func (s *Store) OldestSeq() uint64 { return s.pruned.Load() + 1 }

// PrunedSeq returns the seq up to which the op log was pruned.
func (s *Store) PrunedSeq() uint64 { return s.pruned.Load() }

// PruneOps deletes the ops with seq <= upTo (an edge prunes what its hub
// acknowledged, or drops its oldest ops when the offline queue overflows).
// It never prunes beyond the durable watermark.
func (s *Store) PruneOps(ctx context.Context, upTo uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	upTo = min(upTo, s.durable.Load())
	s.wmu.Lock()
	from := s.pruned.Load()
	if upTo <= from {
		s.wmu.Unlock()
		return nil
	}
	b := s.db.NewBatch()
	_ = b.DeleteRange(opKey(nil, from+1), opKey(nil, upTo+1), nil)
	putUvarintMeta(b, metaPruned, upTo)
	w, err := s.commitBatch(b, true)
	if err == nil {
		s.pruned.Store(upTo)
	}
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	s.metrics.pruned.Add(float64(upTo - from))
	return s.finishCommit(w)
}

// SyncedSeq returns the seq up to which ops are acknowledged upstream.
func (s *Store) SyncedSeq() uint64 { return s.synced.Load() }

// MarkSynced records that the ops up to seq are acknowledged upstream:
// data whose last change is at or below it may be evicted. On a hub every
// op counts as synced (there is no upstream).
func (s *Store) MarkSynced(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	seq = min(seq, s.lastSeq.Load())
	for {
		cur := s.synced.Load()
		if seq <= cur {
			return nil
		}
		if s.synced.CompareAndSwap(cur, seq) {
			break
		}
	}
	b := s.db.NewBatch()
	putUvarintMeta(b, metaSynced, seq)
	w, err := s.commitBatch(b, false)
	if err != nil {
		return err
	}
	return s.finishCommit(w)
}

// isSynced reports whether a change at seq is acknowledged upstream.
func (s *Store) isSynced(seq uint64) bool {
	return s.role == crdt.RoleHub || s.opts.NoUpstream || seq <= s.synced.Load()
}
