package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Conflicts table: every conflict a join produced (a concurrent write that
// lost under the key's strategy), keyed by the conflict's deterministic id
// so a re-delivered delta does not record it twice. Listed by
// EDGE.CONFLICTS until cleared; bounded by Options.MaxConflicts (beyond it
// conflicts are counted in ferrite_store_conflicts_unstored_total).
//
// Record: uvarint detected-at (unix ms), then crdt's conflict encoding.
//
// Clearing a conflict leaves a marker (r<id> -> uvarint cleared-at ms) for
// ClearedRetention: the same conflict is usually detected twice (the edge
// applying the winner's op, the hub's ConflictReport a moment later) and a
// report can be redelivered, so without the marker a conflict the operator
// just cleared could come back. Markers older than that are treated as
// absent and deleted by the next clear.

// ClearedRetention is how long a cleared conflict stays cleared against
// late or repeated reports of it.
const ClearedRetention = time.Hour

// ConflictRecord is a stored conflict.
type ConflictRecord struct {
	crdt.Conflict
	DetectedAt int64 // unix ms, local clock
}

// stageConflicts adds new conflicts to b (wmu held).
func (s *Store) stageConflicts(b *pebble.Batch, confl []crdt.Conflict) {
	if len(confl) == 0 {
		return
	}
	now := s.opts.Clock()
	seen := make(map[[16]byte]bool, len(confl))
	for i := range confl {
		c := &confl[i]
		id := c.ID()
		if seen[id] {
			continue
		}
		seen[id] = true
		k := conflictKey(id)
		if _, closer, err := s.db.Get(k); err == nil {
			_ = closer.Close()
			continue // already recorded
		}
		if s.recentlyCleared(id, now) {
			continue
		}
		s.metrics.conflicts.Inc()
		if s.nConfl >= s.opts.MaxConflicts {
			s.metrics.conflictsLost.Inc()
			continue
		}
		v := binary.AppendUvarint(nil, uint64(max(now, 0)))
		_ = b.Set(k, c.AppendBinary(v), nil)
		s.nConfl++
	}
}

func decodeConflictRecord(v []byte) (ConflictRecord, error) {
	at, n := binary.Uvarint(v)
	if n <= 0 {
		return ConflictRecord{}, fmt.Errorf("%w: conflict record", ErrCorrupt)
	}
	c, err := crdt.DecodeConflict(v[n:])
	if err != nil {
		return ConflictRecord{}, err
	}
	return ConflictRecord{Conflict: c, DetectedAt: int64(at)}, nil
}

// RecordConflicts stores conflicts reported by a peer (a hub's
// ConflictReport), deduplicated by id, durably.
func (s *Store) RecordConflicts(ctx context.Context, confl []crdt.Conflict) error {
	if err := s.checkWrite(ctx, false); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.wmu.Lock()
	b := s.db.NewBatch()
	s.stageConflicts(b, confl)
	if b.Empty() {
		s.wmu.Unlock()
		return b.Close()
	}
	w, err := s.commitBatch(b, true)
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	return s.finishCommit(w)
}

// Conflicts returns up to limit stored conflicts (limit <= 0: all), in id
// order.
func (s *Store) Conflicts(ctx context.Context, limit int) ([]ConflictRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{prefixConflict}, UpperBound: []byte{prefixConflict + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []ConflictRecord
	for it.First(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		r, err := decodeConflictRecord(v)
		if err != nil {
			return nil, fmt.Errorf("conflict %x: %w", it.Key()[1:], err)
		}
		out = append(out, r)
	}
	return out, it.Error()
}

// ConflictCount returns the number of stored conflicts.
func (s *Store) ConflictCount() int {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.nConfl
}

// ClearConflicts deletes every stored conflict and returns how many there
// were.
func (s *Store) ClearConflicts(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.wmu.Lock()
	n := s.nConfl
	b := s.db.NewBatch()
	now := s.opts.Clock()
	if err := s.stageClearedMarkers(b, now); err != nil {
		s.wmu.Unlock()
		_ = b.Close()
		return 0, err
	}
	_ = b.DeleteRange([]byte{prefixConflict}, []byte{prefixConflict + 1}, nil)
	w, err := s.commitBatch(b, true)
	if err == nil {
		s.nConfl = 0
	}
	s.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	return n, s.finishCommit(w)
}

// ClearConflict deletes one stored conflict by id and reports whether it
// existed.
func (s *Store) ClearConflict(ctx context.Context, id [16]byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	s.wmu.Lock()
	k := conflictKey(id)
	_, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		s.wmu.Unlock()
		return false, nil
	}
	if err != nil {
		s.wmu.Unlock()
		return false, err
	}
	_ = closer.Close()
	b := s.db.NewBatch()
	now := s.opts.Clock()
	if err := s.pruneClearedMarkers(b, now); err != nil {
		s.wmu.Unlock()
		_ = b.Close()
		return false, err
	}
	_ = b.Set(clearedKey(id), binary.AppendUvarint(nil, uint64(max(now, 0))), nil)
	_ = b.Delete(k, nil)
	w, err := s.commitBatch(b, true)
	if err == nil {
		s.nConfl--
	}
	s.wmu.Unlock()
	if err != nil {
		return false, err
	}
	return true, s.finishCommit(w)
}

// recentlyCleared reports whether conflict id was cleared less than
// ClearedRetention before now (wmu held).
func (s *Store) recentlyCleared(id [16]byte, now int64) bool {
	v, closer, err := s.db.Get(clearedKey(id))
	if err != nil {
		return false
	}
	at, n := binary.Uvarint(v)
	_ = closer.Close()
	return n > 0 && now-int64(at) < ClearedRetention.Milliseconds()
}

// stageClearedMarkers adds to b a cleared marker for every stored conflict
// and the deletion of expired markers (wmu held).
func (s *Store) stageClearedMarkers(b *pebble.Batch, now int64) error {
	if err := s.pruneClearedMarkers(b, now); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixConflict}, UpperBound: []byte{prefixConflict + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	at := binary.AppendUvarint(nil, uint64(max(now, 0)))
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) == 17 {
			_ = b.Set(clearedKey([16]byte(k[1:])), at, nil)
		}
	}
	return it.Error()
}

// pruneClearedMarkers adds to b the deletion of markers older than
// ClearedRetention (wmu held).
func (s *Store) pruneClearedMarkers(b *pebble.Batch, now int64) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCleared}, UpperBound: []byte{prefixCleared + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if at, n := binary.Uvarint(v); n <= 0 || now-int64(at) >= ClearedRetention.Milliseconds() {
			_ = b.Delete(it.Key(), nil)
		}
	}
	return it.Error()
}
