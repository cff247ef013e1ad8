package resources

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sort"
	"time"
)

// One-shot actions run on the monitor's action goroutine so that a long
// compaction never delays sampling or the write gate. Batches coalesce: a
// batch decided while another runs replaces any batch still waiting (the
// newer decision saw newer figures), so the queue never grows.

// enqueue hands a batch to the action goroutine.
func (m *Monitor) enqueue(batch []Action) {
	m.pendMu.Lock()
	m.pending = batch
	m.pendMu.Unlock()
	select {
	case m.work <- struct{}{}:
	default:
	}
}

// actionLoop runs batches until ctx ends.
func (m *Monitor) actionLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.work:
			m.runPending(ctx)
		}
	}
}

// runPending runs the waiting batch, if any, in order.
func (m *Monitor) runPending(ctx context.Context) {
	m.pendMu.Lock()
	batch := m.pending
	m.pending = nil
	m.pendMu.Unlock()
	for _, a := range batch {
		if ctx.Err() != nil {
			return
		}
		m.runOne(ctx, a)
	}
}

// runOne calls one action under ActionTimeout and records its outcome.
func (m *Monitor) runOne(ctx context.Context, a Action) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ActionTimeout)
	defer cancel()
	start := time.Now()
	freed, wired, err := m.call(ctx, a)
	rec := ActionRecord{Action: a.Kind, At: start, Took: Duration(time.Since(start)),
		Result: resultLabel(wired, err), Bytes: a.Bytes, Freed: freed}
	if a.Kind == ActEvict || a.Kind == ActReleaseMemory || a.Kind == ActFreeOSMemory {
		rec.Resource = a.Resource.String()
	}
	if err != nil {
		rec.Error = err.Error()
	}
	m.metrics.actions.WithLabelValues(a.Kind.String(), rec.Result).Inc()
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	if wired {
		m.log.Log(ctx, lvl, "resource action", "action", a.Kind, "bytes", a.Bytes, "freed", freed,
			"took", time.Duration(rec.Took), "err", err)
	}
	m.mu.Lock()
	m.records[a.Kind] = rec
	m.snap.Recent = m.recentLocked()
	m.mu.Unlock()
}

// call dispatches an action to its target; wired is false when the target
// is not configured.
func (m *Monitor) call(ctx context.Context, a Action) (freed int64, wired bool, err error) {
	o := &m.opts
	switch a.Kind {
	case ActSyncNow:
		if o.SyncController == nil {
			return 0, false, nil
		}
		return 0, true, o.SyncController.SyncNow(ctx)
	case ActRollUp:
		if o.RollUp == nil {
			return 0, false, nil
		}
		return 0, true, o.RollUp.RollUp(ctx)
	case ActOffload:
		if o.Offloader == nil {
			return 0, false, nil
		}
		n, err := o.Offloader.DropSyncedRawReadings(ctx)
		return n, true, err
	case ActEvict:
		if o.Evictor == nil {
			return 0, false, nil
		}
		n, err := o.Evictor.Evict(ctx, a.Bytes)
		return n, true, err
	case ActReleaseMemory:
		if o.MemoryReleaser == nil {
			return 0, false, nil
		}
		n, err := o.MemoryReleaser.ReleaseMemory(ctx, a.Bytes)
		return n, true, err
	case ActFreeOSMemory:
		debug.FreeOSMemory()
		return 0, true, nil
	case ActCompact:
		if o.Compactor == nil {
			return 0, false, nil
		}
		return 0, true, o.Compactor.Compact(ctx)
	}
	return 0, false, nil
}

// recentLocked lists the action records in action order; m.mu is held.
func (m *Monitor) recentLocked() []ActionRecord {
	recs := make([]ActionRecord, 0, len(m.records))
	for _, r := range m.records {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Action < recs[j].Action })
	return recs
}
