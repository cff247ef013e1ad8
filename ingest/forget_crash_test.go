package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// At the Critical level the store refuses the sensor's last buckets, and
// the raw ring is what rebuilds them after a crash (or a stop while writes
// are still refused). SENSOR.FORGET deleted the ring and kept the buckets
// in memory only, so readings the aggregates had counted never reached the
// replicated buckets. It now refuses and changes nothing: after the
// restart every counted reading is in the stored buckets.
func TestForgetPendingBucketSurvivesRestart(t *testing.T) {
	for _, crash := range []bool{true, false} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			ctx := context.Background()
			n := newTestNode(t, t.TempDir(), withNode)
			n.clock.Set(t0.Add(time.Second))
			n.publish("sensors/x", "1")
			n.clock.Set(t0.Add(2 * time.Second))
			n.publish("sensors/x", "2")
			n.st.SetRefuseWrites("critical disk")
			_, err := n.cmd("SENSOR.FORGET", "x")
			if !errors.Is(err, ErrBucketsNotWritten) {
				t.Fatalf("SENSOR.FORGET while the store refuses the sensor's buckets: %v", err)
			}
			if st := n.stats("x"); st.Count != 2 {
				t.Fatalf("the refused FORGET changed the sensor: %+v", st)
			}
			if crash {
				n.restart(true, withNode) // kill -9 while the bucket waits in memory
			} else {
				// A clean stop while the store still refuses writes: Close
				// cannot write the pending bucket (as for any sensor, whose
				// ring rebuilds it at the next start).
				if err := n.p.Close(ctx); err == nil {
					t.Log("close wrote the bucket")
				}
				if err := n.st.Close(); err != nil {
					t.Fatal(err)
				}
				n.open(withNode)
			}
			// The store takes writes again (a new process); every bucket is
			// closed and written.
			n.clock.Set(t0.Add(5 * time.Minute))
			if err := n.p.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if err := n.p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := n.storedBucketCount("x"); got != 2 {
				t.Fatalf("stored buckets of the sensor count %d readings, want the 2 it had counted", got)
			}
			// Retried once writes are accepted, FORGET goes through.
			if r := n.forgetCmd("x"); r.RawDropped != 2 {
				t.Fatalf("reply %+v", r)
			}
			n.checkForgotten("x", "after the retry")
		})
	}
}

// Control for the test above: the same stop without FORGET loses nothing
// (the ring rebuilds the bucket), so a loss there would be FORGET's.
func TestForgetPendingBucketControlWithoutForget(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t, t.TempDir(), withNode)
	n.clock.Set(t0.Add(time.Second))
	n.publish("sensors/x", "1")
	n.clock.Set(t0.Add(2 * time.Second))
	n.publish("sensors/x", "2")
	n.st.SetRefuseWrites("critical disk")
	if err := n.p.Flush(ctx); err == nil {
		t.Fatal("flush wrote while refused")
	}
	n.restart(true, withNode)
	n.clock.Set(t0.Add(5 * time.Minute))
	if err := n.p.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.storedBucketCount("x"); got != 2 {
		t.Fatalf("stored buckets count %d readings, want 2", got)
	}
}
