package resources

import (
	"context"
	"sync"
	"time"
)

// The types below are in-package implementations of the monitor's own
// interfaces, standing in for the store and the syncer: each records what
// the monitor asked and behaves as the interface contract says.

// testStore holds a byte count that Evict really lowers (down to what is
// evictable), with a write gate and compression switch.
type testStore struct {
	mu          sync.Mutex
	bytes       int64
	evictable   int64
	refuse      string
	gateCalls   []string
	highComp    bool
	evicts      []int64
	compactions int
	offloads    int
	rollups     int
	released    []int64
}

func (s *testStore) StorageUsage() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, nil
}

func (s *testStore) set(bytes, evictable int64) {
	s.mu.Lock()
	s.bytes, s.evictable = bytes, evictable
	s.mu.Unlock()
}

func (s *testStore) Evict(ctx context.Context, n int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evicts = append(s.evicts, n)
	freed := min(n, s.evictable)
	s.evictable -= freed
	s.bytes -= freed
	return freed, nil
}

func (s *testStore) ReleaseMemory(ctx context.Context, n int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = append(s.released, n)
	return 0, nil
}

func (s *testStore) Compact(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compactions++
	return ctx.Err()
}

func (s *testStore) DropSyncedRawReadings(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offloads++
	return 7, nil
}

func (s *testStore) RollUp(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollups++
	return nil
}

func (s *testStore) SetRefuseWrites(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = reason
	s.gateCalls = append(s.gateCalls, reason)
}

func (s *testStore) SetHighCompression(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.highComp = on
}

// snapshot returns a copy of the recorded state.
func (s *testStore) snapshot() testStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return testStore{bytes: s.bytes, refuse: s.refuse, gateCalls: append([]string(nil), s.gateCalls...),
		highComp: s.highComp, evicts: append([]int64(nil), s.evicts...), compactions: s.compactions,
		offloads: s.offloads, rollups: s.rollups, released: append([]int64(nil), s.released...)}
}

// testSyncer records sync requests and intervals and reports a settable link.
type testSyncer struct {
	mu        sync.Mutex
	syncs     int
	intervals []time.Duration
	link      LinkStats
}

func (s *testSyncer) SyncNow(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	return nil
}

func (s *testSyncer) SetInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intervals = append(s.intervals, d)
}

func (s *testSyncer) LinkStats() LinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link
}

func (s *testSyncer) setLink(l LinkStats) {
	s.mu.Lock()
	s.link = l
	s.mu.Unlock()
}

func (s *testSyncer) state() (syncs int, intervals []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs, append([]time.Duration(nil), s.intervals...)
}
