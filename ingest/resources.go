package ingest

import (
	"context"
	"unsafe"
)

// Actions for the resource monitor (the root package wires them to the
// interfaces resources owns: RollUp, MemoryReleaser).

// RollUp closes and writes every open bucket now, so the raw readings
// behind them are summarised in replicated aggregates and become
// offloadable (Store.MarkAggregated). Readings arriving later for those
// intervals are merged as late partials: nothing is lost or counted twice.
// To also stop writing narrow buckets under pressure, see SetRollup.
func (p *Pipeline) RollUp(ctx context.Context) error {
	return p.Flush(ctx)
}

// ReleaseMemory drops memory ingest can rebuild: the intern tables of
// sensor ids and units (refilled as readings arrive), the in-memory ring
// of recently closed buckets (SENSOR.BUCKETS reads the store) and the
// QoS 0 queue's spare buffer. It returns an
// estimate of the bytes freed; want is advisory.
func (p *Pipeline) ReleaseMemory(_ context.Context, want int64) (int64, error) {
	var freed int64
	freed += p.ids.reset()
	freed += p.units.reset()
	if p.agg != nil {
		freed += p.agg.releaseRecent()
	}
	freed += p.queue.releaseSpare()
	// Pooled parse buffers (p.batches) go with the next two GC cycles.
	return freed, nil
}

// reset empties the table and returns the approximate bytes it held.
func (t *internTable) reset() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for k := range t.m {
		n += int64(len(k)) + 2*int64(unsafe.Sizeof(k)) + 16
	}
	t.m = make(map[string]string)
	return n
}

func (a *EdgeAggregator) releaseRecent() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := int64(cap(a.recent)) * int64(unsafe.Sizeof(Bucket{}))
	a.recent = nil
	return n
}

func (q *qos0Queue) releaseSpare() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := int64(cap(q.spare)) * int64(unsafe.Sizeof(Reading{}))
	q.spare = nil
	return n
}
