package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxLatencySamples bounds the latency recorder's memory (4 bytes each);
// beyond it every k-th sample is kept.
const maxLatencySamples = 4 << 20

// latencies records latency samples in milliseconds.
type latencies struct {
	mu      sync.Mutex
	samples []float32
	seen    uint64
	stride  uint64
}

func (l *latencies) add(ms float64) {
	l.mu.Lock()
	l.seen++
	if l.stride == 0 {
		l.stride = 1
	}
	if len(l.samples) >= maxLatencySamples {
		// Halve the kept samples and double the stride.
		for i := 0; i < len(l.samples)/2; i++ {
			l.samples[i] = l.samples[2*i]
		}
		l.samples = l.samples[:len(l.samples)/2]
		l.stride *= 2
	}
	if l.seen%l.stride == 0 {
		l.samples = append(l.samples, float32(ms))
	}
	l.mu.Unlock()
}

func (l *latencies) percentiles() (p50, p90, p99, maxv float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return 0, 0, 0, 0
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return round3(float64(s[max(i, 0)]))
	}
	return at(0.50), at(0.90), at(0.99), round3(float64(s[len(s)-1]))
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// subscriber counts the run's messages forwarded by the broker.
type subscriber struct {
	rc   *rawConn
	lat  latencies
	done chan struct{}
	// lastAt is when the last message of the run arrived (ms since start).
	lastAt atomic.Uint64
}

func startSubscriber(ctx context.Context, cfg runConfig, start time.Time, cnt *counters) (*subscriber, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := dialRaw(dctx, cfg.broker, fmt.Sprintf("bench-%s-sub", cfg.runID))
	if err != nil {
		return nil, err
	}
	if err := rc.subscribe(cfg.format.filter, 0); err != nil {
		rc.c.Close()
		return nil, err
	}
	s := &subscriber{rc: rc, done: make(chan struct{})}
	mark := []byte(cfg.runID)
	go func() {
		defer close(s.done)
		var buf []byte
		for {
			typ, b, err := rc.readPacket(buf)
			if err != nil {
				return
			}
			buf = b
			if typ>>4 != pktPublish {
				continue
			}
			topic, payload, err := publishPayload(typ, b)
			if err != nil || !bytes.Contains(topic, mark) {
				continue
			}
			now := msSince(start)
			cnt.received.Add(1)
			s.lastAt.Store(math.Float64bits(now))
			if off, ok := cfg.format.embeddedOffset(payload); ok {
				s.lat.add(now - off)
			}
		}
	}()
	return s, nil
}

// waitDrain waits until every sent message arrived, or nothing arrived
// for cfg.drain.
func (s *subscriber) waitDrain(ctx context.Context, cfg runConfig, cnt *counters) {
	last, lastChange := cnt.received.Load(), time.Now()
	for ctx.Err() == nil && time.Since(lastChange) < cfg.drain {
		n := cnt.received.Load()
		if n >= cnt.sent.Load() {
			return
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *subscriber) close() {
	s.rc.c.Close()
	<-s.done
}

// verifyIngest asks the gateway (SENSOR.STATS over $ferrite/cmd, MQTT
// 3.1.1 replies on $ferrite/reply/<client-id>) how many readings it
// ingested from the first sensor of each publisher, waiting until the
// total is stable (QoS 0 readings may still be queued).
func verifyIngest(ctx context.Context, cfg runConfig) (uint64, error) {
	cid := fmt.Sprintf("bench-%s-verify", cfg.runID)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rc, err := dialRaw(dctx, cfg.broker, cid)
	cancel()
	if err != nil {
		return 0, err
	}
	defer rc.close()
	if err := rc.subscribe("$ferrite/reply/"+cid, 0); err != nil {
		return 0, err
	}
	var prev uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		var total uint64
		for i := range cfg.publishers {
			n, err := sensorCount(rc, cfg.format.sensors(cfg.runID, i)[0])
			if err != nil {
				return total, err
			}
			total += n
		}
		if total == prev || time.Now().After(deadline) {
			return total, nil
		}
		prev = total
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

func sensorCount(rc *rawConn, sensor string) (uint64, error) {
	rc.publish("$ferrite/cmd", []byte("SENSOR.STATS "+sensor), 0)
	if err := rc.w.Flush(); err != nil {
		return 0, err
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer rc.c.SetReadDeadline(time.Time{})
	for {
		typ, b, err := rc.readPacket(nil)
		if err != nil {
			return 0, err
		}
		if typ>>4 != pktPublish {
			continue
		}
		_, payload, err := publishPayload(typ, b)
		if err != nil {
			return 0, err
		}
		var v any
		if err := json.Unmarshal(payload, &v); err != nil {
			return 0, fmt.Errorf("reply %q: %w", payload, err)
		}
		if n, ok := findCount(v); ok {
			return uint64(n), nil
		}
		if m, ok := v.(map[string]any); ok && m["error"] != nil {
			if s, _ := m["error"].(string); bytes.Contains([]byte(s), []byte("unknown sensor")) {
				return 0, nil
			}
			return 0, fmt.Errorf("SENSOR.STATS %s: %v", sensor, m["error"])
		}
		return 0, errors.New("reply without count: " + string(payload))
	}
}

// findCount looks for a numeric "count" field at any depth.
func findCount(v any) (float64, bool) {
	switch x := v.(type) {
	case map[string]any:
		if n, ok := x["count"].(float64); ok {
			return n, true
		}
		for _, e := range x {
			if n, ok := findCount(e); ok {
				return n, true
			}
		}
	case []any:
		for _, e := range x {
			if n, ok := findCount(e); ok {
				return n, true
			}
		}
	}
	return 0, false
}
