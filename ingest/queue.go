package ingest

import (
	"context"
	"sync"
	"time"
)

// DefaultQueueSize bounds the QoS 0 readings waiting for the store.
const DefaultQueueSize = 65536

// qos0Queue decouples QoS 0 ingestion from the store's commit latency.
//
// A QoS 0 publisher gets no acknowledgement, so nothing waits for its
// reading to be durable; what matters is throughput and bounded memory.
// HandleMessages parses a QoS 0 batch on the caller's goroutine (the
// broker's queue worker) and appends the readings here; one writer
// goroutine takes *everything* queued at once and writes it as one store
// batch. While the writer waits for a commit (an fsync under the "always"
// policy), new readings accumulate, so the store batch grows with the
// commit latency: one fsync covers as many readings as arrived meanwhile
// (group commit at the ingest level), and parsing overlaps the write on
// the second core. When size readings are queued, a push waits briefly
// for room (backpressure), then drops the newest, counted.
//
// Readings leave the queue in the order they were pushed, so two counters
// tell a caller when the readings queued before it are written: drain
// takes the count pushed as its ticket and waits until the count written
// reaches it. Waiting for an empty queue instead never ends while other
// sensors keep publishing (SENSOR.FORGET, SENSOR.FLUSH under load).
type qos0Queue struct {
	p    *Pipeline
	size int

	mu       sync.Mutex
	buf      []Reading
	spare    []Reading
	pushed   uint64        // readings ever queued
	written  uint64        // readings ever handed to the store (or dropped at the stop)
	progress chan struct{} // closed and replaced when written grows or the queue stops
	wake     chan struct{} // capacity 1
	space    chan struct{} // closed and replaced when the writer takes a batch
	stopped  bool
}

func newQoS0Queue(p *Pipeline, size int) *qos0Queue {
	return &qos0Queue{p: p, size: size, wake: make(chan struct{}, 1), progress: make(chan struct{}), space: make(chan struct{})}
}

// maxQueueWait bounds how long push waits for room before dropping.
const maxQueueWait = 250 * time.Millisecond

// push queues readings and returns how many it dropped. When the queue is
// full it first waits (up to maxQueueWait, or ctx) for the writer to take
// a batch: the wait pushes back on the broker's queue worker instead of
// dropping at the first burst.
func (q *qos0Queue) push(ctx context.Context, rs []Reading) int {
	var deadline <-chan time.Time
	for {
		q.mu.Lock()
		if q.stopped {
			q.mu.Unlock()
			return len(rs)
		}
		room := max(q.size-len(q.buf), 0)
		n := min(room, len(rs))
		q.buf = append(q.buf, rs[:n]...)
		q.pushed += uint64(n)
		rs = rs[n:]
		space := q.space
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
		if len(rs) == 0 {
			return 0
		}
		if deadline == nil {
			t := time.NewTimer(maxQueueWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-space:
		case <-deadline:
			return len(rs)
		case <-ctx.Done():
			return len(rs)
		}
	}
}

func (q *qos0Queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf)
}

// take swaps out the queued readings (nil when none).
func (q *qos0Queue) take() []Reading {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) == 0 {
		return nil
	}
	out := q.buf
	q.buf, q.spare = q.spare[:0], nil
	if len(out) > maxWriteBatch {
		// Keep store batches bounded (commit latency, memtable size): the
		// rest waits for the next round.
		q.buf = append(q.buf, out[maxWriteBatch:]...)
		clear(out[maxWriteBatch:])
		out = out[:maxWriteBatch]
	}
	close(q.space) // wake pushers waiting for room
	q.space = make(chan struct{})
	return out
}

// maxWriteBatch bounds one store batch of queued readings.
const maxWriteBatch = 16384

// recycle counts a batch as written and returns its slice for reuse.
func (q *qos0Queue) recycle(b []Reading) {
	n := len(b)
	clear(b) // drop string references
	q.mu.Lock()
	q.advance(n)
	if q.spare == nil && cap(b) <= 4*q.size {
		q.spare = b[:0]
	}
	q.mu.Unlock()
}

// advance counts n more readings written and wakes the drains (q.mu held).
func (q *qos0Queue) advance(n int) {
	q.written += uint64(n)
	close(q.progress)
	q.progress = make(chan struct{})
}

// run is the writer goroutine. It exits when ctx is done, after writing
// what is queued (bounded by drainTimeout). Writes never use ctx itself:
// a shutdown must not abort a store write of readings already accepted.
func (q *qos0Queue) run(ctx context.Context) {
	defer q.p.wg.Done()
	for {
		select {
		case <-q.wake:
			q.writeAll(context.Background())
		case <-ctx.Done():
			q.finish()
			return
		}
	}
}

const drainTimeout = 10 * time.Second

// finish writes what is queued and stops the queue. A push can land
// after a writeAll found the queue empty: the queue stops only once it
// is empty under the lock, so such readings are written too (or, past
// drainTimeout, counted as dropped).
func (q *qos0Queue) finish() {
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	for {
		q.writeAll(dctx)
		q.mu.Lock()
		if len(q.buf) == 0 || dctx.Err() != nil {
			lost := len(q.buf)
			clear(q.buf)
			q.buf = q.buf[:0]
			q.stopped = true
			q.advance(lost) // drains waiting for them return
			close(q.space)  // pushers waiting for room see stopped
			q.space = make(chan struct{})
			q.mu.Unlock()
			if lost > 0 {
				q.p.m.dropped.WithLabelValues("shutdown").Add(float64(lost))
			}
			return
		}
		q.mu.Unlock()
	}
}

func (q *qos0Queue) writeAll(ctx context.Context) {
	for {
		batch := q.take()
		if batch == nil {
			return
		}
		q.p.writeQueued(ctx, batch)
		q.recycle(batch)
	}
}

// drain waits until every reading queued before the call is written (or
// ctx ends), however many are queued after it: readings leave in push
// order, so those are written once the written count reaches the pushed
// count of now (the ticket).
func (q *qos0Queue) drain(ctx context.Context) error {
	q.mu.Lock()
	ticket := q.pushed
	q.mu.Unlock()
	for {
		q.mu.Lock()
		if q.written >= ticket || q.stopped {
			q.mu.Unlock()
			return nil
		}
		progress := q.progress
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
