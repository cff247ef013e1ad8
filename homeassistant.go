package ferrite

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ferrite-edge/ferrite/broker"
	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Home Assistant MQTT discovery (docs/HOMEASSISTANT.md).
//
// One goroutine owns all of the publisher's state. Every publish_interval
// it reads the ingestion registry: a sensor it has not announced yet gets
// its retained discovery config, then every sensor whose reading count
// moved gets one retained state message (so a 1 kHz sensor still costs
// Home Assistant one message per interval). The gateway's own entities
// (sync status, pending ops, hub link, resource level...) share one state
// message, published when it changes.
//
// Everything is republished when Home Assistant announces itself on
// <discovery_prefix>/status ("online": it restarted and may have lost
// them), and every half broker.limits.message_expiry, because the broker
// drops retained messages older than that. Availability is "online"
// (retained) from start and "offline" at a graceful stop. The broker is
// embedded, so there is no last will: a crashed gateway takes its broker
// down with it and Home Assistant marks every entity of a broker it lost
// unavailable on its own.
//
// A sensor the registry no longer lists (SENSOR.FORGET) gets an empty
// retained config, which is how MQTT discovery removes an entity, and an
// empty retained state; it is then forgotten, so no republication brings
// it back. SENSOR.FORGET waits for that poll (forgotten) before it
// replies. Entities left retained without a sensor (a crash in between)
// are found in the broker and cleared at start and at Home Assistant's
// birth (repair, homeassistant_forget.go).

// haSource is what the publisher reads; the node implements it over the
// ingestion pipeline, the syncer and the resource monitor.
type haSource interface {
	// Sensors lists the registered sensors, sorted by id.
	Sensors() []ingest.SensorInfo
	// CurrentBucket is the sensor's newest bucket of the narrowest width.
	CurrentBucket(sensor string) (ingest.Bucket, bool)
	// Gateway is the state of the gateway's own entities.
	Gateway() haGatewayState
}

// haPublishRate bounds the publisher's messages per second (bursts of 200),
// so republishing a thousand configs does not overflow Home Assistant's
// queue on the broker (broker.limits.max_queued_messages).
const haPublishRate = 500

// haPublisher announces the node's sensors to Home Assistant.
type haPublisher struct {
	cfg     HomeAssistantConfig
	node    string // node id (topic-safe, validated by the config)
	haNode  string // node id as Home Assistant ids allow it (haNodeID)
	model   string
	src     haSource
	publish func(topic string, payload []byte) error // retained
	log     *slog.Logger
	limit   *rate.Limiter
	refresh time.Duration // 0: never
	m       haMetrics

	birth chan struct{} // Home Assistant said online (cap 1)
	// pollReq asks the run goroutine for a poll now (forgotten). stopped
	// is closed when run returns.
	pollReq chan haForgetReq
	stopped chan struct{}
	// retained, if set, lists the broker's retained messages on a
	// filter (repair).
	retained func(filter string) ([]broker.Message, error)
	// drain, if set, waits until the broker has written the messages it
	// queued (the offline availability before the broker closes).
	drain func()

	// slugStore, if set, keeps the slug table across restarts
	// (homeassistant_slugs.go).
	slugStore haSlugStore
	slugLog   rate.Sometimes

	// Owned by the run goroutine.
	sensors  map[string]*haSensor // by sensor id
	slugs    map[string]string    // slug → sensor id, forgotten ones too ("" reserved)
	unsaved  []string             // slugs given since the table was last stored
	skipped  map[string]bool      // sensors beyond max_sensors
	unclear  map[string]error     // forgotten sensors whose entity the last poll could not clear
	gateway  []byte               // last gateway state published
	gwConfig map[string]bool      // gateway entities announced
}

// haSensor is what the publisher remembers of one announced sensor.
type haSensor struct {
	slug  string
	count uint64 // readings at the last state published
	unit  string // unit the config was published with
}

type haMetrics struct {
	messages   *prometheus.CounterVec
	errors     prometheus.Counter
	republish  *prometheus.CounterVec
	announced  prometheus.Gauge
	notShown   prometheus.Gauge
	collectors []prometheus.Collector
}

func newHAMetrics(reg prometheus.Registerer) (haMetrics, error) {
	m := haMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_homeassistant_messages_total",
			Help: "Messages published for Home Assistant, by kind (config, state, gateway, availability).",
		}, []string{"kind"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_homeassistant_publish_errors_total",
			Help: "Home Assistant messages the broker refused.",
		}),
		republish: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_homeassistant_republish_total",
			Help: "Full republications of every config and state, by reason (birth, refresh).",
		}, []string{"reason"}),
		announced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferrite_homeassistant_sensors",
			Help: "Sensors announced to Home Assistant.",
		}),
		notShown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferrite_homeassistant_sensors_skipped",
			Help: "Sensors not announced because homeassistant.max_sensors is reached.",
		}),
	}
	m.collectors = []prometheus.Collector{m.messages, m.errors, m.republish, m.announced, m.notShown}
	var errs []error
	for _, c := range m.collectors {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

func newHAPublisher(cfg HomeAssistantConfig, node, model string, src haSource,
	publish func(topic string, payload []byte) error, refresh time.Duration,
	log *slog.Logger, reg prometheus.Registerer) (*haPublisher, error) {
	if cfg.NodeName == "" {
		cfg.NodeName = node
	}
	m, err := newHAMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("ferrite: homeassistant metrics: %w", err)
	}
	p := &haPublisher{
		cfg: cfg, node: node, haNode: haNodeID(node), model: model, src: src, publish: publish, refresh: refresh,
		log:      log,
		limit:    rate.NewLimiter(haPublishRate, 200),
		m:        m,
		slugLog:  rate.Sometimes{First: 1, Interval: time.Minute},
		birth:    make(chan struct{}, 1),
		pollReq:  make(chan haForgetReq),
		stopped:  make(chan struct{}),
		sensors:  make(map[string]*haSensor),
		slugs:    make(map[string]string),
		skipped:  make(map[string]bool),
		unclear:  make(map[string]error),
		gwConfig: make(map[string]bool),
	}
	for _, e := range haGatewayEntities {
		p.slugs[gatewaySlug(e.slug)] = "" // reserved: sensors cannot take them
	}
	return p, nil
}

// HandleMessages receives <discovery_prefix>/status: Home Assistant's
// birth ("online") asks for everything again.
func (p *haPublisher) HandleMessages(_ context.Context, msgs []*broker.Message) error {
	for _, m := range msgs {
		if string(bytes.TrimSpace(m.Payload)) == haOnline {
			select {
			case p.birth <- struct{}{}:
			default: // one republication is already due
			}
		}
	}
	return nil
}

// run publishes until ctx ends, then marks the gateway offline.
func (p *haPublisher) run(ctx context.Context) error {
	defer close(p.stopped)
	defer func() {
		if err := p.publish(p.availabilityTopic(), []byte(haOffline)); err == nil {
			p.m.messages.WithLabelValues("availability").Inc()
			if p.drain != nil {
				p.drain()
			}
		}
	}()
	if err := p.send(ctx, "availability", p.availabilityTopic(), []byte(haOnline)); err != nil {
		return err
	}
	tick := time.NewTicker(p.cfg.PublishInterval.D())
	defer tick.Stop()
	var refresh <-chan time.Time
	if p.refresh > 0 {
		t := time.NewTicker(p.refresh)
		defer t.Stop()
		refresh = t.C
	}
	err := p.poll(ctx)
	for err == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			err = p.poll(ctx)
		case r := <-p.pollReq:
			err = p.poll(ctx)
			res := err
			if res == nil {
				res = p.unclear[r.sensor]
			}
			r.done <- res
		case <-p.birth:
			p.m.republish.WithLabelValues("birth").Inc()
			p.log.Info("home assistant is online: republishing every config")
			err = p.republish(ctx)
			if err == nil {
				err = p.repair(ctx) // it lists every retained config again
			}
		case <-refresh:
			p.m.republish.WithLabelValues("refresh").Inc()
			err = p.republish(ctx)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// republish forgets what was published, so the next poll sends every
// config and state again (availability first).
func (p *haPublisher) republish(ctx context.Context) error {
	if err := p.send(ctx, "availability", p.availabilityTopic(), []byte(haOnline)); err != nil {
		return err
	}
	for _, s := range p.sensors {
		s.count, s.unit = math.MaxUint64, "\x00" // config and state differ from anything real
	}
	clear(p.gwConfig)
	p.gateway = nil
	return p.poll(ctx)
}

// poll announces new sensors, publishes changed states and the gateway's.
func (p *haPublisher) poll(ctx context.Context) error {
	infos := p.src.Sensors()
	p.register(infos)
	if err := p.saveSlugs(ctx); err != nil {
		p.slugLog.Do(func() {
			p.log.Warn("home assistant slugs not stored: new sensors are announced once they are", "error", err)
		})
	}
	seen, seenSkipped := 0, 0
	for i := range infos {
		info := &infos[i]
		s := p.sensors[info.ID]
		if s == nil {
			if p.skipped[info.ID] {
				seenSkipped++
			}
			continue
		}
		seen++
		if s.unit != info.Unit {
			if err := p.sendJSON(ctx, "config", p.configTopic("sensor", s.slug), p.sensorConfig(info, s.slug)); err != nil {
				return err
			}
			s.unit = info.Unit
		}
		if s.count != info.Count {
			if err := p.sendJSON(ctx, "state", p.sensorStateTopic(s.slug), p.sensorState(info)); err != nil {
				return err
			}
			s.count = info.Count
		}
	}
	clear(p.unclear)
	if seen < len(p.sensors) || seenSkipped < len(p.skipped) {
		if err := p.clearForgotten(ctx, infos); err != nil {
			return err
		}
	}
	p.m.announced.Set(float64(len(p.sensors)))
	return p.pollGateway(ctx)
}

// register gives the sensors not yet announced their slugs in the order
// they were first seen (then by id): of two new ids with the same slug,
// the one seen first keeps it and the other gets a hash suffix. A sensor
// announced before keeps its slug whatever the order (the slug table,
// homeassistant_slugs.go): otherwise unique_ids swap after a restart and
// Home Assistant attaches one sensor's history to the other (found by the
// HA audit).
func (p *haPublisher) register(infos []ingest.SensorInfo) {
	var fresh []*ingest.SensorInfo
	for i := range infos {
		if p.sensors[infos[i].ID] == nil && !p.skipped[infos[i].ID] {
			fresh = append(fresh, &infos[i])
		}
	}
	slices.SortFunc(fresh, func(a, b *ingest.SensorInfo) int {
		if c := cmp.Compare(a.FirstSeen.UnixMilli(), b.FirstSeen.UnixMilli()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, info := range fresh {
		p.sensor(info.ID)
	}
}

// sensor returns the publisher's record of a sensor, making one (with a
// slug no other sensor has, or its own from before) on first sight; nil
// beyond max_sensors.
func (p *haPublisher) sensor(id string) *haSensor {
	if s := p.sensors[id]; s != nil {
		return s
	}
	if len(p.sensors) >= p.cfg.MaxSensors {
		if !p.skipped[id] {
			if len(p.skipped) == 0 {
				p.log.Warn("homeassistant.max_sensors reached: further sensors are not announced",
					"max_sensors", p.cfg.MaxSensors, "sensor", id)
			}
			p.skipped[id] = true
			p.m.notShown.Set(float64(len(p.skipped)))
		}
		return nil
	}
	slug := p.slugFor(id)
	if p.slugs[slug] != id {
		p.slugs[slug] = id
		p.unsaved = append(p.unsaved, slug)
	}
	s := &haSensor{slug: slug, count: math.MaxUint64, unit: "\x00"}
	p.sensors[id] = s
	return s
}

func (p *haPublisher) pollGateway(ctx context.Context) error {
	g := p.src.Gateway()
	g.Sensors = len(p.sensors)
	for _, e := range haGatewayEntities {
		if p.gwConfig[e.slug] || !e.needs(&g) {
			continue
		}
		if err := p.sendJSON(ctx, "config", p.configTopic(e.component, gatewaySlug(e.slug)), p.gatewayConfig(e)); err != nil {
			return err
		}
		p.gwConfig[e.slug] = true
	}
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	if bytes.Equal(b, p.gateway) {
		return nil
	}
	if err := p.send(ctx, "gateway", p.gatewayStateTopic(), b); err != nil {
		return err
	}
	p.gateway = b
	return nil
}

func (p *haPublisher) sendJSON(ctx context.Context, kind, topic string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		// A float that is not finite (a sum that overflowed): skip this
		// message, keep the others flowing.
		p.m.errors.Inc()
		p.log.Warn("home assistant message not encoded", "topic", topic, "error", err)
		return nil
	}
	return p.send(ctx, kind, topic, b)
}

// send publishes one retained message at the publisher's rate. A refusal
// by the broker is counted and logged, not fatal (the next republication
// sends it again); only the end of ctx stops the publisher.
func (p *haPublisher) send(ctx context.Context, kind, topic string, payload []byte) error {
	_, err := p.trySend(ctx, kind, topic, payload)
	return err
}

// trySend is send that also returns the broker's refusal (refused), for
// the callers that must not take a message as published when it is not.
func (p *haPublisher) trySend(ctx context.Context, kind, topic string, payload []byte) (refused, err error) {
	if err := p.limit.Wait(ctx); err != nil {
		return nil, err
	}
	if err := p.publish(topic, payload); err != nil {
		if errors.Is(err, broker.ErrClosed) {
			return nil, err
		}
		p.m.errors.Inc()
		p.log.Warn("home assistant message not published", "topic", topic, "error", err)
		return err, nil
	}
	p.m.messages.WithLabelValues(kind).Inc()
	return nil, nil
}

// Topics.

func (p *haPublisher) configTopic(component, slug string) string {
	return p.cfg.DiscoveryPrefix + "/" + component + "/" + p.haNode + "_" + slug + "/config"
}

// uniqueNode is the node part of unique ids: the node id's slug, as it
// always was (changing it would orphan existing entities), unless the
// node id is one Home Assistant's discovery topics refuse: those gateways
// never had entities, and get haNodeID's collision-free form. (Two valid
// node ids with one slug, "gw-1" and "gw_1", still share unique ids.)
func (p *haPublisher) uniqueNode() string {
	if p.haNode == p.node {
		return slugify(p.node)
	}
	return p.haNode
}

// haNodeID is the node id as Home Assistant's discovery topics and unique
// ids take it: [a-zA-Z0-9_-]+ as it is; anything else (a host name with
// dots, "küche") slugged, with a hash of the id so that "gw.1" and "gw:1"
// stay apart. Home Assistant ignores a discovery topic with other
// characters.
func haNodeID(node string) string {
	for _, r := range node {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return slugify(node) + "_" + shortHash(node)
		}
	}
	return node
}

func (p *haPublisher) sensorStateTopic(slug string) string {
	return p.cfg.StatePrefix + "/" + p.node + "/sensor/" + slug + "/state"
}

func (p *haPublisher) gatewayStateTopic() string {
	return p.cfg.StatePrefix + "/" + p.node + "/gateway/state"
}

func (p *haPublisher) availabilityTopic() string {
	return p.cfg.StatePrefix + "/" + p.node + "/availability"
}

// Payloads.

func (p *haPublisher) baseConfig(component, slug, name, stateTopic, template string) haConfig {
	id := slugify(p.node) + "_" + slug
	return haConfig{
		Name:                name,
		UniqueID:            "ferrite_" + p.uniqueNode() + "_" + slug,
		ObjectID:            id,
		DefaultEntityID:     component + "." + id,
		StateTopic:          stateTopic,
		ValueTemplate:       template,
		AvailabilityTopic:   p.availabilityTopic(),
		PayloadAvailable:    haOnline,
		PayloadNotAvailable: haOffline,
		Device: haDevice{
			Identifiers:  []string{"ferrite_" + p.node},
			Name:         p.cfg.NodeName,
			Manufacturer: "Ferrite Edge",
			Model:        p.model,
			SWVersion:    Version,
		},
		Origin: haOrigin{Name: "Ferrite Edge", SWVersion: Version, SupportURL: "https://github.com/ferrite-edge/ferrite"},
	}
}

func (p *haPublisher) sensorConfig(info *ingest.SensorInfo, slug string) haConfig {
	topic := p.sensorStateTopic(slug)
	c := p.baseConfig("sensor", slug, info.ID, topic, "{{ value_json.value }}")
	c.JSONAttributesTopic = topic
	c.JSONAttributesTemplate = "{{ value_json.attributes | tojson }}"
	cl := classify(info.ID, info.Unit)
	c.UnitOfMeasurement, c.DeviceClass, c.StateClass = cl.Unit, cl.DeviceClass, cl.StateClass
	return c
}

func (p *haPublisher) gatewayConfig(e haEntity) haConfig {
	c := p.baseConfig(e.component, gatewaySlug(e.slug), e.name, p.gatewayStateTopic(), e.template)
	c.EntityCategory = "diagnostic"
	e.cfg(&c)
	return c
}

func (p *haPublisher) sensorState(info *ingest.SensorInfo) haSensorState {
	st := haSensorState{
		Value: info.Last,
		Time:  info.LastTime.UTC().Format(time.RFC3339Nano),
		Attributes: haAttributes{
			Sensor: info.ID, Node: p.node, Unit: info.Unit,
			LastSeen: info.LastSeen.UTC().Format(time.RFC3339Nano),
			Readings: info.Count, Min: info.Min, Max: info.Max, Avg: info.Avg(),
		},
	}
	if b, ok := p.src.CurrentBucket(info.ID); ok {
		st.Attributes.haBucketAttrs = &haBucketAttrs{
			BucketStart: b.Start.UTC().Format(time.RFC3339),
			BucketWidth: formatWidth(b.Width),
			BucketCount: b.Count, BucketMin: b.Min, BucketMax: b.Max, BucketAvg: b.Avg(),
		}
	}
	return st
}

// formatWidth writes a bucket width as the store keys do: 30s, 1m, 1h.
func formatWidth(w time.Duration) string {
	switch s := int64(w / time.Second); {
	case s > 0 && s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	case s > 0 && s%60 == 0:
		return fmt.Sprintf("%dm", s/60)
	default:
		return fmt.Sprintf("%ds", s)
	}
}
