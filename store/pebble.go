package store

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/time/rate"
)

// memoryBudget splits Options.MemoryLimit between Pebble and the store.
//
//	block cache     1/4   (index, filter and data blocks)
//	memtables       1/16 each, at most 2 queued before writes stall
//	hot-entry cache 1/16  (decoded entries, Options.CacheSize)
//
// About half of the limit in total, leaving the rest for iterators, open
// table readers, the Go heap of the other components and GC headroom.
// Measured: 1,000,000 keys under the full preset (64 MiB) peak at about
// 60 MiB RSS for the whole test process (TestMemoryMillionKeys).
type memoryBudget struct {
	blockCache   int64
	memTable     uint64
	memTableStop int
	maxOpenFiles int
}

func budgetFor(limit int64) memoryBudget {
	b := memoryBudget{
		blockCache:   max(limit/4, 256<<10),
		memTable:     uint64(min(max(limit/16, 256<<10), 64<<20)),
		memTableStop: 2,
		// An open sstable costs a few KiB of reader state.
		maxOpenFiles: int(min(max(limit/(64<<10), 64), 1000)),
	}
	return b
}

// walSyncDelay spaces WAL fsyncs while many writers wait on them, so that
// each fsync covers more of them: a pause proportional to the writers in
// flight, capped. A lone writer, or a few, is never delayed. Pebble starts
// the pause when an fsync ends, so under saturation it lengthens every
// cycle: a short cap wins once writers are grouped (store/write.go). SET
// under "always" with 64 writers, medians of 8 runs of 3 s on the
// reference machine: 8 µs per writer capped at 500 µs 44k ops/s; 2 µs
// capped at 64 µs 50k ops/s; no pause 52k in 3 runs, but 16 writers then
// fsync once each more often. The QoS 1 ingest rate did not move.
func walSyncDelay(inflight *atomic.Int64) func() time.Duration {
	return func() time.Duration {
		n := inflight.Load()
		if n < groupSyncWriters {
			return 0
		}
		return min(time.Duration(n)*groupSyncPerWriter, groupSyncMaxDelay)
	}
}

const (
	groupSyncWriters   = 4
	groupSyncPerWriter = 2 * time.Microsecond
	groupSyncMaxDelay  = 64 * time.Microsecond
)

func pebbleOptions(o *Options, inflight *atomic.Int64) *pebble.Options {
	b := budgetFor(o.MemoryLimit)
	po := &pebble.Options{
		FS:                          o.FS,
		CacheSize:                   b.blockCache,
		MemTableSize:                b.memTable,
		MemTableStopWritesThreshold: b.memTableStop,
		MaxOpenFiles:                b.maxOpenFiles,
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      pebbleLogger{o.Logger.With("sub", "pebble")},
	}
	var stalls atomic.Int64
	logStall := &rate.Sometimes{Interval: 10 * time.Second}
	el := pebble.EventListener{
		BackgroundError: func(err error) {
			o.Logger.Error("pebble background error", "err", err)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			// Under a burst this fires many times a second: log a sample.
			stalls.Add(1)
			logStall.Do(func() {
				o.Logger.Warn("pebble write stall: writes wait for flushes or compactions",
					"reason", info.Reason, "stalls_since_last_log", stalls.Swap(0))
			})
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			o.Logger.Warn("slow disk", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
	}
	po.EventListener = &el
	// End every flushed or compacted sstable at a keyspace boundary (the
	// first key byte). Without this an L0 table holds both random data
	// keys and the append-only op log, so every L0 compaction overlaps, and
	// rewrites, the whole op log below it; split, the op log's tables do
	// not overlap the data's and mostly move down without a rewrite.
	po.Experimental.SpanPolicyFunc = keyspaceSpans
	po.WALMinSyncInterval = walSyncDelay(inflight)
	po.EnsureDefaults()
	return po
}

func keyspaceSpans(start []byte) (pebble.SpanPolicy, []byte, error) {
	if len(start) == 0 || start[0] == 0xff {
		return pebble.SpanPolicy{}, nil, nil
	}
	return pebble.SpanPolicy{}, []byte{start[0] + 1}, nil
}

// pebbleLogger adapts slog to Pebble's Logger. Pebble's info logs are
// routine (flushes, compactions): they go to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return (Pebble calls it when its commit pipeline cannot
// continue); the state of the database is unknown, so the process stops.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("pebble fatal error", "err", msg)
	panic("store: pebble fatal error: " + msg)
}
