package syncer

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/ferrite-edge/ferrite/store"
)

// opTail holds the hub's newest durable ops, decoded once, for the
// sessions' down reads. Every op an edge writes is read by every other
// edge's session: from the store, each session would decode it again
// (five allocations an op), so relaying one op to N edges cost N decodes.
// The Run loop fills the tail when the durable watermark moves, before it
// wakes the sessions; a session whose cursor is inside the tail reads from
// memory, one further behind (catching up) from the store. Ops are shared
// read-only: their strings and deltas are never modified.
type opTail struct {
	mu    sync.RWMutex
	from  uint64     // the tail holds every op of the log in (from, upto]
	upto  uint64     //
	ops   []store.Op // ascending seq
	bytes int        // their encoded size
	max   int        // bound on bytes: the oldest go first
}

// tailBytes bounds the tail (encoded op bytes; decoded, about twice).
const tailBytes = 8 << 20

// reset empties the tail at seq (the hub's durable seq at start).
func (t *opTail) reset(seq uint64, maxBytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.from, t.upto, t.ops, t.bytes, t.max = seq, seq, nil, 0, maxBytes
}

// fill appends the durable ops logged since the last fill.
func (t *opTail) fill(ctx context.Context, st Store) error {
	for {
		t.mu.RLock()
		upto := t.upto
		t.mu.RUnlock()
		if upto >= st.DurableSeq() {
			return nil
		}
		ops, next, err := st.OpsSince(ctx, store.OpsQuery{After: upto, Limit: 10_000, MaxBytes: 4 << 20})
		if err != nil || next <= upto {
			return err
		}
		t.append(upto, next, ops)
	}
}

func (t *opTail) append(after, next uint64, ops []store.Op) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if after != t.upto {
		return // reset meanwhile
	}
	t.ops = append(t.ops, ops...)
	for i := range ops {
		t.bytes += ops[i].EncodedSize()
	}
	t.upto = next
	drop := 0
	for t.bytes > t.max && drop < len(t.ops) {
		t.bytes -= t.ops[drop].EncodedSize()
		t.from = t.ops[drop].Seq
		drop++
	}
	if drop > 0 {
		t.ops = append([]store.Op(nil), t.ops[drop:]...)
	}
}

// read answers q as store.OpsSince would (same ops, same next cursor) if
// the tail covers q.After; ok is false otherwise.
func (t *opTail) read(q store.OpsQuery) (ops []store.Op, next uint64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if q.After < t.from || q.After >= t.upto {
		return nil, q.After, false
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = 1 << 20
	}
	i, _ := slices.BinarySearchFunc(t.ops, q.After+1, func(op store.Op, seq uint64) int { return cmp.Compare(op.Seq, seq) })
	next = t.upto // everything scanned: the tail's end
	size := 0
	for ; i < len(t.ops); i++ {
		op := &t.ops[i]
		n := op.EncodedSize()
		if len(ops) > 0 && size+n > q.MaxBytes {
			next = t.ops[i-1].Seq
			break
		}
		if q.Filter != nil && !q.Filter(op) {
			continue
		}
		ops = append(ops, *op)
		size += n
		if len(ops) >= q.Limit {
			next = op.Seq
			break
		}
	}
	return ops, next, true
}
