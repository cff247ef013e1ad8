package ferrite

import (
	"strings"
	"time"
)

// HomeAssistantConfig is the homeassistant: section: MQTT discovery of the
// gateway's sensors on its own broker (see docs/HOMEASSISTANT.md).
type HomeAssistantConfig struct {
	// Enabled publishes discovery configs, states and availability
	// (default true; false publishes nothing).
	Enabled bool `yaml:"enabled"`
	// DiscoveryPrefix is Home Assistant's discovery prefix (default
	// homeassistant): configs go to <prefix>/sensor/<id>/config and the
	// gateway listens to <prefix>/status for Home Assistant's birth.
	DiscoveryPrefix string `yaml:"discovery_prefix"`
	// StatePrefix roots the state and availability topics:
	// <prefix>/<node>/sensor/<slug>/state, <prefix>/<node>/availability
	// (default ferrite).
	StatePrefix string `yaml:"state_prefix"`
	// NodeName is the device name shown in Home Assistant (default: the
	// node id).
	NodeName string `yaml:"node_name"`
	// PublishInterval is how often changed states are published: a sensor
	// publishes at most one state per interval, whatever its reading rate
	// (default 5s).
	PublishInterval Duration `yaml:"publish_interval"`
	// MaxSensors bounds the sensors announced (default 1000, at most
	// 10,000); the others are counted and logged, not announced. Each state
	// reads the sensor's current bucket, which costs a scan of every open
	// bucket (ingest has no per-sensor index yet): about 40 µs per changed
	// sensor at 1000 sensors, growing with their number.
	MaxSensors int `yaml:"max_sensors"`
}

func (h *HomeAssistantConfig) defaults() {
	*h = HomeAssistantConfig{
		Enabled:         true,
		DiscoveryPrefix: "homeassistant",
		StatePrefix:     "ferrite",
		PublishInterval: Duration(5 * time.Second),
		MaxSensors:      1000,
	}
}

func (h *HomeAssistantConfig) validate(s section, _ *Config) {
	for _, kv := range [...][2]string{{"discovery_prefix", h.DiscoveryPrefix}, {"state_prefix", h.StatePrefix}} {
		if p := kv[1]; !validTopicName(p) || strings.HasSuffix(p, "/") || strings.HasPrefix(p, "$") {
			s.add(kv[0], "%q must be a topic prefix without wildcards, a leading '$' or a trailing '/'", p)
		}
	}
	if len(h.NodeName) > 128 {
		s.add("node_name", "longer than 128 bytes")
	}
	durationRange(s, "publish_interval", h.PublishInterval, 100*time.Millisecond, time.Hour)
	s.inRange("max_sensors", int64(h.MaxSensors), 1, 10_000)
}
