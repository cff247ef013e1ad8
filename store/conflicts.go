package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

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
