package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// runConfig is one measurement against one broker.
type runConfig struct {
	target     string
	broker     string
	pid        int
	publishers int
	rate       float64 // total msgs/s offered; 0 = as fast as possible
	duration   time.Duration
	qos        byte
	format     format
	client     string // raw | paho
	subscribe  bool
	verify     bool
	inflight   int
	runID      string
	drain      time.Duration
}

// result is what one run measured.
type result struct {
	Target      string  `json:"target"`
	Broker      string  `json:"broker"`
	Format      string  `json:"format"`
	QoS         byte    `json:"qos"`
	Client      string  `json:"client"`
	Publishers  int     `json:"publishers"`
	OfferedRate float64 `json:"offered_rate"` // msgs/s, 0 = max
	Seconds     float64 `json:"seconds"`
	Sent        uint64  `json:"sent"`
	Acked       uint64  `json:"acked,omitempty"`
	SendRate    float64 `json:"send_rate"`
	Received    uint64  `json:"received,omitempty"`
	RecvRate    float64 `json:"recv_rate,omitempty"`
	LossPct     float64 `json:"loss_pct,omitempty"`
	LatP50      float64 `json:"lat_p50_ms,omitempty"`
	LatP90      float64 `json:"lat_p90_ms,omitempty"`
	LatP99      float64 `json:"lat_p99_ms,omitempty"`
	LatMax      float64 `json:"lat_max_ms,omitempty"`
	BrokerCPU   float64 `json:"broker_cpu_s,omitempty"`
	CPUPer100k  float64 `json:"broker_cpu_s_per_100k,omitempty"`
	BrokerRSSMB float64 `json:"broker_rss_mb,omitempty"`
	Ingested    uint64  `json:"ingested,omitempty"` // readings the gateway counted (-verify)
	IngestRate  float64 `json:"ingest_rate,omitempty"`
	Errors      int64   `json:"errors"`
}

type counters struct {
	sent, acked, received, errors atomic.Uint64
}

// run performs one measurement.
func run(ctx context.Context, cfg runConfig) (*result, error) {
	res := &result{
		Target: cfg.target, Broker: cfg.broker, Format: cfg.format.name, QoS: cfg.qos, Client: cfg.client,
		Publishers: cfg.publishers, OfferedRate: cfg.rate,
	}
	var cnt counters
	start := time.Now()
	var sub *subscriber
	if cfg.subscribe {
		var err error
		if sub, err = startSubscriber(ctx, cfg, start, &cnt); err != nil {
			return nil, fmt.Errorf("subscriber: %w", err)
		}
		defer sub.close()
	}
	cpu0, _ := procCPU(cfg.pid)
	began := time.Now()
	elapsed := runPublishers(ctx, cfg, start, &cnt)
	if sub != nil {
		sub.waitDrain(ctx, cfg, &cnt)
		res.Received = cnt.received.Load()
		res.LatP50, res.LatP90, res.LatP99, res.LatMax = sub.lat.percentiles()
	}
	// After the drain: the broker's CPU for the whole load, backlog included.
	cpu1, _ := procCPU(cfg.pid)
	res.Seconds = elapsed.Seconds()
	res.Sent, res.Acked, res.Errors = cnt.sent.Load(), cnt.acked.Load(), int64(cnt.errors.Load())
	res.SendRate = float64(res.Sent) / res.Seconds
	if sub != nil {
		// Deliveries may lag the publishers: rate over first send → last delivery.
		recvSecs := (math.Float64frombits(sub.lastAt.Load()) - float64(began.Sub(start).Microseconds())/1000) / 1000
		res.RecvRate = float64(res.Received) / max(recvSecs, res.Seconds)
		if res.Sent > 0 {
			res.LossPct = 100 * (float64(res.Sent) - float64(min(res.Received, res.Sent))) / float64(res.Sent)
		}
	}
	if cfg.pid > 0 {
		res.BrokerCPU = cpu1 - cpu0
		if res.Sent > 0 {
			res.CPUPer100k = res.BrokerCPU / float64(res.Sent) * 1e5
		}
		res.BrokerRSSMB = procRSSMB(cfg.pid)
	}
	if cfg.verify {
		n, err := verifyIngest(ctx, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ferrite-bench: %s: verify: %v\n", cfg.target, err)
		}
		res.Ingested = n
		res.IngestRate = float64(n) / res.Seconds
	}
	return res, nil
}

// runPublishers runs cfg.publishers publishers for cfg.duration and
// returns how long they took (until the last one stopped).
func runPublishers(ctx context.Context, cfg runConfig, start time.Time, cnt *counters) time.Duration {
	pubCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, cfg.publishers)
	began := time.Now()
	for i := range cfg.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if cfg.client == "paho" {
				err = publishPaho(pubCtx, cfg, i, start, cnt)
			} else {
				err = publishRaw(pubCtx, cfg, i, start, cnt)
			}
			if err != nil && pubCtx.Err() == nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	close(errs)
	for err := range errs {
		cnt.errors.Add(1)
		fmt.Fprintf(os.Stderr, "ferrite-bench: %s: publisher: %v\n", cfg.target, err)
	}
	return elapsed
}

// pacer spreads sends of one publisher over time (open loop): at any
// moment it allows floor(elapsed × rate) messages in total.
type pacer struct {
	rate  float64
	start time.Time
}

// due returns how many more messages may be sent now (capped at burst),
// or the wait until the next one.
func (p *pacer) due(sent uint64, burst int) (int, time.Duration) {
	if p.rate <= 0 {
		return burst, 0
	}
	allowed := uint64(time.Since(p.start).Seconds()*p.rate) + 1
	if allowed > sent {
		return int(min(allowed-sent, uint64(burst))), 0
	}
	next := time.Duration(float64(sent) / p.rate * float64(time.Second))
	return 0, max(time.Until(p.start.Add(next)), 50*time.Microsecond)
}

func publishRaw(ctx context.Context, cfg runConfig, i int, start time.Time, cnt *counters) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rc, err := dialRaw(dctx, cfg.broker, fmt.Sprintf("bench-%s-pub-%d", cfg.runID, i))
	cancel()
	if err != nil {
		return err
	}
	defer rc.close()
	topic := cfg.format.topic(cfg.runID, i)
	var window chan struct{}
	if cfg.qos > 0 {
		window = make(chan struct{}, cfg.inflight)
		done := make(chan struct{})
		go readAcks(rc, window, cnt, done)
		// The reader ends when the connection closes.
		defer func() { rc.close(); <-done }()
	}
	pc := pacer{rate: cfg.rate / float64(cfg.publishers), start: time.Now()}
	payload := make([]byte, 0, 256)
	var sent uint64
	for ctx.Err() == nil {
		n, wait := pc.due(sent, 256)
		if n == 0 {
			if err := rc.w.Flush(); err != nil {
				return err
			}
			sleepCtx(ctx, wait)
			continue
		}
		for range n {
			if window != nil {
				select {
				case window <- struct{}{}:
				default:
					if err := rc.w.Flush(); err != nil {
						return err
					}
					select {
					case window <- struct{}{}:
					case <-ctx.Done():
						return nil
					}
				}
			}
			payload = cfg.format.appendPayload(payload[:0], msSince(start))
			rc.publish(topic, payload, cfg.qos)
			sent++
			cnt.sent.Add(1)
		}
		if cfg.rate <= 0 && rc.w.Buffered() < 32<<10 {
			continue
		}
		if err := rc.w.Flush(); err != nil {
			return err
		}
	}
	if err := rc.w.Flush(); err != nil {
		return err
	}
	if window != nil {
		// Wait for the acknowledgements still in flight.
		deadline := time.Now().Add(cfg.drain)
		for len(window) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// readAcks counts PUBACKs and frees their in-flight slots until the
// connection closes.
func readAcks(rc *rawConn, window chan struct{}, cnt *counters, done chan struct{}) {
	defer close(done)
	var buf []byte
	for {
		typ, b, err := rc.readPacket(buf)
		if err != nil {
			return
		}
		buf = b
		if typ>>4 == pktPuback {
			cnt.acked.Add(1)
			<-window
		}
	}
}

func publishPaho(ctx context.Context, cfg runConfig, i int, start time.Time, cnt *counters) error {
	opts := paho.NewClientOptions().AddBroker(cfg.broker).
		SetClientID(fmt.Sprintf("bench-%s-paho-%d", cfg.runID, i)).
		SetCleanSession(true).SetAutoReconnect(false).SetKeepAlive(0).
		SetMaxResumePubInFlight(cfg.inflight).SetOrderMatters(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("paho connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	topic := cfg.format.topic(cfg.runID, i)
	tokens := make([]paho.Token, max(cfg.inflight, 1))
	pc := pacer{rate: cfg.rate / float64(cfg.publishers), start: time.Now()}
	var sent uint64
	for ctx.Err() == nil {
		n, wait := pc.due(sent, 64)
		if n == 0 {
			sleepCtx(ctx, wait)
			continue
		}
		for range n {
			slot := sent % uint64(len(tokens))
			if cfg.qos > 0 && tokens[slot] != nil {
				tokens[slot].Wait()
				if tokens[slot].Error() == nil {
					cnt.acked.Add(1)
				}
			}
			payload := cfg.format.appendPayload(nil, msSince(start))
			tokens[slot] = c.Publish(topic, cfg.qos, false, payload)
			sent++
			cnt.sent.Add(1)
		}
	}
	if cfg.qos > 0 {
		for _, t := range tokens {
			if t != nil && t.WaitTimeout(cfg.drain) && t.Error() == nil {
				cnt.acked.Add(1)
			}
		}
	}
	return nil
}

func msSince(start time.Time) float64 {
	return float64(time.Since(start).Microseconds()) / 1000
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// procCPU returns utime+stime of pid in seconds (0, false without a pid).
func procCPU(pid int) (float64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the ")" that ends the command name; utime, stime are 14, 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	const clkTck = 100 // USER_HZ on Linux
	return (ut + st) / clkTck, true
}

// procRSSMB returns the resident set size of pid in MiB.
func procRSSMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
