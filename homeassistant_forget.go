package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ferrite-edge/ferrite/ingest"
)

// Removing a forgotten sensor's entity (SENSOR.FORGET, docs/HOMEASSISTANT.md).

// errHAStopped: the publisher is not running (forgotten).
var errHAStopped = errors.New("ferrite: homeassistant publisher stopped")

// haForgetReq asks the run goroutine for a poll; done (buffered) gets
// why the sensor's entity is not cleared, or nil.
type haForgetReq struct {
	sensor string
	done   chan error
}

// forgotten has the run goroutine poll now, which clears the entities of
// the sensors the registry no longer lists, and returns once that poll is
// done: nil if sensor's entity is cleared (or it had none), else why not
// (the broker refused the empty messages: a later poll tries again).
// SENSOR.FORGET replies after it, so that it does not claim a removal
// that did not happen.
func (p *haPublisher) forgotten(ctx context.Context, sensor string) error {
	r := haForgetReq{sensor: sensor, done: make(chan error, 1)}
	select {
	case p.pollReq <- r:
	case <-p.stopped:
		return errHAStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-p.stopped:
		return errHAStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clearForgotten removes the entities of the announced sensors the
// registry no longer lists (infos, sorted by id): SENSOR.FORGET. An empty
// retained config is how Home Assistant's MQTT discovery deletes an
// entity, and an empty retained state deletes the broker's copy of the
// last value, so neither a birth nor a new subscriber brings them back.
// The slug stays reserved: a sensor that comes back is announced with it
// again, and no other sensor takes it. A sensor whose messages the broker
// refused stays announced, so the next poll tries again (p.unclear says
// why until then). The skipped sensors are reconsidered at the next poll
// (a slot may be free, and a forgotten one must not stay counted).
func (p *haPublisher) clearForgotten(ctx context.Context, infos []ingest.SensorInfo) error {
	for id, s := range p.sensors {
		if _, ok := slices.BinarySearchFunc(infos, id, func(in ingest.SensorInfo, id string) int {
			return strings.Compare(in.ID, id)
		}); ok {
			continue
		}
		refused, err := p.clearEntity(ctx, s.slug)
		if err != nil {
			return err
		}
		if refused != nil {
			p.unclear[id] = fmt.Errorf("entity %s not removed: %w", s.slug, refused)
			continue
		}
		delete(p.sensors, id) // its slug stays its own (homeassistant_slugs.go)
		p.log.Info("sensor forgotten: its entity is removed", "sensor", id)
	}
	clear(p.skipped)
	p.m.notShown.Set(0)
	return nil
}

// clearEntity publishes the empty retained config and state of the
// sensor entity of slug.
func (p *haPublisher) clearEntity(ctx context.Context, slug string) (refused, err error) {
	refused, err = p.trySend(ctx, "config", p.configTopic("sensor", slug), nil)
	if refused != nil || err != nil {
		return refused, err
	}
	return p.trySend(ctx, "state", p.sensorStateTopic(slug), nil)
}

// repair clears the entities of this node's sensors that the broker
// still holds retained though no registered sensor owns them: left by a
// crash between SENSOR.FORGET's store batch and the entity's clear (or
// its fsync), they would stay in Home Assistant for good, since the
// publisher only clears sensors it announced itself. It runs at start,
// before the first poll, and at Home Assistant's birth.
//
// A config is this node's sensor entity when its state topic is this
// node's state topic for the slug its config topic names: the gateway's
// entities (their own state topic) and other nodes' on the same broker
// are never touched. It is an orphan when its sensor (the entity's name)
// is not registered, or is registered with another stored slug (a
// duplicate left by slugs recomputed at a restart, before the slug table).
func (p *haPublisher) repair(ctx context.Context) error {
	if p.retained == nil {
		return nil
	}
	msgs, err := p.retained(p.cfg.DiscoveryPrefix + "/sensor/+/config")
	if err != nil {
		return err
	}
	infos := p.src.Sensors()
	registered := func(id string) bool {
		_, ok := slices.BinarySearchFunc(infos, id, func(in ingest.SensorInfo, id string) int {
			return strings.Compare(in.ID, id)
		})
		return ok
	}
	prefix := p.cfg.DiscoveryPrefix + "/sensor/" + p.haNode + "_"
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m.Topic, prefix)
		slug, ok2 := strings.CutSuffix(rest, "/config")
		if !ok || !ok2 || slug == "" {
			continue
		}
		var c struct {
			Name       string `json:"name"`
			StateTopic string `json:"state_topic"`
		}
		if json.Unmarshal(m.Payload, &c) != nil || c.StateTopic != p.sensorStateTopic(slug) {
			continue // not a sensor entity of this node
		}
		if registered(c.Name) {
			own := p.slugFor(c.Name)
			if own == slug || p.slugs[own] != c.Name {
				continue // its entity, or no stored slug to tell
			}
		}
		refused, err := p.clearEntity(ctx, slug)
		if err != nil {
			return err
		}
		if refused == nil {
			p.log.Info("entity of a sensor no longer registered removed", "sensor", c.Name, "topic", m.Topic)
		}
	}
	return nil
}
