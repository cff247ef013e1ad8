package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Eviction, for the resource monitor under memory or disk pressure.
//
// Evictable data is data whose loss the user accepted and whose changes
// already reached the hub:
//  1. raw sensor readings older than what ingest folded into aggregate keys
//     (MarkAggregated), once those aggregates are acknowledged upstream;
//  2. keys with a TTL (declared ephemeral) whose last change is
//     acknowledged upstream, least recently used first. Keys absent from
//     the hot cache are older than any cached key; among them, the ones
//     expiring soonest go first; then cached keys in LRU order.
//
// Evicting a key is a local DEL that replicates, as Redis propagates its
// evictions to replicas: silently dropping it would be read by a later
// full-state exchange as a delete anyway (its dots are in our context), so
// an explicit delete is the honest form: for the fleet it is an early
// expiry of a key its writer declared ephemeral. Data not yet acknowledged
// upstream is never evicted. A hub never evicts keys: it holds the
// fleet's copy, and its delete would reach every edge.

// EvictResult reports what Evict freed.
type EvictResult struct {
	Keys     int   // keys deleted
	Readings int   // raw sensor readings dropped
	Bytes    int64 // bytes freed, estimated from record sizes
}

// evictScan bounds the evictable keys one Evict call collects, and
// evictScanMax the TTL index entries it inspects for them (keys not yet
// acknowledged upstream are skipped: thousands of them ahead in the index
// must not hide the evictable ones behind).
const (
	evictScan    = 4096
	evictScanMax = 16 * evictScan
)

// Evict frees about want bytes of evictable data and reports what it freed
// (possibly less: only evictable data is touched).
func (s *Store) Evict(ctx context.Context, want int64) (EvictResult, error) {
	var res EvictResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := s.enter(); err != nil {
		return res, err
	}
	defer s.leave()
	n, freed, err := s.evictReadings(ctx, want)
	if err != nil {
		return res, err
	}
	res.Readings, res.Bytes = n, freed
	if res.Bytes < want {
		keys, freed, err := s.evictKeys(ctx, want-res.Bytes)
		res.Keys, res.Bytes = keys, res.Bytes+freed
		if err != nil {
			return res, err
		}
	}
	s.metrics.evictedKeys.Add(float64(res.Keys))
	s.metrics.evictedBytes.Add(float64(res.Bytes))
	if res.Bytes > 0 {
		s.log.Info("evicted", "keys", res.Keys, "readings", res.Readings, "bytes", res.Bytes)
	}
	return res, nil
}

func (s *Store) evictKeys(ctx context.Context, want int64) (int, int64, error) {
	if s.role == crdt.RoleHub {
		return 0, 0, nil // see above
	}
	var cold, hot []string
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTTL}, UpperBound: []byte{prefixTTL + 1}})
	if err != nil {
		return 0, 0, err
	}
	// Evictable candidates (TTL, acknowledged upstream), read once; the
	// write re-checks each under wmu.
	infos := make(map[string]entryInfo)
	examined := 0
	for it.First(); it.Valid() && len(infos) < evictScan && examined < evictScanMax; it.Next() {
		examined++
		_, key, ok := parseTTLKey(it.Key())
		if !ok {
			_ = it.Close()
			return 0, 0, fmt.Errorf("%w: ttl key %x", ErrCorrupt, it.Key())
		}
		info, err := s.entryInfo(key)
		if err != nil {
			_ = it.Close()
			return 0, 0, err
		}
		if !s.isSynced(info.seq) || info.expireAt == 0 {
			continue
		}
		infos[key] = info
		if !s.cache.contains(key) {
			cold = append(cold, key)
		}
	}
	if err := it.Close(); err != nil {
		return 0, 0, err
	}
	for _, k := range s.cache.leastRecent(evictScan / cacheShards) {
		if _, ok := infos[k]; ok {
			hot = append(hot, k)
		}
	}
	var reqs []*writeReq
	var freed int64
	for _, key := range append(cold, hot...) {
		if freed >= want {
			break
		}
		info := infos[key]
		// The delete leaves its op (until the hub acknowledges it and the
		// log is pruned) and a tombstone record: for small values the
		// disk grows at first, so count only what is really freed.
		freed += max(0, int64(info.size)-evictOverhead(key))
		seq := info.seq
		reqs = append(reqs, &writeReq{key: key, build: func(w *keyWriter) error {
			// Re-check under wmu: the key may have changed meanwhile.
			if w.c.seq != seq || w.entry().ExpireAt() == 0 {
				return nil
			}
			return w.mutate(func(e *crdt.Entry, m crdt.Mut) (*crdt.Delta, error) { return e.Delete(m) })
		}})
	}
	if len(reqs) == 0 {
		return 0, 0, nil
	}
	if err := s.write(ctx, reqs...); err != nil {
		return 0, 0, err
	}
	return len(reqs), freed, nil
}

// evictOverhead estimates what deleting key writes: its op (key, dot,
// stamp, framing) and its tombstone record (key, dot).
func evictOverhead(key string) int64 { return int64(2*len(key)) + 64 }

type entryInfo struct {
	seq      uint64
	size     int
	expireAt int64
}

// entryInfo inspects key's entry in the cache or Pebble (the caller holds
// s.enter()).
func (s *Store) entryInfo(key string) (entryInfo, error) {
	var info entryInfo
	get := func(c *cached) { info = entryInfo{seq: c.seq, size: c.size, expireAt: c.exp} }
	if s.cache.inspect(key, get) {
		return info, nil
	}
	c, err := s.loadEntry(key)
	if err != nil {
		return info, err
	}
	get(c)
	return info, nil
}

// Compact flushes the memtables and compacts the whole keyspace, dropping
// deleted and overwritten data (after PruneOps, evictions, expiry).
func (s *Store) Compact(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	s.refreshDiskUsage()
	return nil
}

// DiskUsage returns the bytes the database uses on disk: a fresh
// measurement unless one was taken in the last 10ms (the resource monitor
// samples it; the storage limit check reads the background sample).
func (s *Store) DiskUsage() uint64 {
	now := time.Now().UnixNano()
	if last := s.usageAt.Load(); now-last > int64(10*time.Millisecond) && s.usageAt.CompareAndSwap(last, now) {
		s.withDB(s.refreshDiskUsage)
	}
	return s.diskUsage.Load()
}
