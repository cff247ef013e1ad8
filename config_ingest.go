package ferrite

import (
	"fmt"
	"time"

	"github.com/ferrite-edge/ferrite/ingest"
)

// IngestConfig is the ingest: section: which topics carry sensor readings
// and how they are aggregated (see the ingest package).
type IngestConfig struct {
	// Enabled turns the ingestion pipeline on (default true).
	Enabled bool `yaml:"enabled"`
	// Rules map topics to sensors, in match order (default: sensors/<id>,
	// SenML, zigbee2mqtt, ESPHome, Tasmota; see ingest.DefaultRules).
	// Setting rules replaces the defaults.
	Rules []ingest.Rule `yaml:"rules"`
	// BucketWidths are the aggregation buckets (default [1m]).
	BucketWidths []Duration `yaml:"bucket_widths"`
	// AllowedLateness keeps a bucket open after its end (default 10s).
	AllowedLateness Duration `yaml:"allowed_lateness"`
	// MaxPendingBuckets caps closed buckets not yet stored (default 10000).
	MaxPendingBuckets int `yaml:"max_pending_buckets"`
	// MaxOpenBuckets caps open buckets over all sensors (default 100000).
	MaxOpenBuckets int `yaml:"max_open_buckets"`
	// LateHorizon: after a crash, older raw readings are not replayed into
	// buckets (default 24h). Live readings of any age are aggregated.
	LateHorizon Duration `yaml:"late_horizon"`
	// MaxSensors bounds the sensor registry (default 10000).
	MaxSensors int `yaml:"max_sensors"`
	// MaxReadingsPerSensor is the raw ring kept per sensor (default 1000).
	MaxReadingsPerSensor int `yaml:"max_readings_per_sensor"`
	// QueueSize bounds QoS 0 readings waiting for the store (default 65536).
	QueueSize int `yaml:"queue_size"`
	// CheckpointInterval is how often running aggregates are persisted
	// (default 5s).
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
	// DeadLetterTopic receives messages a rule matched but could not parse,
	// with the reason in the payload ("" disables; default
	// $ferrite/deadletter).
	DeadLetterTopic string `yaml:"dead_letter_topic"`
}

func (ic *IngestConfig) defaults() {
	*ic = IngestConfig{
		Enabled: true,
		// Filled in, not left nil, so that the effective configuration
		// (--check-config) shows them and reads back the same.
		Rules:                ingest.DefaultRules(),
		BucketWidths:         []Duration{Duration(time.Minute)},
		AllowedLateness:      Duration(10 * time.Second),
		MaxPendingBuckets:    10_000,
		MaxOpenBuckets:       100_000,
		LateHorizon:          Duration(24 * time.Hour),
		MaxSensors:           10_000,
		MaxReadingsPerSensor: 1000,
		QueueSize:            65_536,
		CheckpointInterval:   Duration(5 * time.Second),
		DeadLetterTopic:      "$ferrite/deadletter",
	}
}

func (ic *IngestConfig) validate(s section, _ *Config) {
	for i, r := range ic.Rules {
		if err := r.Validate(); err != nil {
			s.add(fmt.Sprintf("rules[%d]", i), "%v", err)
		}
	}
	if len(ic.BucketWidths) == 0 {
		s.add("bucket_widths", "must list at least one width")
	}
	if n := len(ic.BucketWidths); n > ingest.MaxBucketWidths {
		s.add("bucket_widths", "%d widths (at most %d)", n, ingest.MaxBucketWidths)
	}
	for i, w := range ic.BucketWidths {
		d := time.Duration(w)
		if d < time.Second || d > 24*time.Hour || d%time.Second != 0 || (24*time.Hour)%d != 0 {
			s.add(fmt.Sprintf("bucket_widths[%d]", i), "%s must be whole seconds in [1s, 24h] dividing 24h", d)
		}
	}
	durationRange(s, "allowed_lateness", ic.AllowedLateness, 0, time.Hour)
	durationRange(s, "late_horizon", ic.LateHorizon, time.Minute, 30*24*time.Hour)
	durationRange(s, "checkpoint_interval", ic.CheckpointInterval, 100*time.Millisecond, time.Hour)
	s.inRange("max_pending_buckets", int64(ic.MaxPendingBuckets), 1, 10_000_000)
	s.inRange("max_open_buckets", int64(ic.MaxOpenBuckets), 1, 10_000_000)
	s.inRange("max_sensors", int64(ic.MaxSensors), 1, 10_000_000)
	s.inRange("max_readings_per_sensor", int64(ic.MaxReadingsPerSensor), 1, 1_000_000)
	s.inRange("queue_size", int64(ic.QueueSize), 1, 10_000_000)
	if t := ic.DeadLetterTopic; t != "" && !validTopicName(t) {
		s.add("dead_letter_topic", "%q is not a valid topic name (no wildcards, not empty levels only)", t)
	}
}

// aggregatorConfig converts the section for the ingest package.
func (ic *IngestConfig) aggregatorConfig() ingest.AggregatorConfig {
	ws := make([]time.Duration, len(ic.BucketWidths))
	for i, w := range ic.BucketWidths {
		ws[i] = time.Duration(w)
	}
	return ingest.AggregatorConfig{
		Widths:            ws,
		AllowedLateness:   lateness(ic.AllowedLateness),
		MaxPendingBuckets: ic.MaxPendingBuckets,
		MaxOpenBuckets:    ic.MaxOpenBuckets,
		LateHorizon:       time.Duration(ic.LateHorizon),
	}
}

// lateness maps allowed_lateness to the aggregator's: 0 means none (the
// aggregator's zero is its default).
func lateness(d Duration) time.Duration {
	if d == 0 {
		return ingest.NoLateness
	}
	return time.Duration(d)
}
