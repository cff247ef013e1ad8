package ingest

import "container/heap"

// SetRollup switches roll-up mode. While it is on, readings feed only the
// widest bucket width (e.g. 1h instead of 1m and 1h), so the aggregator
// writes far fewer replicated keys: the resource monitor turns it on under
// storage pressure. Turning it on closes the open buckets of the narrower
// widths at once (they are written as partial buckets); turning it off
// resumes them from the next reading (the first narrow bucket is then
// partial too). Buckets already written are never rewritten or deleted:
// they are replicated history, and deleting them here would delete them
// on the hub. With a single width it changes nothing. It returns how many
// buckets it closed.
func (a *EdgeAggregator) SetRollup(on bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rollup == on || len(a.widths) < 2 {
		a.rollup = on
		return 0
	}
	a.rollup = on
	if !on {
		return 0
	}
	wide := a.widestLocked()
	var narrow []*openBucket
	for _, b := range a.byClose {
		if b.width != wide {
			narrow = append(narrow, b)
		}
	}
	for _, b := range narrow {
		heap.Remove(&a.byClose, b.index)
		a.closeLocked(b)
	}
	return len(narrow)
}

// Rollup reports whether roll-up mode is on.
func (a *EdgeAggregator) Rollup() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rollup
}

func (a *EdgeAggregator) widestLocked() int {
	wi := 0
	for i, w := range a.widths {
		if w > a.widths[wi] {
			wi = i
		}
	}
	return wi
}
