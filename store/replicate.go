package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
	"golang.org/x/time/rate"
)

// Replication API for the syncer.
//
// ApplyRemote applies ops from peers idempotently (an op whose dot the
// context already holds is skipped), records the conflicts the joins
// produce, appends the applied ops to the op log under new local seqs (so a
// hub can relay them) and fsyncs, whatever the durability policy, before
// returning: the hub acknowledges after it returns.
//
// ExportState and MergeState/FinishMergeState exchange full state
// (FullSync): the receiver joins each key with the sender's entry under the
// sender's context, then joins every local key the sender did not send
// with an empty entry (so data the sender saw and removed dies), then
// merges the sender's context into its own.

// ApplyResult reports what ApplyRemote did.
type ApplyResult struct {
	Applied   int             // ops applied
	Skipped   int             // ops whose dot was already seen
	Rejected  int             // ops whose delta could not be decoded (logged, not applied)
	Skewed    int             // ops whose HLC was beyond MaxClockSkew (applied; clock not adopted)
	Conflicts []crdt.Conflict // conflicts the ops created
	LastSeq   uint64          // the local seq of the last op logged
}

var logSometimes = rate.Sometimes{Interval: 10e9}

// ApplyRemote applies ops received from peers in one durable batch.
func (s *Store) ApplyRemote(ctx context.Context, ops []Op) (ApplyResult, error) {
	var res ApplyResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := s.enter(); err != nil {
		return res, err
	}
	defer s.leave()
	if p := s.walErr.Load(); p != nil {
		return res, *p
	}
	s.wmu.Lock()
	b := s.db.NewBatch()
	st := newStager(s)
	for i := range ops {
		if err := s.applyRemoteOp(b, st, &ops[i], &res); err != nil {
			_ = b.Close()
			if res.Applied > 0 {
				// Earlier ops changed the state in memory: stop writing.
				st.invalidate()
				err = s.failWAL(err)
			}
			s.wmu.Unlock()
			return ApplyResult{}, err
		}
	}
	defer func() {
		s.metrics.remoteApplied.Add(float64(res.Applied))
		s.metrics.remoteSkipped.Add(float64(res.Skipped))
		s.metrics.remoteBad.Add(float64(res.Rejected))
		s.metrics.clockSkew.Add(float64(res.Skewed))
	}()
	if res.Applied == 0 {
		s.wmu.Unlock()
		_ = b.Close()
		res.LastSeq = s.lastSeq.Load()
		return res, nil
	}
	st.flush(b)
	s.stageConflicts(b, res.Conflicts)
	s.bumpCounterFromContext()
	s.putState(b)
	s.putContext(b)
	w, err := s.commitOps(b, s.seq, true)
	if err != nil {
		st.invalidate()
		s.wmu.Unlock()
		return ApplyResult{}, s.failWAL(err)
	}
	st.bump()
	s.publishSeq()
	res.LastSeq = s.seq
	s.wmu.Unlock()
	if err := s.finishCommit(w); err != nil {
		return ApplyResult{}, err
	}
	return res, nil
}

// applyRemoteOp applies one remote op into st and b (wmu held). It fails
// only when the key's entry cannot be read.
func (s *Store) applyRemoteOp(b *pebble.Batch, st *stager, op *Op, res *ApplyResult) error {
	if s.ctx.Contains(op.Dot) {
		res.Skipped++
		return nil
	}
	d, err := crdt.DecodeDelta(op.Delta)
	if err != nil {
		res.Rejected++
		logSometimes.Do(func() {
			s.log.Error("remote op rejected: bad delta", "dot", op.Dot.String(), "key", op.Key, "err", err)
		})
		return nil
	}
	c, err := st.entry(op.Key)
	if err != nil {
		return err
	}
	if _, err := s.hlc.Update(op.Stamp.TS); errors.Is(err, crdt.ErrClockSkew) {
		res.Skewed++
		logSometimes.Do(func() { s.log.Warn("remote clock ahead", "node", op.Stamp.Node, "err", err) })
	}
	strat := s.opts.Resolver.For(op.Key)
	var confl []crdt.Conflict
	s.cache.mutate(op.Key, func() { confl = c.e.ApplyDelta(d, s.ctx, strat) })
	s.ctx.AddDots(d.Ctx)
	s.ctx.Add(op.Dot)
	s.seq++
	logged := *op
	logged.Seq = s.seq
	s.recBuf = logged.AppendBinary(s.recBuf[:0])
	s.keyBuf = opKey(s.keyBuf, s.seq)
	_ = b.Set(s.keyBuf, s.recBuf, nil)
	st.touch(op.Key, s.seq)
	for i := range confl {
		confl[i].Key = op.Key
	}
	res.Conflicts = append(res.Conflicts, confl...)
	res.Applied++
	return nil
}

// bumpCounterFromContext makes sure this node never reuses a dot a peer
// has seen (wmu held): if the context holds dots of ours beyond the
// counter (our data directory was restored from an older copy), skip past
// them.
func (s *Store) bumpCounterFromContext() {
	if m := s.ctx.Max(s.actor); m > s.counter {
		s.log.Warn("peers know dots of this node beyond its counter; skipping ahead",
			"counter", s.counter, "max", m)
		s.counter = m
	}
}

// stager collects the entries a remote apply or state merge changes, to
// write each once (wmu held).
type stager struct {
	s       *Store
	entries map[string]*staged
	order   []string
}

type staged struct {
	c       *cached
	wasLive bool
	oldExp  int64
	seq     uint64
	dirty   bool
}

func newStager(s *Store) *stager {
	return &stager{s: s, entries: make(map[string]*staged)}
}

func (st *stager) entry(key string) (*cached, error) {
	if e := st.entries[key]; e != nil {
		return e.c, nil
	}
	c, err := st.s.loadForWrite(key)
	if err != nil {
		return nil, err
	}
	st.entries[key] = &staged{c: c, wasLive: c.live, oldExp: c.exp, seq: c.seq}
	st.order = append(st.order, key)
	return c, nil
}

// touch marks key changed; seq > 0 records the op that changed it.
func (st *stager) touch(key string, seq uint64) {
	e := st.entries[key]
	e.dirty = true
	if seq > 0 {
		e.seq = seq
	}
}

func (st *stager) flush(b *pebble.Batch) {
	for _, k := range st.order {
		if e := st.entries[k]; e.dirty {
			st.s.stageEntry(b, k, e.c, e.seq, e.wasLive, e.oldExp)
		}
	}
}

func (st *stager) bump() {
	for _, k := range st.order {
		st.s.cache.bump(k)
	}
}

func (st *stager) invalidate() {
	for _, k := range st.order {
		st.s.cache.remove(k)
	}
}

// Context returns a copy of the replica's causal context: every dot seen.
func (s *Store) Context() *crdt.Context {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.ctx.Clone()
}

// Seen reports what the replica's context holds of node's dots: the
// highest n such that 1..n were all seen, and the highest seen. Unlike
// Context it copies nothing: a hub asks it for one edge at every Hello and
// applied batch, and its context names every edge of the fleet.
func (s *Store) Seen(node string) (contiguous, highest uint64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.ctx.Contiguous(node), s.ctx.Max(node)
}

// VersionVector returns the contiguous part of the replica's context.
func (s *Store) VersionVector() crdt.VersionVector {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.ctx.VersionVector()
}

// StateEntry is one key's full state in a FullSync.
type StateEntry struct {
	Key   string
	Entry []byte // encoded crdt.Entry
}

// ExportState calls fn with every key's encoded entry in ascending key
// order, from a consistent snapshot, and returns the context of that
// snapshot. fn must not retain the entry bytes.
func (s *Store) ExportState(ctx context.Context, fn func(key string, entry []byte) error) (*crdt.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.wmu.Lock()
	snap := s.db.NewSnapshot()
	rctx := s.ctx.Clone()
	s.wmu.Unlock()
	defer snap.Close()
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{prefixData}, UpperBound: []byte{prefixData + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var buf []byte
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		key := string(it.Key()[1:])
		raw, err := s.recordEntryBytes(&buf, v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		if err := fn(key, raw); err != nil {
			return nil, err
		}
	}
	return rctx, it.Error()
}

// recordEntryBytes returns the encoded entry inside a data record.
func (s *Store) recordEntryBytes(buf *[]byte, v []byte) ([]byte, error) {
	_, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, fmt.Errorf("%w: record seq", ErrCorrupt)
	}
	raw, err := decodeValue(*buf, v[n:], maxRecordDecode)
	if err != nil {
		return nil, err
	}
	if cap(raw) > cap(*buf) {
		*buf = raw[:0]
	}
	return raw, nil
}

// MergeState joins a chunk of a peer's full state (whose context is
// remoteCtx) into the store, durably, and returns the conflicts.
//
// Chunks come in ascending key order, as ExportState produces them. A chunk
// covers the key range (after, last key of the chunk]: after is the last
// key of the previous chunk ("" for the first). Local keys in that range
// the chunk lacks are joined with an empty entry, so data the peer saw and
// removed dies; no set of the peer's keys is ever held in memory. Call
// FinishMergeState with the last chunk's last key to cover the rest of the
// keyspace and merge the peer's context.
func (s *Store) MergeState(ctx context.Context, remoteCtx *crdt.Context, after string, chunk []StateEntry) ([]crdt.Conflict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(chunk) == 0 {
		return nil, nil
	}
	remotes := make([]*crdt.Entry, len(chunk))
	prev := after
	for i, se := range chunk {
		if se.Key <= prev && !(i == 0 && after == "") {
			return nil, fmt.Errorf("%w: state chunk keys not ascending after %q", ErrSyntax, prev)
		}
		prev = se.Key
		e, err := crdt.DecodeEntry(se.Entry)
		if err != nil {
			return nil, fmt.Errorf("state of key %q: %w", se.Key, err)
		}
		remotes[i] = e
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	all, err := s.mergeMissing(ctx, remoteCtx, after, chunk[len(chunk)-1].Key, func(k string) bool {
		_, found := slices.BinarySearchFunc(chunk, k, func(e StateEntry, k string) int { return strings.Compare(e.Key, k) })
		return found
	})
	if err != nil {
		return all, err
	}
	confl, err := s.mergeEntries(remoteCtx, len(chunk), func(i int) (string, *crdt.Entry) {
		return chunk[i].Key, remotes[i]
	}, false)
	return append(all, confl...), err
}

// FinishMergeState ends a FullSync: local keys after the last chunk's last
// key (after; "" if the peer sent no key) are joined with an empty entry,
// then the peer's context is merged into ours, durably.
func (s *Store) FinishMergeState(ctx context.Context, remoteCtx *crdt.Context, after string) ([]crdt.Conflict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	all, err := s.mergeMissing(ctx, remoteCtx, after, "", nil)
	if err != nil {
		return all, err
	}
	confl, err := s.mergeEntries(remoteCtx, 0, nil, true)
	return append(all, confl...), err
}

// mergeMissingBatch bounds the keys merged per batch by mergeMissing.
const mergeMissingBatch = 256

// mergeMissing joins every local key in (after, upTo] ("" upTo: to the
// end) that present does not report with an empty entry, in batches.
func (s *Store) mergeMissing(ctx context.Context, remoteCtx *crdt.Context, after, upTo string, present func(string) bool) ([]crdt.Conflict, error) {
	var all []crdt.Conflict
	lo := dataKey(nil, after)
	if after != "" {
		lo = append(lo, 0) // exclusive
	}
	hi := []byte{prefixData + 1}
	if upTo != "" {
		hi = append(dataKey(nil, upTo), 0) // inclusive
	}
	for {
		if err := ctx.Err(); err != nil {
			return all, err
		}
		var missing []string
		it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return all, err
		}
		for it.First(); it.Valid() && len(missing) < mergeMissingBatch; it.Next() {
			lo = append(append(lo[:0], it.Key()...), 0)
			if k := string(it.Key()[1:]); present == nil || !present(k) {
				missing = append(missing, k)
			}
		}
		done := !it.Valid()
		if err := it.Close(); err != nil {
			return all, err
		}
		if len(missing) > 0 {
			confl, err := s.mergeEntries(remoteCtx, len(missing), func(i int) (string, *crdt.Entry) {
				return missing[i], new(crdt.Entry)
			}, false)
			all = append(all, confl...)
			if err != nil {
				return all, err
			}
		}
		if done {
			return all, nil
		}
	}
}

// mergeEntries joins n remote entries (given by at) under remoteCtx and,
// if finish, merges remoteCtx into the context; one durable batch.
func (s *Store) mergeEntries(remoteCtx *crdt.Context, n int, at func(i int) (string, *crdt.Entry), finish bool) ([]crdt.Conflict, error) {
	if p := s.walErr.Load(); p != nil {
		return nil, *p
	}
	s.wmu.Lock()
	b := s.db.NewBatch()
	st := newStager(s)
	var all []crdt.Conflict
	for i := range n {
		key, remote := at(i)
		c, err := st.entry(key)
		if err != nil {
			// Entries merged so far changed only in the cache (the
			// context is merged at the end): drop them, Pebble has the
			// old state.
			st.invalidate()
			s.wmu.Unlock()
			_ = b.Close()
			return nil, err
		}
		before := c.e.AppendBinary(nil)
		strat := s.opts.Resolver.For(key)
		var confl []crdt.Conflict
		s.cache.mutate(key, func() { confl = c.e.MergeState(remote, s.ctx, remoteCtx, strat) })
		if !bytes.Equal(before, c.e.AppendBinary(nil)) {
			st.touch(key, 0) // state from a peer: no local op
		}
		for j := range confl {
			confl[j].Key = key
		}
		all = append(all, confl...)
	}
	st.flush(b)
	s.stageConflicts(b, all)
	if finish {
		s.ctx.Merge(remoteCtx)
		s.bumpCounterFromContext()
		s.putState(b)
		s.putContext(b)
	}
	if b.Empty() {
		s.wmu.Unlock()
		_ = b.Close()
		return all, nil
	}
	w, err := s.commitBatch(b, true)
	if err != nil {
		st.invalidate()
		s.wmu.Unlock()
		return nil, s.failWAL(err)
	}
	st.bump()
	s.publishSeq()
	s.wmu.Unlock()
	if err := s.finishCommit(w); err != nil {
		return nil, err
	}
	return all, nil
}
