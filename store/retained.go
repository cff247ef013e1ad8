package store

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Retained messages: the embedded broker's retained MQTT messages, one
// opaque record per topic under the r prefix, so they survive a restart as
// in mosquitto with persistence on. They are local (never replicated) and
// written to the WAL without an fsync of their own: a retained message is
// state a device republishes, not data a PUBACK promised, and mosquitto
// itself saves them only every autosave_interval. The next synced commit
// (any durable write after it) or Close makes one durable.

// maxRetainedTopic bounds a retained message's topic (MQTT allows 65535
// bytes).
const maxRetainedTopic = 65535

// SetRetained stores the retained message record of topic; a nil record
// deletes it. Storing is refused, with the write refusal's reason, while
// writes are refused (the resource monitor's Critical level) or the
// storage limit is reached; deleting always works.
func (s *Store) SetRetained(ctx context.Context, topic string, record []byte) error {
	if topic == "" || len(topic) > maxRetainedTopic {
		return fmt.Errorf("%w: retained topic of %d bytes", ErrSyntax, len(topic))
	}
	if err := s.checkWrite(ctx, record != nil); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	k := append(make([]byte, 0, 1+len(topic)), prefixRetained)
	k = append(k, topic...)
	var err error
	if record == nil {
		err = s.db.Delete(k, pebble.NoSync)
	} else {
		err = s.db.Set(k, record, pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("store: retained %q: %w", topic, err)
	}
	return nil
}

// Retained calls fn with every stored retained message, in topic order.
// fn must not retain record; an error from fn stops the walk and is
// returned.
func (s *Store) Retained(ctx context.Context, fn func(topic string, record []byte) error) error {
	if err := s.checkRead(ctx); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: []byte{prefixRetained}, UpperBound: []byte{prefixRetained + 1}})
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
