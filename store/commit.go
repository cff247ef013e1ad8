package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The commit pipeline.
//
// A writer builds a Pebble batch under wmu, applies it with commitBatch
// (still under wmu, so WAL order is op order), releases wmu, then waits
// for durability with finishCommit:
//
//   - always: ApplyNoSyncWait + SyncWait. The fsync happens outside wmu, so
//     while one fsync is in flight the next writers apply their batches and
//     queue on the same WAL; Pebble's log writer then covers them all with
//     one fsync (group commit).
//   - interval, none: Apply without sync. The background loop (interval)
//     or SyncWAL forces an fsync by committing an empty synced LogData.
//
// The durable watermark is the highest op seq known fsynced. A synced
// commit of a batch written after seq S makes every op <= S durable (the
// WAL is synced in order), so the watermark only moves forward with a
// compare-and-swap max. The syncer reads only ops at or below it: an op
// that a crash could still erase must never reach a peer, or its dot could
// be reused with different content after the restart.

// commitWait is a committed batch whose durability is still to be awaited.
type commitWait struct {
	b    *pebble.Batch
	seq  uint64 // watermark this commit makes durable
	sync bool
}

// commitBatch applies b. forceSync makes it durable whatever the policy
// (remote applies, metadata). The caller must call finishCommit, after
// releasing wmu if it holds it.
func (s *Store) commitBatch(b *pebble.Batch, forceSync bool) (commitWait, error) {
	// Reading the applied seq before the apply is safe: every batch that
	// published it is already in the WAL ahead of b.
	seq := s.applied.Load()
	sync := forceSync || s.opts.Durability == DurabilityAlways
	var err error
	if sync {
		err = s.db.ApplyNoSyncWait(b, pebble.Sync)
	} else {
		err = s.db.Apply(b, pebble.NoSync)
	}
	if err != nil {
		_ = b.Close()
		return commitWait{}, fmt.Errorf("store: commit: %w", err)
	}
	return commitWait{b: b, seq: seq, sync: sync}, nil
}

// commitOps is commitBatch for a batch carrying ops up to seq (wmu held).
func (s *Store) commitOps(b *pebble.Batch, seq uint64, forceSync bool) (commitWait, error) {
	w, err := s.commitBatch(b, forceSync)
	if err != nil {
		return w, err
	}
	s.applied.Store(seq)
	w.seq = seq
	return w, nil
}

// finishCommit waits for the fsync of a synced commit and releases the
// batch.
func (s *Store) finishCommit(w commitWait) error {
	if !w.sync {
		return w.b.Close()
	}
	start := time.Now()
	err := w.b.SyncWait()
	_ = w.b.Close()
	if err != nil {
		return s.failWAL(err)
	}
	s.metrics.syncWait.Observe(time.Since(start).Seconds())
	s.advanceDurable(w.seq)
	return nil
}

// failWAL makes the store refuse writes after a failed fsync.
func (s *Store) failWAL(err error) error {
	e := fmt.Errorf("%w: %v", ErrWALFailed, err)
	if s.walErr.CompareAndSwap(nil, &e) {
		s.log.Error("WAL fsync failed; refusing writes until reopened", "err", err)
	}
	return e
}

func (s *Store) advanceDurable(seq uint64) {
	for {
		cur := s.durable.Load()
		if seq <= cur {
			return
		}
		if s.durable.CompareAndSwap(cur, seq) {
			break
		}
	}
	s.wakeWaiters()
}

func (s *Store) wakeWaiters() {
	s.notifyMu.Lock()
	if s.notifyCh != nil {
		close(s.notifyCh)
		s.notifyCh = nil
	}
	s.notifyMu.Unlock()
}

// DurableChanged returns a channel closed when the durable watermark next
// advances (or the store closes). The syncer selects on it to send new ops
// as soon as they are durable.
func (s *Store) DurableChanged() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.closed.Load() {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if s.notifyCh == nil {
		s.notifyCh = make(chan struct{})
	}
	return s.notifyCh
}

// DurableSeq returns the durable watermark: every op with a seq at or
// below it is fsynced.
func (s *Store) DurableSeq() uint64 { return s.durable.Load() }

// LastSeq returns the seq of the last op applied (durable or not).
func (s *Store) LastSeq() uint64 { return s.lastSeq.Load() }

// SyncWAL fsyncs the WAL and advances the durable watermark over every op
// applied before the call: every write made before it is durable when it
// returns, broker records included (which SENSOR.FORGET relies on to make
// a Home Assistant entity's removal durable before it replies).
func (s *Store) SyncWAL(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.syncWAL()
}

func (s *Store) syncWAL() error {
	if p := s.walErr.Load(); p != nil {
		return *p
	}
	target := s.applied.Load()
	// Under "always" every op is fsynced by its own commit, so there is
	// nothing to sync unless a broker record (written without an fsync)
	// came since the last one. Cleared before the fsync: a record written
	// meanwhile sets it again, for the next call.
	records := s.unsynced.Swap(false)
	if !records && target <= s.durable.Load() && s.opts.Durability == DurabilityAlways {
		return nil
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		if records {
			s.unsynced.Store(true)
		}
		return s.failWAL(err)
	}
	s.advanceDurable(target)
	return nil
}

// diskUsageInterval is the period of the disk usage sample.
const diskUsageInterval = 100 * time.Millisecond

// background runs the periodic work: the interval fsync, the TTL sweeper
// and the disk usage sample.
func (s *Store) background() {
	defer s.wg.Done()
	var syncC <-chan time.Time
	if s.opts.Durability == DurabilityInterval {
		t := time.NewTicker(s.opts.SyncInterval)
		defer t.Stop()
		syncC = t.C
	}
	var sweepC <-chan time.Time
	if s.opts.SweepInterval > 0 {
		t := time.NewTicker(s.opts.SweepInterval)
		defer t.Stop()
		sweepC = t.C
	}
	// The disk usage feeds the storage limit and the resource monitor's
	// disk level: sampled often enough that a burst of writes cannot run
	// far past the limit between two samples (Metrics costs microseconds).
	usage := time.NewTicker(diskUsageInterval)
	defer usage.Stop()
	registry := time.NewTicker(time.Second)
	defer registry.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-syncC:
			s.withDB(func() {
				if err := s.syncWAL(); err != nil {
					s.log.Error("interval fsync", "err", err)
				}
			})
		case <-sweepC:
			s.withDB(func() {
				if _, err := s.sweepExpired(context.Background(), s.opts.SweepBatch); err != nil {
					s.log.Warn("ttl sweep", "err", err)
				}
			})
		case <-usage.C:
			s.withDB(s.refreshDiskUsage)
		case <-registry.C:
			s.withDB(s.persistSensors)
		}
	}
}

// withDB runs fn if the store is open, holding it open meanwhile.
func (s *Store) withDB(fn func()) {
	if s.enter() != nil {
		return
	}
	defer s.leave()
	fn()
}

func (s *Store) refreshDiskUsage() {
	s.diskUsage.Store(diskUsage(s.db.Metrics()))
}

// diskUsage is the bytes of live data: Pebble's DiskSpaceUsage without
// the files waiting for deletion (obsolete and zombie tables, recycled WAL
// files, compaction output in progress) and with the WAL counted by its
// logical size. Those extra files come and go with each flush and
// compaction: counting them made the level jump by a memtable's worth
// between two samples, in both directions. The WAL's physical size lags
// behind its logical size under durability none or interval.
func diskUsage(m *pebble.Metrics) uint64 {
	u := m.DiskSpaceUsage()
	u -= m.WAL.PhysicalSize + m.WAL.ObsoletePhysicalSize
	u -= m.Table.Local.ObsoleteSize + m.Table.Local.ZombieSize
	u -= m.BlobFiles.Local.ObsoleteSize + m.BlobFiles.Local.ZombieSize
	u -= uint64(m.Compact.InProgressBytes)
	return u + m.WAL.Size
}
