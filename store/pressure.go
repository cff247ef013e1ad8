package store

import (
	"context"
	"math"
)

// The resource monitor's levers that are not eviction (see evict.go):
// shedding the hot cache, dropping raw readings already summarised and
// synced, and switching to the strongest value compression.

// ReleaseMemory drops up to want bytes of the hot-entry cache (least
// recently used first) and returns the bytes freed. No data is lost: a
// dropped entry is read from Pebble on its next use.
func (s *Store) ReleaseMemory(ctx context.Context, want int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if want <= 0 {
		return 0, nil
	}
	return s.cache.shed(want), nil
}

// DropSyncedRawReadings deletes every raw sensor reading that ingest has
// already folded into aggregate keys whose changes the hub acknowledged
// (the "offload" of the Warning level). It returns the readings dropped.
func (s *Store) DropSyncedRawReadings(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n, _, err := s.evictReadings(ctx, math.MaxInt64)
	return int64(n), err
}

// SetHighCompression switches the encoding of entries written from now on
// to LZ4 at the strongest level (on) or back to the configured level (off).
// Entries already stored keep their encoding until a later write rewrites
// them; reads handle both.
func (s *Store) SetHighCompression(on bool) {
	s.highCompression.Store(on)
}

// valueCodecNow is the codec for the next write (the caller holds wmu).
func (s *Store) valueCodecNow() *valueCodec {
	if s.highCompression.Load() {
		return s.highCodec
	}
	return s.codec
}
