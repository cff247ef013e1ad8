package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Metadata persistence.
//
// Every local mutation writes, in the same atomic batch as its data and op,
// the replica state: the node's dot counter, the HLC high-water mark, the
// last op sequence number and the live key count (metaState, ~20 bytes).
// Whatever prefix of the WAL survives a crash, the recovered counter and
// HLC are at least those of every surviving op, so a dot is never reused
// with different content and the clock never goes backwards.
//
// The causal context is persisted whole (metaContext) only when remote dots
// change it (ApplyRemote, MergeState) and on Close: the node's own dots are
// always the contiguous range 1..counter and are added back on open.

const stateVersion = 1

var metaStateKey = metaKey(metaState)

func (s *Store) putState(b *pebble.Batch) {
	v := append(s.stateBuf[:0], stateVersion)
	v = binary.AppendUvarint(v, s.counter)
	v = binary.BigEndian.AppendUint64(v, uint64(s.hlc.Last()))
	v = binary.AppendUvarint(v, s.seq)
	v = binary.AppendUvarint(v, uint64(max(s.live, 0)))
	s.stateBuf = v
	_ = b.Set(metaStateKey, v, nil) // Set copies
}

func (s *Store) putContext(b *pebble.Batch) {
	_ = b.Set(metaKey(metaContext), s.ctx.AppendBinary(nil), nil)
}

func putUvarintMeta(b *pebble.Batch, name string, v uint64) {
	_ = b.Set(metaKey(name), binary.AppendUvarint(nil, v), nil)
}

// getMeta returns a copy of a metadata value, or nil if absent.
func (s *Store) getMeta(name string) ([]byte, error) {
	v, closer, err := s.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

func (s *Store) getUvarintMeta(name string) (uint64, error) {
	v, err := s.getMeta(name)
	if err != nil || v == nil {
		return 0, err
	}
	x, n := binary.Uvarint(v)
	if n != len(v) {
		return 0, fmt.Errorf("%w: metadata %q", ErrCorrupt, name)
	}
	return x, nil
}

// recover loads the replica state after Open (Pebble has replayed its WAL).
func (s *Store) recover() error {
	format, err := s.getMeta(metaFormat)
	if err != nil {
		return err
	}
	if format == nil {
		return s.initFresh()
	}
	if v, n := binary.Uvarint(format); n != len(format) || v > layoutVersion {
		return fmt.Errorf("%w: layout version %v is newer than this binary's %d", ErrCorrupt, format, layoutVersion)
	}
	node, err := s.getMeta(metaNode)
	if err != nil {
		return err
	}
	if string(node) != s.node {
		return fmt.Errorf("%w: it belongs to %q, this node is %q", ErrNodeMismatch, node, s.node)
	}
	if err := s.loadActor(); err != nil {
		return err
	}
	if err := s.loadState(); err != nil {
		return err
	}
	if err := s.loadContext(); err != nil {
		return err
	}
	if s.opts.NewActor {
		if err := s.retireActor(); err != nil {
			return err
		}
	}
	pruned, err := s.getUvarintMeta(metaPruned)
	if err != nil {
		return err
	}
	s.pruned.Store(pruned)
	syn, err := s.getUvarintMeta(metaSynced)
	if err != nil {
		return err
	}
	s.synced.Store(syn)
	if err := s.checkOpLogTail(); err != nil {
		return err
	}
	if err := s.countConflicts(); err != nil {
		return err
	}
	if err := s.loadSensors(); err != nil {
		return err
	}
	s.publishSeq()
	// Everything Pebble replayed is on disk.
	s.applied.Store(s.seq)
	s.durable.Store(s.seq)
	return nil
}

// initFresh stamps a new database with the layout version and node id,
// durably, before any data is written.
func (s *Store) initFresh() error {
	s.actor = s.opts.Actor
	if s.actor == "" {
		a, err := NewActor(s.node)
		if err != nil {
			return err
		}
		s.actor = a
	}
	b := s.db.NewBatch()
	defer b.Close()
	putUvarintMeta(b, metaFormat, layoutVersion)
	_ = b.Set(metaKey(metaNode), []byte(s.node), nil)
	_ = b.Set(metaKey(metaActor), []byte(s.actor), nil)
	s.putState(b)
	s.putContext(b)
	return b.Commit(pebble.Sync)
}

func (s *Store) loadState() error {
	v, err := s.getMeta(metaState)
	if err != nil {
		return err
	}
	r := reader{b: v}
	if ver := r.byte(); ver != stateVersion {
		return fmt.Errorf("%w: state version %d", ErrCorrupt, ver)
	}
	s.counter = r.uvarint()
	hw := crdt.Timestamp(r.uint64())
	s.seq = r.uvarint()
	s.live = int64(r.uvarint())
	if err := r.done(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.hlc.Restore(hw)
	return nil
}

func (s *Store) loadContext() error {
	v, err := s.getMeta(metaContext)
	if err != nil {
		return err
	}
	if v != nil {
		c, err := crdt.DecodeContext(v)
		if err != nil {
			return fmt.Errorf("context: %w", err)
		}
		s.ctx = c
	}
	// Our own dots 1..counter are not in the persisted context after local
	// writes; add them back. If a peer knows dots of ours beyond counter
	// (this node's data was restored from an old backup), never reuse them.
	own, err := contextOf(crdt.VersionVector{s.actor: s.counter})
	if err != nil {
		return err
	}
	s.ctx.Merge(own)
	if m := s.ctx.Max(s.actor); m > s.counter {
		s.log.Warn("context knows dots of this node beyond its counter; skipping ahead",
			"counter", s.counter, "max", m)
		s.counter = m
	}
	return nil
}

// contextOf returns a context holding exactly the dots of vv.
//
// crdt has no constructor from a version vector; the context encoding is
// documented as the vector's encoding followed by the cloud (a count of
// node groups), so an empty cloud is one zero byte.
func contextOf(vv crdt.VersionVector) (*crdt.Context, error) {
	return crdt.DecodeContext(append(vv.AppendBinary(nil), 0))
}

// checkOpLogTail makes sure the recovered sequence number is at least the
// last op's (they are written in one batch; this guards against a state
// record written by an older binary).
func (s *Store) checkOpLogTail() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOp}, UpperBound: []byte{prefixOp + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	if it.Last() {
		if seq, ok := opSeqFromKey(it.Key()); ok && seq > s.seq {
			s.log.Warn("op log is ahead of the state record", "state_seq", s.seq, "log_seq", seq)
			s.seq = seq
		}
	}
	return it.Error()
}

func (s *Store) countConflicts() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixConflict}, UpperBound: []byte{prefixConflict + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	s.nConfl = n
	return it.Error()
}

func (s *Store) publishSeq() {
	s.lastSeq.Store(s.seq)
	s.liveKeys.Store(s.live)
}
