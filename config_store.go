package ferrite

import (
	"time"
)

// StoreConfig is the store: section.
type StoreConfig struct {
	// Durability is when writes are fsynced: always (default: before the
	// acknowledgement, with group commit), interval, or none.
	Durability string `yaml:"durability"`
	// DurabilityInterval is the fsync period of "interval" (default 100ms).
	DurabilityInterval Duration `yaml:"durability_interval"`
}

func (st *StoreConfig) defaults() {
	*st = StoreConfig{Durability: "always", DurabilityInterval: Duration(100 * time.Millisecond)}
}

func (st *StoreConfig) validate(s section, _ *Config) {
	s.oneOf("durability", st.Durability, "always", "interval", "none")
	durationRange(s, "durability_interval", st.DurabilityInterval, time.Millisecond, time.Minute)
}
