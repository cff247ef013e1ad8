package syncer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
)

// faultPlan injects faults into every sync message a link publishes
// (retained status messages pass): duplicates, reorders (a message is held
// back until after the next one), delays (published later from a timer,
// so it overtakes nothing but is overtaken) and drops. The transport
// underneath is the real paho link to a real broker.
type faultPlan struct {
	mu                        sync.Mutex
	rnd                       *rand.Rand
	dup, reorder, delay, drop float64
	maxDelay                  time.Duration
	counts                    map[string]int
}

func newFaultPlan(seed uint64, dup, reorder, delay, drop float64) *faultPlan {
	return &faultPlan{rnd: rand.New(rand.NewPCG(seed, 99)), dup: dup, reorder: reorder, delay: delay,
		drop: drop, maxDelay: 40 * time.Millisecond, counts: map[string]int{}}
}

func (p *faultPlan) wrap(d dialFunc) dialFunc {
	return func(ctx context.Context, cfg linkConfig) (link, error) {
		l, err := d(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &faultLink{l: l, p: p}, nil
	}
}

func (p *faultPlan) count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[kind]
}

type faultLink struct {
	l      link
	p      *faultPlan
	mu     sync.Mutex
	held   *heldMsg
	timers []*time.Timer
	wg     sync.WaitGroup
	closed bool
}

type heldMsg struct {
	topic   string
	payload []byte
}

func (f *faultLink) Subscribe(topic string) error { return f.l.Subscribe(topic) }

func (f *faultLink) Publish(topic string, payload []byte, retained bool) error {
	if retained {
		return f.l.Publish(topic, payload, retained)
	}
	p := f.p
	p.mu.Lock()
	x := p.rnd.Float64()
	var kind string
	switch {
	case x < p.drop:
		kind = "drop"
	case x < p.drop+p.dup:
		kind = "dup"
	case x < p.drop+p.dup+p.reorder:
		kind = "reorder"
	case x < p.drop+p.dup+p.reorder+p.delay:
		kind = "delay"
	}
	delay := time.Duration(p.rnd.Int64N(int64(p.maxDelay)))
	if kind != "" {
		p.counts[kind]++
	}
	p.mu.Unlock()

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errNoLink
	}
	held := f.held
	f.held = nil
	var err error
	switch kind {
	case "drop":
	case "dup":
		err = f.l.Publish(topic, payload, false)
		if err == nil {
			err = f.l.Publish(topic, payload, false)
		}
	case "reorder":
		f.held = &heldMsg{topic: topic, payload: payload}
	case "delay":
		f.wg.Add(1)
		var t *time.Timer
		t = time.AfterFunc(delay, func() {
			defer f.wg.Done()
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.closed {
				_ = f.l.Publish(topic, payload, false)
			}
		})
		f.timers = append(f.timers, t)
	default:
		err = f.l.Publish(topic, payload, false)
	}
	if held != nil && err == nil {
		err = f.l.Publish(held.topic, held.payload, false)
	}
	return err
}

func (f *faultLink) Close(graceful bool) {
	f.mu.Lock()
	f.closed = true
	for _, t := range f.timers {
		if t.Stop() {
			f.wg.Done()
		}
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.l.Close(graceful)
}

// TestConvergeUnderFaults: every sync message may be duplicated,
// reordered, delayed or dropped, in both directions, while both edges
// write; the replicas still converge, counters exact, members complete.
func TestConvergeUnderFaults(t *testing.T) {
	b := startEmbedded(t)
	res := crdt.Resolver{Default: crdt.CrdtMerge}
	hub, e1, e2 := hubAndEdges(t, res)
	seed := uint64(time.Now().UnixNano())
	t.Logf("fault seed %d", seed)
	plan := newFaultPlan(seed, 0.1, 0.1, 0.1, 0.02)
	small := func(o *BatchOptions) {
		o.BatchOps = 7 // many small batches: more messages to disturb
		o.AckTimeout = 500 * time.Millisecond
	}
	hub.startHub(b.url, func(o *HubOptions) { o.dial = plan.wrap(dialPaho); small(&o.BatchOptions) })
	for _, e := range []*replica{e1, e2} {
		e.startEdge(b.url, func(o *EdgeOptions) { o.dial = plan.wrap(dialPaho); small(&o.BatchOptions) })
	}
	ctx := context.Background()
	const rounds = 120
	var wg sync.WaitGroup
	for _, e := range []*replica{e1, e2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				_, err1 := e.st.IncrBy(ctx, "counter", 1)
				err2 := e.st.Set(ctx, fmt.Sprintf("%s:%d", e.name, i%10), []byte(fmt.Sprint(i)))
				_, err3 := e.st.SAdd(ctx, "members", fmt.Sprintf("%s-%d", e.name, i))
				var err4 error
				if i%10 == 0 {
					err4 = e.st.Set(ctx, "shared", []byte(e.name+fmt.Sprint(i)))
				}
				for _, err := range []error{err1, err2, err3, err4} {
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	waitConverged(t, 60*time.Second, hub, e1, e2)
	for _, r := range []*replica{hub, e1, e2} {
		if v := mustGet(t, r.st, "counter"); v != fmt.Sprint(2*rounds) {
			t.Fatalf("%s: counter = %s, want %d", r.name, v, 2*rounds)
		}
		m, err := r.st.SMembers(ctx, "members")
		check(t, err)
		if len(m) != 2*rounds {
			t.Fatalf("%s: %d members, want %d", r.name, len(m), 2*rounds)
		}
	}
	for _, k := range []string{"dup", "reorder", "delay", "drop"} {
		if plan.count(k) == 0 {
			t.Errorf("no %s fault was injected: the test exercised nothing", k)
		}
	}
	t.Logf("faults injected: dup=%d reorder=%d delay=%d drop=%d", plan.count("dup"), plan.count("reorder"),
		plan.count("delay"), plan.count("drop"))
}
