package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/ferrite-edge/ferrite/store"
)

// These tests run the pipeline behind the real broker with real paho
// publishers, wired the way the root package wires it (a thin adapter
// from broker.Message, refusals mapped to reason code 0x97, the sensor
// commands on the $ferrite/cmd router).

type gateway struct {
	st  *store.Store
	p   *ingest.Pipeline
	b   *broker.Broker
	url string
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Options{NodeID: "edge-1", Dir: t.TempDir(), Logger: log, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ingest.New(context.Background(), ingest.Options{Store: ingest.NewStoreBackend(st), Logger: log, Location: time.UTC})
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
		err := p.HandleMessages(ctx, in)
		if errors.Is(err, ingest.ErrRefused) {
			return &broker.RejectError{Code: 0x97, Reason: err.Error()}
		}
		return err
	})
	if err := b.Handle("#", h, broker.HandlerOptions{Name: "ingest"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range ingest.Commands(p) {
		c := c
		err := b.Router().Register(broker.Command{
			Name: c.Name, MinArgs: c.MinArgs, MaxArgs: c.MaxArgs, ReadOnly: c.ReadOnly, Help: c.Help,
			Func: func(ctx context.Context, req *broker.Request) (any, error) { return c.Run(ctx, req.Args) },
		})
		if err != nil {
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
	return &gateway{st: st, p: p, b: b, url: "tcp://" + b.Addr()}
}

func connect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func publish(t *testing.T, c paho.Client, topic, payload string, qos byte) {
	t.Helper()
	if tok := c.Publish(topic, qos, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// command sends a command line on $ferrite/cmd and returns the JSON reply
// (MQTT 3.1.1: on $ferrite/reply/<client-id>).
type commander struct {
	c       paho.Client
	replies chan []byte
}

func newCommander(t *testing.T, url string) *commander {
	cm := &commander{replies: make(chan []byte, 16)}
	cm.c = connect(t, url, "cmd-client")
	tok := cm.c.Subscribe("$ferrite/reply/cmd-client", 1, func(_ paho.Client, m paho.Message) { cm.replies <- m.Payload() })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return cm
}

func (cm *commander) do(t *testing.T, line string, v any) {
	t.Helper()
	publish(t, cm.c, "$ferrite/cmd", line, 1)
	select {
	case b := <-cm.replies:
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: reply %s: %v", line, b, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no reply", line)
	}
}

func TestEndToEndFormats(t *testing.T) {
	g := startGateway(t)
	pub := connect(t, g.url, "sensor-pub")
	for _, m := range []struct{ topic, payload string }{
		{"sensors/temp-001", "22.5"},
		{"sensors/temp-001", "20.5"},
		{"sensors/temp-001", `{"value":24.5,"unit":"celsius","ts":1708300000}`},
		{"senml/meter", `[{"bn":"meter-1/","n":"voltage","u":"V","v":230.5},{"n":"current","u":"A","v":1.25}]`},
		{"zigbee2mqtt/living", `{"temperature":21.5,"humidity":40,"state":"ON","action":"x"}`},
		{"kitchen/sensor/temperature/state", "19.25"},
		{"tele/plug/SENSOR", `{"Time":"2024-02-19T00:26:40","AM2301":{"Temperature":22.5,"Humidity":40},"TempUnit":"C"}`},
	} {
		publish(t, pub, m.topic, m.payload, 1) // QoS 1: acknowledged after the store write
	}
	cm := newCommander(t, g.url)
	var st ingest.StatsReply
	cm.do(t, "SENSOR.STATS temp-001", &st)
	if st.Count != 3 || st.Min != 20.5 || st.Max != 24.5 || st.Sum != 67.5 || st.Avg != 22.5 || st.Unit != "celsius" {
		t.Fatalf("SENSOR.STATS temp-001 = %+v", st)
	}
	for id, want := range map[string]float64{
		"meter-1/voltage":         230.5,
		"meter-1/current":         1.25,
		"living/temperature":      21.5,
		"living/state":            1,
		"kitchen/temperature":     19.25,
		"plug/AM2301/Temperature": 22.5,
	} {
		var s ingest.StatsReply
		cm.do(t, "SENSOR.STATS "+id, &s)
		if s.Count != 1 || s.Last != want {
			t.Errorf("SENSOR.STATS %s = %+v, want one reading %v", id, s, want)
		}
	}
	var list []ingest.ListEntry
	cm.do(t, "SENSOR.LIST living/*", &list)
	if len(list) != 3 || list[0].ID != "living/humidity" || list[2].Unit != "°C" {
		t.Fatalf("SENSOR.LIST living/* = %+v", list)
	}
	var errReply struct{ Error string }
	cm.do(t, "SENSOR.STATS nope", &errReply)
	if errReply.Error == "" {
		t.Fatal("SENSOR.STATS of an unknown sensor did not fail")
	}
}

func TestEndToEndMalformedStillDelivered(t *testing.T) {
	g := startGateway(t)
	sub := connect(t, g.url, "watcher")
	var mu sync.Mutex
	got := map[string]string{}
	tok := sub.Subscribe("sensors/#", 0, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got[m.Topic()] = string(m.Payload())
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := connect(t, g.url, "bad-sensor")
	publish(t, pub, "sensors/bad", "not a number", 1)
	publish(t, pub, "sensors/bad2", `{"value":`, 0)
	publish(t, pub, "sensors/good", "1", 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got["sensors/bad"] != "not a number" {
		t.Fatalf("malformed message not delivered intact: %q", got["sensors/bad"])
	}
	for _, id := range []string{"bad", "bad2"} {
		if _, ok := g.p.Ingestion().Aggregate(id); ok {
			t.Fatalf("malformed payload registered sensor %q", id)
		}
	}
	if _, ok := g.p.Ingestion().Aggregate("good"); !ok {
		t.Fatal("good reading missing")
	}
}

func TestEndToEndRefusedNotStored(t *testing.T) {
	g := startGateway(t)
	g.st.SetRefuseWrites("critical")
	pub := connect(t, g.url, "refused-pub")
	// MQTT 3.1.1 has no negative PUBACK: the broker withholds the ack, the
	// publisher retries later. Nothing may be stored.
	tok := pub.Publish("sensors/refused", 1, false, "1")
	if tok.WaitTimeout(300*time.Millisecond) && tok.Error() == nil {
		t.Fatal("a refused QoS 1 reading was acknowledged")
	}
	if _, ok := g.p.Ingestion().Aggregate("refused"); ok {
		t.Fatal("refused reading stored")
	}
}
