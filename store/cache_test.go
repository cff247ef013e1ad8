package store

import (
	"fmt"
	"sync"
	"testing"
)

func TestHotCacheBoundedInBytes(t *testing.T) {
	c := newHotCache[int](cacheShards * 1000)
	for i := range 10000 {
		key := fmt.Sprint("k", i)
		c.update(key, i, nil, func() int64 { return 100 })
	}
	n, bytes := c.stats()
	if bytes > cacheShards*1000 {
		t.Fatalf("cache holds %d bytes, budget %d", bytes, cacheShards*1000)
	}
	if n == 0 || n > cacheShards*10 {
		t.Fatalf("cache holds %d entries", n)
	}
	// The most recent key survives, the oldest are gone.
	if !c.contains("k9999") || c.contains("k0") {
		t.Fatal("LRU order not respected")
	}
}

func TestHotCacheRejectsHugeItems(t *testing.T) {
	c := newHotCache[int](cacheShards * 1000)
	c.update("big", 1, nil, func() int64 { return 900 })
	if c.contains("big") {
		t.Fatal("an item larger than a quarter of a shard was cached")
	}
}

func TestHotCacheFillLosesToWriter(t *testing.T) {
	c := newHotCache[string](1 << 20)
	gen := c.generation("k")
	// A writer caches the new value while the reader was reading Pebble.
	c.update("k", "new", nil, func() int64 { return 10 })
	c.fill("k", "old", 10, gen)
	var got string
	c.view("k", func(v string) { got = v })
	if got != "new" {
		t.Fatalf("stale fill replaced the writer's value: %q", got)
	}
	// A writer that only removed the key also wins.
	gen = c.generation("k2")
	c.remove("k2")
	c.fill("k2", "old", 10, gen)
	if c.contains("k2") {
		t.Fatal("stale fill after remove")
	}
	// An undisturbed fill succeeds.
	gen = c.generation("k3")
	c.fill("k3", "v", 10, gen)
	if !c.contains("k3") {
		t.Fatal("fill dropped")
	}
}

func TestHotCacheLeastRecent(t *testing.T) {
	c := newHotCache[int](1 << 20)
	for i := range 100 {
		c.update(fmt.Sprint(i), i, nil, func() int64 { return 1 })
	}
	c.view("0", func(int) {})
	for _, k := range c.leastRecent(1) {
		if k == "0" {
			t.Fatal("recently viewed key listed as least recent")
		}
	}
}

func TestHotCacheConcurrent(t *testing.T) {
	c := newHotCache[*int](1 << 12)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				key := fmt.Sprint(i % 97)
				if g == 0 {
					v := new(int)
					c.update(key, v, func() { *v = i }, func() int64 { return 64 })
					continue
				}
				gen := c.generation(key)
				if !c.view(key, func(v *int) { _ = *v }) {
					c.fill(key, new(int), 64, gen)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkHotCacheView(b *testing.B) {
	c := newHotCache[int](1 << 20)
	c.update("sensor:temp:001", 1, nil, func() int64 { return 100 })
	b.ReportAllocs()
	for b.Loop() {
		c.view("sensor:temp:001", func(int) {})
	}
}
