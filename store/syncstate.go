package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Syncer state: small opaque records the syncer keeps next to the data
// (peer cursors, hub-acked seqs, the needs-FullSync flag) under the x
// prefix, so they are consistent with the op log across crashes.

const maxSyncStateName = 255

// SyncState returns the syncer record called name, or ErrNotFound.
func (s *Store) SyncState(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v, closer, err := s.db.Get(syncKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

// SetSyncState durably stores the syncer record called name; a nil value
// deletes it.
func (s *Store) SetSyncState(ctx context.Context, name string, value []byte) error {
	if name == "" || len(name) > maxSyncStateName {
		return fmt.Errorf("%w: sync state name %q", ErrSyntax, name)
	}
	if err := s.checkWrite(ctx, false); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	b := s.db.NewBatch()
	if value == nil {
		_ = b.Delete(syncKey(name), nil)
	} else {
		_ = b.Set(syncKey(name), value, nil)
	}
	w, err := s.commitBatch(b, true)
	if err != nil {
		return err
	}
	return s.finishCommit(w)
}
