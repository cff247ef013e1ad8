package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
)

// commander sends $ferrite/cmd requests to one node over MQTT 5 and
// matches the replies by correlation data, as any client of the gateway
// would (see README, "Commands and topics").
type commander struct {
	c     *paho.Client
	reply string

	mu      sync.Mutex
	seq     uint64
	waiting map[string]chan []byte
	onData  func(topic string, payload []byte) // other subscriptions
}

func dialCommander(ctx context.Context, id, addr string) (*commander, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cm := &commander{reply: "ferrite-demo/reply/" + id, waiting: make(map[string]chan []byte)}
	cm.c = paho.NewClient(paho.ClientConfig{
		Conn:     conn,
		ClientID: id,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { cm.received(pr.Packet); return true, nil },
		},
	})
	if _, err := cm.c.Connect(dctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	if err := cm.subscribe(dctx, cm.reply); err != nil {
		return nil, err
	}
	return cm, nil
}

func (cm *commander) subscribe(ctx context.Context, filter string) error {
	if _, err := cm.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return nil
}

func (cm *commander) received(m *paho.Publish) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if m.Topic != cm.reply {
		if cm.onData != nil {
			cm.onData(m.Topic, m.Payload)
		}
		return
	}
	if m.Properties == nil {
		return
	}
	id := string(m.Properties.CorrelationData)
	if ch := cm.waiting[id]; ch != nil {
		delete(cm.waiting, id)
		ch <- m.Payload
	}
}

// watch subscribes to filter; fn is called (under the commander's lock:
// it must be fast) for every message.
func (cm *commander) watch(ctx context.Context, filter string, fn func(topic string, payload []byte)) error {
	cm.mu.Lock()
	cm.onData = fn
	cm.mu.Unlock()
	return cm.subscribe(ctx, filter)
}

// do runs one command (sent as a JSON array: no quoting issues) and
// returns its JSON reply; an {"error": ...} reply is an error.
func (cm *commander) do(ctx context.Context, args ...string) (json.RawMessage, error) {
	body, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	cm.mu.Lock()
	cm.seq++
	id := strconv.FormatUint(cm.seq, 10)
	cm.waiting[id] = ch
	cm.mu.Unlock()
	defer func() {
		cm.mu.Lock()
		delete(cm.waiting, id)
		cm.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = cm.c.Publish(ctx, &paho.Publish{
		Topic: "$ferrite/cmd", QoS: 1, Payload: body,
		Properties: &paho.PublishProperties{ResponseTopic: cm.reply, CorrelationData: []byte(id)},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", args[0], err)
	}
	select {
	case b := <-ch:
		var e struct {
			Error string `json:"error"`
		}
		if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", strings.Join(args, " "), e.Error)
		}
		return b, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no reply: %w", args[0], ctx.Err())
	}
}

// doInto runs a command and decodes its reply into v.
func (cm *commander) doInto(ctx context.Context, v any, args ...string) error {
	b, err := cm.do(ctx, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: reply %s: %w", args[0], b, err)
	}
	return nil
}

func (cm *commander) close() {
	if cm == nil {
		return
	}
	_ = cm.c.Disconnect(&paho.Disconnect{})
}

var errNotConverged = errors.New("the replicas did not converge")
