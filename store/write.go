package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// The local write path.
//
// A write names one or more keys (writeReq). Under wmu, for each key the
// store loads the entry (hot cache or Pebble), checks the limits, lets the
// request build deltas with fresh dots and HLC stamps (keyWriter.mutate),
// applies each delta to the entry in place (under the cache shard lock, so
// readers never see half a delta), and stages the new record, one op per
// delta, the TTL index change and the replica state in one Pebble batch.
// The batch is committed (commit.go) before wmu is released; the fsync, if
// any, is awaited after.

// writeReq is a local write of one key.
type writeReq struct {
	key string
	// grows: the write may add data (refused at Critical and when storage
	// is full). creates: it may create the key (checked against MaxKeys).
	grows, creates bool
	// adds bounds the bytes the write adds to the entry (MaxEntrySize).
	adds int
	// build calls w.mutate for each delta. Returning an error after a
	// mutate still commits the applied deltas (they are valid ops).
	build func(w *keyWriter) error
	// op replaces build on hot paths: a request type that embeds writeReq
	// and implements writeOp costs one allocation, where a closure and
	// the variables it captures cost several.
	op writeOp
	// staleTTL, if set, is a TTL index time for key to drop unless it is
	// still the entry's expiry (the sweeper's cleanup).
	staleTTL int64

	err error // result of this request
	kw  keyWriter
}

// writeOp builds a request's deltas (see writeReq.build).
type writeOp interface {
	build(w *keyWriter) error
}

// keyWriter is what a writeReq's build sees.
type keyWriter struct {
	s      *Store
	key    string
	c      *cached
	now    int64
	strat  crdt.Strategy
	ops    []pendingOp
	opsArr [1]pendingOp // most writes make one op: no allocation
}

type pendingOp struct {
	dot   crdt.Dot
	stamp crdt.Stamp
	delta *crdt.Delta
}

// entry returns the key's current state (read-only).
func (w *keyWriter) entry() *crdt.Entry { return w.c.e }

// mutate builds one delta with fn (from the current entry and a fresh
// dot/stamp) and applies it. A nil delta means no change.
func (w *keyWriter) mutate(fn func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error)) error {
	m := crdt.Mut{
		Dot:      crdt.Dot{Node: w.s.actor, Counter: w.s.counter + uint64(len(w.ops)) + 1},
		Stamp:    crdt.Stamp{TS: w.s.hlc.Now(), Node: w.s.actor, Role: w.s.role},
		Strategy: w.strat,
		Now:      w.now,
	}
	d, err := fn(w.c.e, m)
	if err != nil || d == nil {
		return err
	}
	w.s.cache.mutate(w.key, func() { w.c.e.ApplyDelta(d, w.s.ctx, w.strat) })
	w.s.ctx.AddDots(d.Ctx)
	w.ops = append(w.ops, pendingOp{dot: m.Dot, stamp: m.Stamp, delta: d})
	return nil
}

// Writers are combined (leader/follower, as in LevelDB and RocksDB): a
// writer queues its requests; the first one in an empty queue becomes the
// leader, takes wmu, drains the queue into one Pebble batch, applies it,
// hands leadership to the next queued writer, releases wmu, waits for the
// fsync and wakes the writers of its group. Under load a whole group costs
// one mutex handoff, one Pebble commit and one fsync wait instead of one
// each per writer; a lone writer is its own leader at once.

// pendingWrite is one write call waiting in the queue.
type pendingWrite struct {
	reqs     []*writeReq
	one      [1]*writeReq  // reqs of a one-request write
	wake     chan struct{} // buffered: leadership or completion
	lead     bool          // set (under qmu) when made leader
	finished bool          // set by the leader that committed it
	err      error
}

var pendingWrites = sync.Pool{New: func() any { return &pendingWrite{wake: make(chan struct{}, 1)} }}

// release returns pw to the pool; its wake channel is drained (every
// send to it was received).
func (pw *pendingWrite) release() {
	*pw = pendingWrite{wake: pw.wake}
	pendingWrites.Put(pw)
}

// maxGroupReqs bounds the requests one leader commits at once.
const maxGroupReqs = 512

// write runs reqs in one atomic batch (possibly shared with other writers'
// requests). The caller holds s.enter(). It returns the first error among
// reqs, or the commit error.
func (s *Store) write(ctx context.Context, reqs ...*writeReq) error {
	grows := false
	for _, r := range reqs {
		if err := s.checkKey(r.key); err != nil {
			return err
		}
		grows = grows || r.grows
	}
	if err := s.checkWrite(ctx, grows); err != nil {
		return err
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	pw := pendingWrites.Get().(*pendingWrite)
	// Copy: the caller's variadic slice then stays on its stack.
	pw.reqs = append(pw.one[:0], reqs...)
	defer pw.release()
	s.qmu.Lock()
	s.queue = append(s.queue, pw)
	if !s.leading {
		s.leading, pw.lead = true, true
	}
	leader := pw.lead // a later leader may set pw.lead: read it under qmu
	s.qmu.Unlock()
	if !leader {
		<-pw.wake
		if pw.finished {
			return pw.err
		}
	}
	s.lead()
	return pw.err
}

// lead commits the queued writes as one group (the caller is the leader).
func (s *Store) lead() {
	s.wmu.Lock()
	s.qmu.Lock()
	n, nreqs := 0, 0
	for n < len(s.queue) && (n == 0 || nreqs+len(s.queue[n].reqs) <= maxGroupReqs) {
		nreqs += len(s.queue[n].reqs)
		n++
	}
	// Take the group out of the queue, keeping the queue's storage for the
	// next writers (a group copied to the stack costs no allocation).
	var groupBuf [32]*pendingWrite
	group := append(groupBuf[:0], s.queue[:n]...)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	s.qmu.Unlock()

	w, err := s.applyGroup(group, nreqs)

	// Hand over leadership before releasing wmu: the next group forms
	// while this one waits for its fsync.
	s.qmu.Lock()
	if len(s.queue) > 0 {
		next := s.queue[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		s.leading = false
	}
	s.qmu.Unlock()
	s.wmu.Unlock()

	if err == nil && w.b != nil {
		err = s.finishCommit(w)
	}
	self := group[0] // the leader is always first in its group
	for _, pw := range group {
		pw.err = err
		if err == nil {
			pw.err = firstErr(pw.reqs)
		}
		pw.finished = true
		if pw != self {
			pw.wake <- struct{}{}
		}
	}
}

// applyGroup stages every request of group into one batch and applies it
// (wmu held). A zero commitWait means there was nothing to write.
func (s *Store) applyGroup(group []*pendingWrite, nreqs int) (commitWait, error) {
	if p := s.walErr.Load(); p != nil {
		return commitWait{}, *p
	}
	b := s.db.NewBatch()
	now := s.opts.Clock()
	nops := 0
	var touched []string
	var loaded map[string]*cached
	if nreqs > 1 {
		// A key named twice must see its first change, even when its entry
		// is too large for the hot cache.
		loaded = make(map[string]*cached, nreqs)
	}
	for _, pw := range group {
		for _, r := range pw.reqs {
			n, err := s.writeKey(b, r, now, loaded)
			r.err = err
			nops += n
			if n > 0 || r.staleTTL != 0 {
				touched = append(touched, r.key)
			}
		}
	}
	if b.Empty() {
		_ = b.Close()
		return commitWait{}, nil
	}
	s.putState(b)
	w, err := s.commitOps(b, s.seq, false)
	if err != nil {
		// The in-memory state is ahead of Pebble now: stop writing.
		for _, k := range touched {
			s.cache.remove(k)
		}
		return commitWait{}, s.failWAL(err)
	}
	for _, k := range touched {
		s.cache.bump(k)
	}
	s.publishSeq()
	s.metrics.writes.Add(float64(nops))
	return w, nil
}

func firstErr(reqs []*writeReq) error {
	for _, r := range reqs {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// writeKey stages one request into b (wmu held) and returns its op count.
func (s *Store) writeKey(b *pebble.Batch, r *writeReq, now int64, loaded map[string]*cached) (int, error) {
	c := loaded[r.key]
	if c == nil {
		var err error
		if c, err = s.loadForWrite(r.key); err != nil {
			return 0, err
		}
		if loaded != nil {
			loaded[r.key] = c
		}
	}
	wasLive := c.live
	if r.creates && !wasLive && s.opts.MaxKeys > 0 && s.live >= s.opts.MaxKeys {
		return 0, fmt.Errorf("%w: %d keys (max %d)", ErrTooManyKeys, s.live, s.opts.MaxKeys)
	}
	if c.raw+r.adds > s.opts.MaxEntrySize {
		return 0, fmt.Errorf("%w: key %q would exceed %d bytes", ErrValueTooLarge, r.key, s.opts.MaxEntrySize)
	}
	oldExp := c.exp
	// The keyWriter lives in the request (already on the heap).
	kw := &r.kw
	*kw = keyWriter{s: s, key: r.key, c: c, now: now, strat: s.opts.Resolver.For(r.key)}
	kw.ops = kw.opsArr[:0]
	var err error
	if r.op != nil {
		err = r.op.build(kw)
	} else {
		err = r.build(kw)
	}
	if len(kw.ops) == 0 {
		if r.staleTTL != 0 && r.staleTTL != oldExp {
			_ = b.Delete(ttlKey(s.keyBuf, r.staleTTL, r.key), nil)
		}
		return 0, err
	}
	for _, op := range kw.ops {
		s.counter = op.dot.Counter
		s.seq++
		s.deltaBuf = op.delta.AppendBinary(s.deltaBuf[:0])
		o := Op{Seq: s.seq, Dot: op.dot, Stamp: op.stamp, Key: r.key, Delta: s.deltaBuf}
		s.recBuf = o.AppendBinary(s.recBuf[:0])
		s.keyBuf = opKey(s.keyBuf, s.seq)
		_ = b.Set(s.keyBuf, s.recBuf, nil)
	}
	s.stageEntry(b, r.key, c, s.seq, wasLive, oldExp)
	if r.staleTTL != 0 && r.staleTTL != oldExp && r.staleTTL != c.exp {
		_ = b.Delete(ttlKey(s.keyBuf, r.staleTTL, r.key), nil)
	}
	return len(kw.ops), err
}

// stageEntry writes c's record, the TTL index change and the live-key
// count into b, and refreshes the cache (wmu held).
func (s *Store) stageEntry(b *pebble.Batch, key string, c *cached, seq uint64, wasLive bool, oldExp int64) {
	s.entBuf = c.e.AppendBinary(s.entBuf[:0])
	s.recBuf = binary.AppendUvarint(s.recBuf[:0], seq)
	s.recBuf = s.valueCodecNow().appendValue(s.recBuf, s.entBuf)
	size, raw := len(s.recBuf), len(s.entBuf)
	s.keyBuf = dataKey(s.keyBuf, key)
	_ = b.Set(s.keyBuf, s.recBuf, nil)
	newExp := c.e.ExpireAt()
	if newExp != oldExp {
		if oldExp != 0 {
			_ = b.Delete(ttlKey(s.keyBuf, oldExp, key), nil)
		}
		if newExp != 0 {
			_ = b.Set(ttlKey(s.keyBuf, newExp, key), nil, nil)
		}
	}
	isLive := entryLive(c.e)
	switch {
	case isLive && !wasLive:
		s.live++
	case !isLive && wasLive:
		s.live--
	}
	// seq and size change under the shard lock: Evict reads them in view.
	s.cache.update(key, c, func() { c.seq, c.size, c.raw, c.live, c.exp = seq, size, raw, isLive, newExp }, func() int64 { return c.cost(key) })
}

// entryLive reports whether the key exists, ignoring expiry (an expired key
// counts until the sweeper deletes it, as in Redis). Kind(0) sees no
// expiry in the past.
func entryLive(e *crdt.Entry) bool {
	return e.Kind(0) != crdt.KindNone
}

func (s *Store) checkKey(key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	if len(key) > s.opts.MaxKeySize {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrKeyTooLarge, len(key), s.opts.MaxKeySize)
	}
	return nil
}

func (s *Store) checkValue(v []byte) error {
	if len(v) > s.opts.MaxValueSize {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrValueTooLarge, len(v), s.opts.MaxValueSize)
	}
	return nil
}

// loadForWrite returns key's entry for mutation (wmu held): the cached one
// if any, else decoded from Pebble.
func (s *Store) loadForWrite(key string) (*cached, error) {
	if c, ok := s.cache.peek(key); ok {
		s.metrics.cacheHits.Inc()
		return c, nil
	}
	s.metrics.cacheMisses.Inc()
	return s.loadEntry(key)
}

// loadEntry decodes key's record from Pebble; an absent key is an empty
// entry.
func (s *Store) loadEntry(key string) (*cached, error) {
	k := dataKey(make([]byte, 0, 1+len(key)), key)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return &cached{e: new(crdt.Entry)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", key, err)
	}
	defer closer.Close()
	c, err := s.decodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	return c, nil
}

// maxRecordDecode bounds the decoded size of a stored entry. It is not
// MaxEntrySize: remote applies may grow an entry past the local limit
// (convergence first) and it must stay readable. decodeValue also bounds
// the size by the input's length, so garbage cannot size an allocation.
const maxRecordDecode = 1<<31 - 1

// decodeRecord decodes a data record: uvarint seq, then the compact value
// of the encoded entry.
func (s *Store) decodeRecord(v []byte) (*cached, error) {
	seq, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, fmt.Errorf("%w: record seq", ErrCorrupt)
	}
	raw, err := decodeValue(nil, v[n:], maxRecordDecode)
	if err != nil {
		return nil, err
	}
	e, err := crdt.DecodeEntry(raw)
	if err != nil {
		return nil, err
	}
	return &cached{e: e, seq: seq, size: len(v), raw: len(raw), live: entryLive(e), exp: e.ExpireAt()}, nil
}

// read calls fn with key's entry and the current time. fn must not retain
// the entry. The caller must not hold s.enter().
func (s *Store) read(ctx context.Context, key string, fn func(e *crdt.Entry, now int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	now := s.opts.Clock()
	var ferr error
	if s.cache.view(key, func(c *cached) { ferr = fn(c.e, now) }) {
		s.metrics.cacheHits.Inc()
		return ferr
	}
	s.metrics.cacheMisses.Inc()
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	gen := s.cache.generation(key)
	c, err := s.loadEntry(key)
	if err != nil {
		return err
	}
	ferr = fn(c.e, now)
	if c.size > 0 {
		s.cache.fill(key, c, c.cost(key), gen)
	}
	return ferr
}
