package broker

import (
	"errors"
	"slices"
	"testing"
)

// Retained lists what a new subscriber to the filter would get: the
// broker's own retained messages and a client's, not the removed ones.
func TestRetainedListsMatchingMessages(t *testing.T) {
	b := startBroker(t, Options{})
	for topic, payload := range map[string]string{
		"ha/sensor/a/config": "a", "ha/sensor/b/config": "b", "ha/sensor/c/config": "c",
		"ha/sensor/a/state": "1", "other/sensor/d/config": "d",
	} {
		if err := b.Publish(&Message{Topic: topic, Payload: []byte(payload), Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	// An empty retained message removes one.
	if err := b.Publish(&Message{Topic: "ha/sensor/b/config", Retain: true}); err != nil {
		t.Fatal(err)
	}
	c := v3Client(t, "tcp://"+b.Addr(), "dev")
	if tok := c.Publish("ha/sensor/e/config", 1, true, "e"); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	var got []string
	eventually(t, "the client's retained message", func() bool {
		ms, err := b.Retained("ha/sensor/+/config")
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, m := range ms {
			if !m.Retain {
				t.Errorf("%s: not marked retained", m.Topic)
			}
			got = append(got, m.Topic+"="+string(m.Payload))
		}
		slices.Sort(got)
		return len(got) == 3
	})
	if want := []string{"ha/sensor/a/config=a", "ha/sensor/c/config=c", "ha/sensor/e/config=e"}; !slices.Equal(got, want) {
		t.Fatalf("retained %v, want %v", got, want)
	}
	if _, err := b.Retained("ha/#/x"); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("invalid filter: %v", err)
	}
}
