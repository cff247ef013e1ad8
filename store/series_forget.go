package store

import (
	"context"
	"fmt"
)

// ForgetSensor deletes a sensor from the local series: its raw readings
// ring and its registry record. It also writes the given syncer-state
// records (name → value; a nil value deletes the record) in the same
// batch, fsynced whatever the durability policy, and returns how many
// readings the ring held.
//
// The records are there for ingest, which keeps each sensor's checkpoint
// in such a record: written in two commits, a crash between them would
// bring the sensor back half (a checkpoint without its ring, or a ring
// replayed without its checkpoint). Replicated data is not touched: the
// sensor's aggregate keys are ordinary keys.
//
// A reading appended afterwards starts a new ring at index 0 and a new
// registry record, as for a sensor never seen: the range deletion covers
// every index the old ring used, so none of its readings can reappear.
// Forgetting an unknown sensor drops nothing and is not an error (as DEL
// of a missing key). It is a deletion: allowed while writes are refused.
func (s *Store) ForgetSensor(ctx context.Context, sensor string, states map[string][]byte) (int, error) {
	if err := validSensor(sensor); err != nil {
		return 0, err
	}
	for name := range states {
		if name == "" || len(name) > maxSyncStateName {
			return 0, fmt.Errorf("%w: sync state name %q", ErrSyntax, name)
		}
	}
	if err := s.checkWrite(ctx, false); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	prefix := seriesPrefix(sensor)
	b := s.db.NewBatch()
	_ = b.DeleteRange(prefix, prefixEnd(prefix), nil)
	_ = b.Delete(sensorInfoKey(sensor), nil)
	for name, v := range states {
		if v == nil {
			_ = b.Delete(syncKey(name), nil)
		} else {
			_ = b.Set(syncKey(name), v, nil)
		}
	}
	// Under seriesMu, as every write of the series keyspace: no append or
	// registry flush of this sensor can be staged before this batch and
	// committed after it (which would recreate its record).
	s.seriesMu.Lock()
	n := 0
	if st := s.sensors[sensor]; st != nil {
		n = s.ringLen(st)
	}
	w, err := s.commitBatch(b, true)
	if err == nil {
		delete(s.sensors, sensor)
	}
	s.seriesMu.Unlock()
	if err != nil {
		return 0, err
	}
	return n, s.finishCommit(w)
}
