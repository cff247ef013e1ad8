package syncer

// pendingQueue accounts for the edge's offline queue: its own ops in the
// op log that the hub has not acknowledged. The ops themselves stay in the
// store's op log (the durable journal); this is an in-memory index of
// (seq, size, time) per op, bounded by the queue capacity (overflow drops
// the oldest), rebuilt from the log at start. It gives EDGE.QUEUE its
// exact figures and tells the driver which seq to prune up to when the
// queue overflows.
type pendingQueue struct {
	items   []pendingOp
	head    int
	bytes   int64
	scanned uint64 // own ops up to this seq are indexed
}

type pendingOp struct {
	seq  uint64
	size uint32
	ts   int64 // unix ms of the op's HLC stamp
}

func (q *pendingQueue) len() int { return len(q.items) - q.head }

func (q *pendingQueue) push(op pendingOp) {
	q.items = append(q.items, op)
	q.bytes += int64(op.size)
}

// oldest returns the time of the oldest pending op (0 if none).
func (q *pendingQueue) oldest() int64 {
	if q.len() == 0 {
		return 0
	}
	return q.items[q.head].ts
}

// ackThrough removes the ops with seq <= seq.
func (q *pendingQueue) ackThrough(seq uint64) {
	for q.head < len(q.items) && q.items[q.head].seq <= seq {
		q.bytes -= int64(q.items[q.head].size)
		q.head++
	}
	q.compact()
}

// dropOldest removes the n oldest ops and returns the seq of the last one.
func (q *pendingQueue) dropOldest(n int) uint64 {
	n = min(n, q.len())
	if n == 0 {
		return 0
	}
	last := q.items[q.head+n-1].seq
	q.ackThrough(last)
	return last
}

func (q *pendingQueue) compact() {
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		return
	}
	if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
}

// overflowDrop returns how many ops to drop when the queue holds more
// than capacity: down to 90% of it, so a full queue does not prune (an
// fsync) on every write.
func overflowDrop(n, capacity int) int {
	if n <= capacity {
		return 0
	}
	return n - (capacity - capacity/10)
}
