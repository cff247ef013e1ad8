package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

func TestEvictNeverRemovesUnsynced(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for i := range 20 {
		_, err := s.SetWith(ctx, fmt.Sprint("ttl", i), make([]byte, 100), SetOptions{TTL: time.Hour})
		check(t, err)
		check(t, s.Set(ctx, fmt.Sprint("keep", i), make([]byte, 100)))
	}
	res := must[EvictResult](t)(s.Evict(ctx, 1<<20))
	if res.Keys != 0 || res.Bytes != 0 {
		t.Fatalf("evicted unsynced data: %+v", res)
	}
	// The hub acknowledged the first 10 TTL keys' ops (seqs 1, 3, ..., 19).
	check(t, s.SyncWAL(ctx))
	check(t, s.MarkSynced(ctx, 20))
	res = must[EvictResult](t)(s.Evict(ctx, 1<<20))
	if res.Keys != 10 || res.Bytes < 500 { // net of each delete's op and tombstone
		t.Fatalf("evicted %+v, want the 10 synced TTL keys", res)
	}
	for i := range 20 {
		n := must[int](t)(s.Exists(ctx, fmt.Sprint("ttl", i), fmt.Sprint("keep", i)))
		if want := 1 + boolToInt(i >= 10); n != want {
			t.Fatalf("key %d: %d exist, want %d", i, n, want)
		}
	}
	// Eviction is a replicated delete: new, unsynced ops.
	if s.LastSeq() != 50 {
		t.Fatalf("last seq %d", s.LastSeq())
	}
}

// A replica with no upstream (an edge without a hub) has nothing to wait
// for: its ephemeral keys are evictable at once; durable keys never are.
func TestEvictWithoutUpstream(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.NoUpstream = true })
	for i := range 5 {
		_, err := s.SetWith(ctx, fmt.Sprint("ttl", i), make([]byte, 100), SetOptions{TTL: time.Hour})
		check(t, err)
		check(t, s.Set(ctx, fmt.Sprint("keep", i), make([]byte, 100)))
	}
	res := must[EvictResult](t)(s.Evict(ctx, 1<<20))
	if res.Keys != 5 {
		t.Fatalf("evicted %+v, want the 5 TTL keys", res)
	}
	if n := must[int](t)(s.Exists(ctx, "keep0", "keep4", "ttl0")); n != 2 {
		t.Fatalf("%d of keep0, keep4, ttl0 exist", n)
	}
}

// A hub holds the fleet's copy: evicting a key there would delete it on
// every edge (found by the resources audit), so it evicts none.
func TestHubEvictsNoKeys(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.Role = crdt.RoleHub })
	for i := range 5 {
		_, err := s.SetWith(ctx, fmt.Sprint("ttl", i), make([]byte, 100), SetOptions{TTL: time.Hour})
		check(t, err)
	}
	if res := must[EvictResult](t)(s.Evict(ctx, 1<<20)); res.Keys != 0 {
		t.Fatalf("a hub evicted %+v", res)
	}
	if n := must[int](t)(s.Exists(ctx, "ttl0", "ttl4")); n != 2 {
		t.Fatalf("%d of ttl0, ttl4 exist", n)
	}
}

// Synced keys behind more than evictScan unsynced ones in the TTL index
// (sooner to expire) were never found (from the resources audit).
func TestEvictFindsSyncedBehindUnsynced(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for i := range 100 {
		_, err := s.SetWith(ctx, fmt.Sprint("synced", i), make([]byte, 100), SetOptions{TTL: 24 * time.Hour})
		check(t, err)
	}
	check(t, s.SyncWAL(ctx))
	check(t, s.MarkSynced(ctx, s.LastSeq()))
	for i := range evictScan + 100 {
		_, err := s.SetWith(ctx, fmt.Sprint("unsynced", i), []byte("v"), SetOptions{TTL: time.Hour})
		check(t, err)
	}
	if res := must[EvictResult](t)(s.Evict(ctx, 5000)); res.Keys == 0 {
		t.Fatalf("evicted %+v: the synced keys were not found", res)
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestEvictLeastRecentlyUsedFirst(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for i := range 4 {
		_, err := s.SetWith(ctx, fmt.Sprint("k", i), make([]byte, 100), SetOptions{TTL: time.Duration(4-i) * time.Hour})
		check(t, err)
	}
	check(t, s.SyncWAL(ctx))
	check(t, s.MarkSynced(ctx, s.LastSeq()))
	// Drop k0..k1 from the hot cache: they are the least recently used.
	s.cache.remove("k0")
	s.cache.remove("k1")
	res := must[EvictResult](t)(s.Evict(ctx, 150))
	if res.Keys != 2 {
		t.Fatalf("%+v", res)
	}
	if n := must[int](t)(s.Exists(ctx, "k0", "k1")); n != 0 {
		t.Fatal("cold keys survived while hot keys were evicted")
	}
}

func TestEvictReadings(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.MaxReadingsPerSensor = 100 })
	var rs []Reading
	for i := range 50 {
		rs = append(rs, Reading{Sensor: "temp-1", TS: int64(1000 + i), Value: float64(i)})
	}
	check(t, s.AppendReadings(ctx, rs))
	res := must[EvictResult](t)(s.Evict(ctx, 1<<20))
	if res.Readings != 0 {
		t.Fatal("evicted readings not yet aggregated")
	}
	must[int64](t)(s.IncrBy(ctx, "agg/temp-1", 1)) // stands for the aggregate write
	check(t, s.MarkAggregated(ctx, "temp-1", 1020))
	res = must[EvictResult](t)(s.Evict(ctx, 1<<20))
	if res.Readings != 0 {
		t.Fatal("evicted readings whose aggregate is not acknowledged upstream")
	}
	check(t, s.SyncWAL(ctx))
	check(t, s.MarkSynced(ctx, s.LastSeq()))
	res = must[EvictResult](t)(s.Evict(ctx, 1<<20))
	if res.Readings != 20 {
		t.Fatalf("%+v, want the 20 readings before ts 1020", res)
	}
	left := must[[]Reading](t)(s.Readings(ctx, "temp-1", 0, 0))
	if len(left) != 30 || left[0].TS != 1020 {
		t.Fatalf("%d readings left, first %v", len(left), left[0])
	}
	if info := s.Sensors(); len(info) != 1 || info[0].Count != 30 || info[0].Total != 50 {
		t.Fatalf("%+v", info)
	}
}

// A reading stored after MarkAggregated, with a time before its mark (a
// late reading whose late partial is not written yet), is not summarised
// by that mark: eviction dropped it (found by the resources audit).
func TestEvictKeepsReadingsStoredAfterTheMark(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	var rs []Reading
	for i := range 10 {
		rs = append(rs, Reading{Sensor: "t", TS: int64(1000 + i), Value: 1})
	}
	check(t, s.AppendReadings(ctx, rs))
	check(t, s.MarkAggregated(ctx, "t", 2000))
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "t", TS: 1500, Value: 99}}))
	check(t, s.SyncWAL(ctx))
	check(t, s.MarkSynced(ctx, s.LastSeq()))
	if res := must[EvictResult](t)(s.Evict(ctx, 1<<20)); res.Readings != 10 {
		t.Fatalf("%+v, want the 10 readings stored before the mark", res)
	}
	if left := must[[]Reading](t)(s.Readings(ctx, "t", 0, 0)); len(left) != 1 || left[0].Value != 99 {
		t.Fatalf("left %+v, want the late reading", left)
	}
	// The next mark (written after its late partial) covers it.
	check(t, s.MarkAggregated(ctx, "t", 2000))
	check(t, s.SyncWAL(ctx))
	check(t, s.MarkSynced(ctx, s.LastSeq()))
	if res := must[EvictResult](t)(s.Evict(ctx, 1<<20)); res.Readings != 1 {
		t.Fatalf("%+v, want the late reading", res)
	}
}

// The ring position of the last MarkAggregated survives a reopen: kept
// in memory only, a quiet sensor's summarised readings could never be
// dropped again after a restart (found by review).
func TestEvictReadingsAfterReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := func(o *Options) { o.Dir, o.NoUpstream = dir, true }
	s := openTest(t, opts)
	var rs []Reading
	for i := range 100 {
		rs = append(rs, Reading{Sensor: "q", TS: int64(1000 + i), Value: 1})
	}
	check(t, s.AppendReadings(ctx, rs))
	check(t, s.MarkAggregated(ctx, "q", 5000))
	check(t, s.Close())
	s = openTest(t, opts)
	if res := must[EvictResult](t)(s.Evict(ctx, 1<<30)); res.Readings != 100 {
		t.Fatalf("after a reopen: %+v, want the 100 summarised readings", res)
	}
}

func TestCompactAndDiskUsage(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for i := range 200 {
		check(t, s.Set(ctx, fmt.Sprint("k", i), make([]byte, 1000)))
	}
	check(t, s.Compact(ctx))
	if s.DiskUsage() == 0 {
		t.Fatal("no disk usage after compaction")
	}
}

func TestStorageLimit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, func(o *Options) { o.StorageLimit = 1 }) // any data exceeds it
	s.refreshDiskUsage()
	err := s.Set(ctx, "k", []byte("v"))
	if err == nil {
		t.Fatal("write accepted above the storage limit")
	}
	if _, err := s.Del(ctx, "k"); err != nil {
		t.Fatalf("delete refused above the storage limit: %v", err)
	}
}
