package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowAppend makes every raw readings commit take as long as an fsync on
// an SD card (tens of ms), the storage of many edge gateways.
type slowAppend struct {
	Store
	d time.Duration
}

func (s *slowAppend) AppendReadings(ctx context.Context, rs []Reading) error {
	time.Sleep(s.d) // the commit latency being simulated
	return s.Store.AppendReadings(ctx, rs)
}

// SENSOR.FORGET and SENSOR.FLUSH first drain the QoS 0 queue. Drain used
// to wait until the queue was empty and the writer idle: with a commit of
// 20 ms (SD card) and ~1000 QoS 0 readings/s of other sensors the queue is
// never empty when the writer finishes a batch, so the command never got
// past Drain and failed at its timeout. Drain now waits for the readings
// queued before the call only.
func TestForgetUnderQoS0LoadOfAnotherSensor(t *testing.T) {
	for _, cmd := range []string{"forget", "flush"} {
		t.Run(cmd, func(t *testing.T) {
			n := newRestartNode(t, nil, func(s Store) Store { return &slowAppend{Store: s, d: 20 * time.Millisecond} })
			n.pub(t0.Add(time.Second), "sensors/x", "1")
			stop := make(chan struct{})
			var pushed atomic.Int64
			var wg sync.WaitGroup
			for g := range 16 { // 16 devices, ~60 readings/s each
				wg.Add(1)
				go func() {
					defer wg.Done()
					topic := fmt.Sprintf("sensors/busy-%d", g)
					tick := time.NewTicker(16 * time.Millisecond) // the devices' pace
					defer tick.Stop()
					for {
						m := &Message{Topic: topic, Payload: []byte("1"), QoS: 0, Received: n.clock.Now()}
						if err := n.p.HandleMessages(context.Background(), []*Message{m}); err != nil {
							return
						}
						pushed.Add(1)
						select {
						case <-stop:
							return
						case <-tick.C:
						}
					}
				}()
			}
			defer func() { close(stop); wg.Wait() }()
			// Poll until the stream has filled the queue past a few commits.
			deadline := time.Now().Add(10 * time.Second)
			for pushed.Load() < 200 {
				if time.Now().After(deadline) {
					t.Fatalf("the stream did not start: %d readings", pushed.Load())
				}
				time.Sleep(time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start, before := time.Now(), pushed.Load()
			var err error
			if cmd == "forget" {
				_, err = n.p.Forget(ctx, "x")
			} else {
				err = n.p.Flush(ctx)
			}
			took := time.Since(start)
			t.Logf("%s took %v, err %v; %d QoS 0 readings meanwhile", cmd, took, err, pushed.Load()-before)
			if err != nil {
				t.Fatalf("%s while other sensors stream QoS 0: %v after %v", cmd, err, took)
			}
		})
	}
}
