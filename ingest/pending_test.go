package ingest

import (
	"context"
	"testing"
)

// blockingStore holds AppendReadings until released.
type blockingStore struct {
	Store
	entered, release chan struct{}
}

func (b *blockingStore) AppendReadings(ctx context.Context, rs []Reading) error {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.AppendReadings(ctx, rs)
}

// A sensor admitted by a batch still being stored is not listed: its
// zeros would reach SENSOR.STATS and Home Assistant (found in the final
// README check: SENSOR.STATS right after a publish showed count 0).
func TestSensorNotVisibleBeforeItsReadingIsStored(t *testing.T) {
	st := &blockingStore{Store: NewStoreBackend(openStore(t, t.TempDir())), entered: make(chan struct{}), release: make(chan struct{})}
	s := newSensorIngestion(st, nil, &manualClock{now: t0}, 10)
	done := make(chan error, 1)
	go func() { done <- s.Ingest(context.Background(), Reading{Sensor: "a", Value: 21.5, Time: t0}) }()
	<-st.entered
	if got := s.Sensors(""); len(got) != 0 {
		t.Errorf("listed before stored: %+v", got)
	}
	if _, ok := s.Aggregate("a"); ok {
		t.Error("Aggregate before stored")
	}
	close(st.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if info, ok := s.Aggregate("a"); !ok || info.Count != 1 || info.Last != 21.5 {
		t.Fatalf("after: %+v %v", info, ok)
	}
}
