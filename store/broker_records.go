package store

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Broker records: the embedded broker's state that outlives a restart, as
// mosquitto's persistence keeps it (retained messages, persistent sessions,
// their subscriptions and queued messages), as opaque records under the b
// prefix. The broker chooses the keys. They are local (never replicated)
// and written to the WAL without an fsync of their own: the next synced
// commit (any durable write after them), SyncWAL or Close makes them
// durable, as mosquitto itself saves its state only every
// autosave_interval. A caller that needs one durable now calls SyncWAL.

// maxBrokerKey bounds a broker record's key (an MQTT topic or client id is
// at most 65535 bytes, plus the broker's framing).
const maxBrokerKey = 128 << 10

func brokerKey(key string) []byte {
	return append(append(make([]byte, 0, 1+len(key)), prefixBroker), key...)
}

// SetBrokerRecord stores rec under key; a nil rec deletes it. Storing is
// refused, with the refusal's reason, while writes are refused (the
// resource monitor's Critical level) or the storage limit is reached;
// deleting always works.
func (s *Store) SetBrokerRecord(ctx context.Context, key string, rec []byte) error {
	return s.setBrokerRecord(ctx, key, rec, rec != nil)
}

// maxBrokerMeta bounds a record SetBrokerMeta stores past a refusal.
const maxBrokerMeta = 16 << 10

// SetBrokerMeta is SetBrokerRecord for the broker's bookkeeping records
// (sessions, subscriptions): an update of an existing record of at most
// 16 KiB is stored even while writes are refused, as the syncer's state
// is, since refusing it at Critical would lose the persistent session at
// the next restart. New records and larger ones (a session with a large
// will) are refused as SetBrokerRecord refuses them, so no client can
// grow the store past its limit by opening sessions.
func (s *Store) SetBrokerMeta(ctx context.Context, key string, rec []byte) error {
	grows := rec != nil
	if grows && len(rec) <= maxBrokerMeta {
		if err := s.enter(); err != nil {
			return err
		}
		_, closer, err := s.db.Get(brokerKey(key))
		s.leave()
		if err == nil {
			_ = closer.Close()
			grows = false // an update of a record already stored
		}
	}
	return s.setBrokerRecord(ctx, key, rec, grows)
}

func (s *Store) setBrokerRecord(ctx context.Context, key string, rec []byte, grows bool) error {
	if key == "" || len(key) > maxBrokerKey {
		return fmt.Errorf("%w: broker record key of %d bytes", ErrSyntax, len(key))
	}
	if err := s.checkWrite(ctx, grows); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	var err error
	if rec == nil {
		err = s.db.Delete(brokerKey(key), pebble.NoSync)
	} else {
		err = s.db.Set(brokerKey(key), rec, pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("store: broker record: %w", err)
	}
	s.unsynced.Store(true) // after the write: SyncWAL then covers it
	return nil
}

// DeleteBrokerRecords deletes every broker record whose key starts with
// prefix (one range deletion).
func (s *Store) DeleteBrokerRecords(ctx context.Context, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: empty broker record prefix", ErrSyntax)
	}
	if err := s.checkWrite(ctx, false); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	start := brokerKey(prefix)
	if err := s.db.DeleteRange(start, prefixEnd(start), pebble.NoSync); err != nil {
		return fmt.Errorf("store: broker records: %w", err)
	}
	s.unsynced.Store(true)
	return nil
}

// BrokerRecords calls fn with every broker record whose key starts with
// prefix, in key order. fn must not retain rec; an error from fn stops the
// walk and is returned.
func (s *Store) BrokerRecords(ctx context.Context, prefix string, fn func(key string, rec []byte) error) error {
	if err := s.checkRead(ctx); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	start := brokerKey(prefix)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: prefixEnd(start)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(string(it.Key()[1:]), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}
