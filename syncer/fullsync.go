package syncer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// Full-state transfer (FullSync), the sender's exporter and the receiver's
// stager.
//
// The sender reads one consistent snapshot (store.ExportState) in a
// goroutine and hands chunks over a channel of capacity one, so it runs
// at most one chunk ahead of the window: memory is bounded by the chunk
// size whatever the state size. The snapshot's causal context is only
// known when the iteration ends, and the receiver needs it before it may
// merge anything (the join of each key depends on it), so the context
// travels in the last chunk and the receiver stages earlier chunks
// durably (x records) until it arrives. Before the last chunk goes out the
// sender fsyncs its WAL: nothing the receiver merges can be lost by a
// crash of the sender (its dots would otherwise be reused).

// exportChunk is one chunk (or the error that ended the export).
type exportChunk struct {
	msg *FullSync
	gen uint64 // the state generation read before the snapshot
	err error
}

type exporter struct {
	snapshot uint64
	cancel   context.CancelFunc
	ch       chan exportChunk
	done     chan struct{}
}

// exportLimits bound a chunk.
type exportLimits struct {
	bytes   int
	entries int
}

// snapshotGuard, if set, is called before the snapshot is taken: it
// returns the state generation the snapshot will contain and a release
// function, called once the snapshot exists (the hub keeps FullSync
// merges out of snapshots with it).
type snapshotGuard func() (gen uint64, release func())

// startExporter starts reading a snapshot of st as FullSync chunks. The
// caller must stop it.
func startExporter(ctx context.Context, wg *sync.WaitGroup, st Store, snapshot uint64, lim exportLimits, guard snapshotGuard) *exporter {
	ctx, cancel := context.WithCancel(ctx)
	x := &exporter{snapshot: snapshot, cancel: cancel, ch: make(chan exportChunk, 1), done: make(chan struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(x.done)
		x.run(ctx, st, lim, guard)
	}()
	return x
}

func (x *exporter) send(ctx context.Context, c exportChunk) error {
	select {
	case x.ch <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (x *exporter) run(ctx context.Context, st Store, lim exportLimits, guard snapshotGuard) {
	var g uint64
	release := func() {}
	if guard != nil {
		g, release = guard()
	}
	var once sync.Once
	defer once.Do(release)
	// Every op published before the snapshot is in it; reading LastSeq
	// first makes SnapSeq conservative (ops after it are resent as deltas
	// and skipped).
	snapSeq := st.LastSeq()
	cur := &FullSync{Snapshot: x.snapshot, SnapSeq: snapSeq}
	size, keys := 0, uint64(0)
	rctx, err := st.ExportState(ctx, func(key string, entry []byte) error {
		once.Do(release) // the snapshot exists once the first entry is read
		cur.Entries = append(cur.Entries, store.StateEntry{Key: key, Entry: append([]byte(nil), entry...)})
		size += len(key) + len(entry) + 8
		keys++
		if size < lim.bytes && len(cur.Entries) < lim.entries {
			return nil
		}
		if err := x.send(ctx, exportChunk{msg: cur, gen: g}); err != nil {
			return err
		}
		cur = &FullSync{Snapshot: x.snapshot, Chunk: cur.Chunk + 1, SnapSeq: snapSeq}
		size = 0
		return nil
	})
	once.Do(release)
	if err == nil {
		// Everything in the snapshot must be durable before its context
		// leaves this node.
		err = st.SyncWAL(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			_ = x.send(ctx, exportChunk{err: fmt.Errorf("syncer: export state: %w", err)})
		}
		return
	}
	cur.Last, cur.Chunks, cur.Keys, cur.Context = true, cur.Chunk+1, keys, rctx
	_ = x.send(ctx, exportChunk{msg: cur, gen: g})
}

// stop cancels the export and waits for its goroutine.
func (x *exporter) stop() {
	if x == nil {
		return
	}
	x.cancel()
	<-x.done
}

// stager keeps the chunks of a FullSync being received, under
// <prefix>/<chunk index> in the store's syncer state, until the last one
// (with the context) arrives; then merges them in order. The last chunk
// itself is merged from memory, so a one-chunk FullSync writes nothing.
type stager struct {
	st     Store
	prefix string
	n      uint64 // chunks staged for the current snapshot
}

func (s *stager) name(i uint64) string { return s.prefix + "/" + strconv.FormatUint(i, 10) }

// clear deletes staged chunks, including those a crash left behind
// (they are numbered from 0 without gaps).
func (s *stager) clear(ctx context.Context) error {
	for i := uint64(0); ; i++ {
		_, err := s.st.SyncState(ctx, s.name(i))
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return err
		}
		if err := s.st.SetSyncState(ctx, s.name(i), nil); err != nil {
			return err
		}
	}
	s.n = 0
	return nil
}

// stage stores chunk m durably (chunk 0 starts a new snapshot).
func (s *stager) stage(ctx context.Context, m *FullSync) error {
	if m.Chunk == 0 && s.n > 0 {
		if err := s.clear(ctx); err != nil {
			return err
		}
	}
	if m.Chunk != s.n {
		return fmt.Errorf("%w: chunk %d staged after %d chunks", ErrProtocol, m.Chunk, s.n)
	}
	if m.Last {
		return nil
	}
	if err := s.st.SetSyncState(ctx, s.name(m.Chunk), Encode(m)); err != nil {
		return err
	}
	s.n++
	return nil
}

// merge joins the staged chunks and last (the final chunk, with the
// context) into the store, then deletes the staged chunks. onKeys is
// called with each chunk's keys after it is merged.
func (s *stager) merge(ctx context.Context, last *FullSync, onKeys func([]string)) ([]crdt.Conflict, error) {
	if last.Chunk != s.n {
		return nil, fmt.Errorf("%w: last chunk %d after %d staged", ErrProtocol, last.Chunk, s.n)
	}
	var all []crdt.Conflict
	after := ""
	mergeChunk := func(m *FullSync) error {
		confl, err := s.st.MergeState(ctx, last.Context, after, m.Entries)
		all = append(all, confl...)
		if err != nil {
			return err
		}
		if len(m.Entries) > 0 {
			after = m.Entries[len(m.Entries)-1].Key
			if onKeys != nil {
				keys := make([]string, len(m.Entries))
				for i := range m.Entries {
					keys[i] = m.Entries[i].Key
				}
				onKeys(keys)
			}
		}
		return nil
	}
	for i := range s.n {
		raw, err := s.st.SyncState(ctx, s.name(i))
		if err != nil {
			return all, fmt.Errorf("staged chunk %d: %w", i, err)
		}
		msg, err := Decode(raw)
		if err != nil {
			return all, fmt.Errorf("staged chunk %d: %w", i, err)
		}
		m, ok := msg.(*FullSync)
		if !ok || m.Snapshot != last.Snapshot || m.Chunk != i {
			return all, fmt.Errorf("%w: staged chunk %d is not part of snapshot %d", ErrProtocol, i, last.Snapshot)
		}
		if err := mergeChunk(m); err != nil {
			return all, err
		}
	}
	if err := mergeChunk(last); err != nil {
		return all, err
	}
	confl, err := s.st.FinishMergeState(ctx, last.Context, after)
	all = append(all, confl...)
	if err != nil {
		return all, err
	}
	return all, s.clear(ctx)
}
