package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Benchmarks. Our layer is compared in the same run with raw Pebble Set on
// the same keys and values, so its overhead reads as a ratio:
//
//	go test -run '^$' -bench . -benchmem ./store/
//
// Keys cycle over benchKeys (a gateway overwrites a bounded set of keys).

const benchKeys = 10_000

var benchValue = []byte("23.5 celsius ok!") // 16 bytes

func benchKeyNames() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("sensor:temp:%05d", i)
	}
	return keys
}

func benchStore(b *testing.B, dur Durability, strat crdt.Strategy) *Store {
	o := testOptions(b.TempDir())
	o.Durability = dur
	o.Resolver = crdt.Resolver{Default: strat}
	o.ApplyPreset(Preset{MemoryLimit: 64 << 20, CompressionLevel: 3})
	return openWith(b, o)
}

func rawPebble(b *testing.B) *pebble.DB {
	o := testOptions(b.TempDir())
	o.MemoryLimit = 64 << 20
	o.EnsureDefaults()
	var noDelay atomic.Int64 // raw Pebble: never delay syncs
	db, err := pebble.Open(b.TempDir(), pebbleOptions(&o, &noDelay))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func BenchmarkSet(b *testing.B) {
	keys := benchKeyNames()
	ctx := context.Background()
	b.Run("store/none", func(b *testing.B) {
		s := benchStore(b, DurabilityNone, crdt.LastWriteWins)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Set(ctx, keys[i%benchKeys], benchValue); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("pebble/nosync", func(b *testing.B) {
		db := rawPebble(b)
		pk := make([][]byte, benchKeys)
		for i, k := range keys {
			pk[i] = dataKey(nil, k)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := db.Set(pk[i%benchKeys], benchValue, pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkGet(b *testing.B) {
	keys := benchKeyNames()
	ctx := context.Background()
	b.Run("store/hot", func(b *testing.B) {
		s := benchStore(b, DurabilityNone, crdt.LastWriteWins)
		for _, k := range keys[:100] {
			if err := s.Set(ctx, k, benchValue); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Get(ctx, keys[i%100]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("store/cold", func(b *testing.B) {
		s := benchStore(b, DurabilityNone, crdt.LastWriteWins)
		for _, k := range keys {
			if err := s.Set(ctx, k, benchValue); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i%benchKeys]
			s.cache.remove(k)
			if _, err := s.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("pebble", func(b *testing.B) {
		db := rawPebble(b)
		pk := make([][]byte, 100)
		for i := range pk {
			pk[i] = dataKey(nil, keys[i])
			if err := db.Set(pk[i], benchValue, pebble.NoSync); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v, closer, err := db.Get(pk[i%100])
			if err != nil {
				b.Fatal(err)
			}
			_ = append([]byte(nil), v...)
			_ = closer.Close()
			i++
		}
	})
}

func BenchmarkHIncrBy(b *testing.B) {
	ctx := context.Background()
	for _, strat := range []crdt.Strategy{crdt.CrdtMerge, crdt.LastWriteWins} {
		b.Run("store/none/"+strat.String(), func(b *testing.B) {
			s := benchStore(b, DurabilityNone, strat)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.HIncrBy(ctx, fmt.Sprintf("store:%d:daily_revenue", i%100), "2025-02-19", 4999); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkLPush(b *testing.B) {
	ctx := context.Background()
	item := []byte(`{"id":"tx-001","amount":49.99}`)
	b.Run("store/none/capped32", func(b *testing.B) {
		s := benchStore(b, DurabilityNone, crdt.CrdtMerge)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			key := fmt.Sprintf("store:%d:transactions", i%100)
			if _, err := s.LPush(ctx, key, item); err != nil {
				b.Fatal(err)
			}
			if i%3200 == 3199 {
				for k := range 100 {
					if err := s.LTrim(ctx, fmt.Sprintf("store:%d:transactions", k), 0, 31); err != nil {
						b.Fatal(err)
					}
				}
			}
			i++
		}
	})
}

// BenchmarkSetAlways measures group commit: SET under durability "always"
// from 1, 16 and 64 goroutines; each SET returns after its fsync.
func BenchmarkSetAlways(b *testing.B) {
	keys := benchKeyNames()
	ctx := context.Background()
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("store/writers=%d", writers), func(b *testing.B) {
			s := benchStore(b, DurabilityAlways, crdt.LastWriteWins)
			runWriters(b, writers, func(i int) error { return s.Set(ctx, keys[i%benchKeys], benchValue) })
		})
		b.Run(fmt.Sprintf("pebble/sync/writers=%d", writers), func(b *testing.B) {
			db := rawPebble(b)
			runWriters(b, writers, func(i int) error {
				return db.Set(dataKey(nil, keys[i%benchKeys]), benchValue, pebble.Sync)
			})
		})
	}
}

func runWriters(b *testing.B, writers int, op func(i int) error) {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + writers - 1) / writers
	for w := range writers {
		wg.Go(func() {
			for j := range per {
				if err := op(w*per + j); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*writers)/time.Since(start).Seconds(), "ops/s")
}
