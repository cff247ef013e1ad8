package store

import (
	"hash/maphash"
	"sync"
)

// hotCache keeps recently used decoded entries in memory, bounded in bytes.
//
// It is sharded by key hash, each shard an LRU list under its own mutex.
// Values are shared pointers: readers inspect them only inside view (under
// the shard lock) and the single writer (the store's write mutex holder)
// mutates them only inside update, so a reader never sees a half-applied
// delta.
//
// Readers fill the cache after a miss with fill, which inserts only if no
// writer touched the shard since the reader looked (the shard generation is
// unchanged). Without that check a reader that read the old value from
// Pebble could install it after a writer cached the new one.
type hotCache[V any] struct {
	seed   maphash.Seed
	shards []cacheShard[V]
	// maxItem is the largest cost admitted; bigger entries are not cached
	// (one huge list must not flush the whole cache).
	maxItem int64
}

const cacheShards = 16

type cacheShard[V any] struct {
	mu    sync.Mutex
	m     map[string]*cacheNode[V]
	lru   cacheNode[V] // sentinel: lru.next is the most recent
	bytes int64
	max   int64
	gen   uint64
}

type cacheNode[V any] struct {
	key        string
	v          V
	cost       int64
	prev, next *cacheNode[V]
}

func newHotCache[V any](maxBytes int64) *hotCache[V] {
	c := &hotCache[V]{seed: maphash.MakeSeed(), shards: make([]cacheShard[V], cacheShards)}
	per := maxBytes / cacheShards
	c.maxItem = per / 4
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*cacheNode[V])
		s.lru.next, s.lru.prev = &s.lru, &s.lru
		s.max = per
	}
	return c
}

func (c *hotCache[V]) shard(key string) *cacheShard[V] {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// view calls fn with the cached value of key under the shard lock and
// reports whether it was cached. fn must not retain v.
func (c *hotCache[V]) view(key string, fn func(v V)) bool {
	s := c.shard(key)
	s.mu.Lock()
	n, ok := s.m[key]
	if ok {
		s.touch(n)
		fn(n.v)
	}
	s.mu.Unlock()
	return ok
}

// inspect is view without refreshing the key's recency.
func (c *hotCache[V]) inspect(key string, fn func(v V)) bool {
	s := c.shard(key)
	s.mu.Lock()
	n, ok := s.m[key]
	if ok {
		fn(n.v)
	}
	s.mu.Unlock()
	return ok
}

// peek returns the cached value without the lock held afterwards. Only the
// writer may use the result (to mutate it through update).
func (c *hotCache[V]) peek(key string) (V, bool) {
	s := c.shard(key)
	s.mu.Lock()
	n, ok := s.m[key]
	var v V
	if ok {
		v = n.v
		s.touch(n)
	}
	s.mu.Unlock()
	return v, ok
}

// generation returns the shard generation a reader passes to fill.
func (c *hotCache[V]) generation(key string) uint64 {
	s := c.shard(key)
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	return g
}

// fill inserts v if key is not cached and no writer changed the shard since
// gen was read.
func (c *hotCache[V]) fill(key string, v V, cost int64, gen uint64) {
	if cost > c.maxItem {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	if _, ok := s.m[key]; !ok && s.gen == gen {
		s.insert(key, v, cost)
	}
	s.mu.Unlock()
}

// update runs fn under the shard lock (so readers in view are excluded),
// then stores v with its new cost. fn may be nil. Writer only.
func (c *hotCache[V]) update(key string, v V, fn func(), cost func() int64) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	if fn != nil {
		fn()
	}
	k := cost()
	n, ok := s.m[key]
	switch {
	case ok && k <= c.maxItem:
		// Update in place: no allocation on the hot write path.
		n.v = v
		s.bytes += k - n.cost
		n.cost = k
		s.touch(n)
		s.evict()
	case ok:
		s.unlink(n)
	case k <= c.maxItem:
		s.insert(key, v, k)
	}
	s.mu.Unlock()
}

// mutate runs fn under key's shard lock, excluding readers in view, and
// invalidates concurrent fills. Writer only.
func (c *hotCache[V]) mutate(key string, fn func()) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	fn()
	s.mu.Unlock()
}

// bump invalidates fills of key's shard that started before now: called
// after a write reached Pebble, so a reader that read the old value from
// Pebble cannot install it. Writer only.
func (c *hotCache[V]) bump(key string) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	s.mu.Unlock()
}

// remove drops key. Writer only.
func (c *hotCache[V]) remove(key string) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	if n, ok := s.m[key]; ok {
		s.unlink(n)
	}
	s.mu.Unlock()
}

// contains reports whether key is cached, without touching its recency.
func (c *hotCache[V]) contains(key string) bool {
	s := c.shard(key)
	s.mu.Lock()
	_, ok := s.m[key]
	s.mu.Unlock()
	return ok
}

// stats returns the number of cached entries and their total cost.
func (c *hotCache[V]) stats() (n int, bytes int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return n, bytes
}

// leastRecent returns up to n keys of each shard, least recently used
// first within a shard.
func (c *hotCache[V]) leastRecent(n int) []string {
	var out []string
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		k := 0
		for p := s.lru.prev; p != &s.lru && k < n; p = p.prev {
			out = append(out, p.key)
			k++
		}
		s.mu.Unlock()
	}
	return out
}

func (s *cacheShard[V]) insert(key string, v V, cost int64) {
	n := &cacheNode[V]{key: key, v: v, cost: cost}
	s.m[key] = n
	s.bytes += cost
	s.pushFront(n)
	s.evict()
}

// evict drops least recently used entries until the shard fits its budget.
func (s *cacheShard[V]) evict() {
	for s.bytes > s.max && s.lru.prev != &s.lru {
		s.unlink(s.lru.prev)
	}
}

func (s *cacheShard[V]) unlink(n *cacheNode[V]) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
	delete(s.m, n.key)
	s.bytes -= n.cost
}

func (s *cacheShard[V]) touch(n *cacheNode[V]) {
	if s.lru.next == n {
		return
	}
	n.prev.next = n.next
	n.next.prev = n.prev
	s.pushFront(n)
}

func (s *cacheShard[V]) pushFront(n *cacheNode[V]) {
	n.prev = &s.lru
	n.next = s.lru.next
	s.lru.next.prev = n
	s.lru.next = n
}

// shed drops least recently used entries until about want bytes are freed
// (spread over the shards) and returns the bytes freed. Dropping a cached
// entry only costs a later read from Pebble; the gen bump keeps a reader
// that raced with the drop from re-inserting a stale value.
func (c *hotCache[V]) shed(want int64) int64 {
	per := want/cacheShards + 1
	var freed int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		var f int64
		for f < per && s.lru.prev != &s.lru {
			n := s.lru.prev
			f += n.cost
			s.unlink(n)
		}
		if f > 0 {
			s.gen++
		}
		s.mu.Unlock()
		freed += f
	}
	return freed
}
