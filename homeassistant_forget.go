package ferrite

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/ferrite-edge/ferrite/ingest"
)

// Removing a forgotten sensor's entity (SENSOR.FORGET, docs/HOMEASSISTANT.md).

// errHAStopped: the publisher is not running (sync).
var errHAStopped = errors.New("ferrite: homeassistant publisher stopped")

// sync has the run goroutine poll now and returns once that poll is done:
// SENSOR.FORGET replies after the forgotten sensor's entity is cleared,
// so a crash right after the reply cannot leave it announced.
func (p *haPublisher) sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case p.pollReq <- done:
	case <-p.stopped:
		return errHAStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
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
// again, and no other sensor takes it.
// The skipped sensors are reconsidered at the next poll (a slot may be
// free, and a forgotten one must not stay counted).
func (p *haPublisher) clearForgotten(ctx context.Context, infos []ingest.SensorInfo) error {
	for id, s := range p.sensors {
		if _, ok := slices.BinarySearchFunc(infos, id, func(in ingest.SensorInfo, id string) int {
			return strings.Compare(in.ID, id)
		}); ok {
			continue
		}
		if err := p.send(ctx, "config", p.configTopic("sensor", s.slug), nil); err != nil {
			return err
		}
		if err := p.send(ctx, "state", p.sensorStateTopic(s.slug), nil); err != nil {
			return err
		}
		delete(p.sensors, id) // its slug stays its own (homeassistant_slugs.go)
		p.log.Info("sensor forgotten: its entity is removed", "sensor", id)
	}
	clear(p.skipped)
	p.m.notShown.Set(0)
	return nil
}
