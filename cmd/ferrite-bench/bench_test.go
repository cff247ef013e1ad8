package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/ferrite-edge/ferrite/store"
)

func startBroker(t *testing.T) string {
	t.Helper()
	b, err := broker.New(broker.Options{Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return "tcp://" + b.Addr()
}

func TestRunAgainstBroker(t *testing.T) {
	addr := startBroker(t)
	for _, tc := range []struct {
		client string
		qos    byte
		format string
	}{
		{"raw", 1, "number"},
		{"raw", 0, "zigbee2mqtt"},
		{"paho", 1, "senml"},
	} {
		t.Run(tc.client+"/"+tc.format, func(t *testing.T) {
			cfg := runConfig{
				target: "t", broker: addr, publishers: 3, rate: 300, duration: 700 * time.Millisecond, qos: tc.qos,
				format: formats[tc.format], client: tc.client, subscribe: true, inflight: 10,
				runID: "test" + tc.client + tc.format, drain: 5 * time.Second,
			}
			res, err := run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent == 0 || res.Errors != 0 {
				t.Fatalf("result %+v", res)
			}
			if tc.qos == 1 && res.Acked != res.Sent {
				t.Fatalf("acked %d of %d", res.Acked, res.Sent)
			}
			// A local broker at 300 msg/s delivers everything.
			if res.Received != res.Sent || res.LossPct != 0 || res.LatP50 <= 0 || res.LatMax < res.LatP99 {
				t.Fatalf("result %+v", res)
			}
			// The open-loop pacer offers about the configured rate (a
			// correctness check of the pacer's arithmetic, with a wide margin).
			if res.Sent > 3*300 {
				t.Fatalf("sent %d in 0.7s at 300 msg/s", res.Sent)
			}
		})
	}
}

func TestGentleAndFlags(t *testing.T) {
	addr := startBroker(t)
	rc, err := dialRaw(context.Background(), addr, "watcher")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	if err := rc.subscribe("#", 0); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := realMain(context.Background(), []string{"-gentle", "-broker", addr, "-duration", "500ms"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	topics := map[string]bool{}
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(topics) < 6 {
		typ, b, err := rc.readPacket(nil)
		if err != nil {
			t.Fatalf("got topics %v: %v", topics, err)
		}
		if typ>>4 == pktPublish {
			topic, _, _ := publishPayload(typ, b)
			topics[string(topic)] = true
		}
	}
	for _, args := range [][]string{{"-format", "xml"}, {"-qos", "2"}, {"-target", "nope"}, {"-pid", "x=1"}} {
		if code := realMain(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	errOut.Reset()
	if code := realMain(context.Background(), []string{"-h"}, io.Discard, &errOut); code != 0 || !strings.Contains(errOut.String(), "-publishers") {
		t.Errorf("-h: exit %d, %q", code, errOut.String())
	}
}

func TestEmbeddedOffset(t *testing.T) {
	for name, f := range formats {
		p := f.appendPayload(nil, 1234.567)
		got, ok := f.embeddedOffset(p)
		if !ok || got != 1234.567 {
			t.Errorf("%s: %q → %v %v", name, p, got, ok)
		}
	}
}

// startGateway wires the real broker, store and ingest pipeline the way the
// root package does, so -verify has SENSOR.STATS to ask.
func startGateway(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Options{NodeID: "bench-test", Dir: t.TempDir(), Logger: log, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ingest.New(context.Background(), ingest.Options{Store: ingest.NewStoreBackend(st), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{Listen: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := broker.HandlerFunc(func(ctx context.Context, msgs []*broker.Message) error {
		in := make([]*ingest.Message, len(msgs))
		for i, m := range msgs {
			in[i] = &ingest.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, ClientID: m.ClientID}
		}
		return p.HandleMessages(ctx, in)
	})
	if err := b.Handle("#", h, broker.HandlerOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range ingest.Commands(p) {
		if err := b.Router().Register(broker.Command{Name: c.Name, MinArgs: c.MinArgs, MaxArgs: c.MaxArgs,
			Func: func(ctx context.Context, req *broker.Request) (any, error) { return c.Run(ctx, req.Args) }}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = p.Close(context.Background())
		_ = st.Close()
	})
	return "tcp://" + b.Addr()
}

func TestVerifyCountsIngestedReadings(t *testing.T) {
	addr := startGateway(t)
	cfg := runConfig{
		target: "ferrite", broker: addr, publishers: 2, rate: 200, duration: 500 * time.Millisecond, qos: 1,
		format: formats["tasmota"], client: "raw", verify: true, inflight: 10, runID: "verify", drain: 5 * time.Second,
	}
	res, err := run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// QoS 1: every acknowledged message is a stored reading.
	if res.Acked == 0 || res.Ingested != res.Acked || res.IngestRate <= 0 {
		t.Fatalf("result %+v", res)
	}
}
