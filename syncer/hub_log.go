package syncer

import (
	"context"
	"sync"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

// logIndex is the hub's coarse index of its op log for retention: a mark
// every markOps ops or markBytes bytes with the cumulative encoded size
// and the time the hub first saw it. Marks made when the log is indexed at
// start carry the start time (the arrival time is not stored), which only
// keeps ops longer. Memory: one mark per ~1000 ops.
type logIndex struct {
	mu      sync.Mutex
	marks   []logMark
	scanned uint64 // ops up to here are indexed
	total   int64  // cumulative bytes through scanned
	base    int64  // cumulative bytes through the last pruned mark
	pending int    // ops since the last mark
	pendB   int64  // bytes since the last mark
}

type logMark struct {
	seq uint64
	cum int64 // cumulative bytes through seq
	at  int64 // unix ms
}

const (
	markOps   = 1000
	markBytes = 1 << 20
)

// catchUp indexes the durable ops not indexed yet.
func (x *logIndex) catchUp(ctx context.Context, st Store, now time.Time) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := st.PrunedSeq(); x.scanned < p {
		x.scanned = p
	}
	durable := st.DurableSeq()
	for x.scanned < durable {
		ops, next, err := st.OpsSince(ctx, store.OpsQuery{After: x.scanned, Limit: 10_000, MaxBytes: 16 << 20})
		if err != nil {
			return err
		}
		for i := range ops {
			n := int64(ops[i].EncodedSize())
			x.total += n
			x.pending++
			x.pendB += n
			if x.pending >= markOps || x.pendB >= markBytes {
				x.marks = append(x.marks, logMark{seq: ops[i].Seq, cum: x.total, at: now.UnixMilli()})
				x.pending, x.pendB = 0, 0
			}
		}
		if next <= x.scanned {
			break
		}
		x.scanned = next
	}
	return nil
}

// bytes estimates the bytes the log retains.
func (x *logIndex) bytes() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.total - x.base
}

// floor returns the seq up to which retention requires pruning (0:
// none): enough marks to bring the log under maxBytes, and every mark
// older than maxAge.
func (x *logIndex) floor(now time.Time, maxBytes int64, maxAge time.Duration) uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var f uint64
	if x.total-x.base > maxBytes {
		for _, m := range x.marks {
			f = m.seq
			if x.total-m.cum <= maxBytes {
				break
			}
		}
	}
	cutoff := now.Add(-maxAge).UnixMilli()
	for _, m := range x.marks {
		if m.at >= cutoff {
			break
		}
		f = max(f, m.seq)
	}
	return f
}

// prunedThrough forgets the marks the log no longer holds.
func (x *logIndex) prunedThrough(seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := 0
	for i < len(x.marks) && x.marks[i].seq <= seq {
		x.base = x.marks[i].cum
		i++
	}
	x.marks = append(x.marks[:0], x.marks[i:]...)
}
