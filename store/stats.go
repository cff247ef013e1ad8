package store

// Stats is a snapshot of the store's state for status commands
// (EDGE.STATUS, EDGE.QUEUE, EDGE.RESOURCES).
type Stats struct {
	NodeID        string `json:"node_id"`
	Actor         string `json:"actor"` // the name of this data directory's writes
	Role          string `json:"role"`
	Keys          int64  `json:"keys"`
	LastSeq       uint64 `json:"last_seq"`
	DurableSeq    uint64 `json:"durable_seq"`
	SyncedSeq     uint64 `json:"synced_seq"`
	OldestSeq     uint64 `json:"oldest_seq"`
	OpLogOps      uint64 `json:"oplog_ops"`
	DiskBytes     uint64 `json:"disk_bytes"`
	StorageLimit  int64  `json:"storage_limit"`
	MemoryLimit   int64  `json:"memory_limit"`
	CacheEntries  int    `json:"cache_entries"`
	CacheBytes    int64  `json:"cache_bytes"`
	Conflicts     int    `json:"conflicts"`
	Sensors       int    `json:"sensors"`
	Durability    string `json:"durability"`
	WritesRefused string `json:"writes_refused,omitempty"`
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	last, pruned := s.lastSeq.Load(), s.pruned.Load()
	st := Stats{
		NodeID:       s.node,
		Actor:        s.actor,
		Role:         s.role.String(),
		Keys:         s.liveKeys.Load(),
		LastSeq:      last,
		DurableSeq:   s.durable.Load(),
		SyncedSeq:    s.synced.Load(),
		OldestSeq:    pruned + 1,
		OpLogOps:     last - min(pruned, last),
		DiskBytes:    s.diskUsage.Load(),
		StorageLimit: s.opts.StorageLimit,
		MemoryLimit:  s.opts.MemoryLimit,
		Durability:   s.opts.Durability.String(),
	}
	st.CacheEntries, st.CacheBytes = s.cache.stats()
	s.wmu.Lock()
	st.Conflicts = s.nConfl
	s.wmu.Unlock()
	s.seriesMu.Lock()
	st.Sensors = len(s.sensors)
	s.seriesMu.Unlock()
	if r := s.refusal.Load(); r != nil {
		st.WritesRefused = *r
	}
	return st
}
