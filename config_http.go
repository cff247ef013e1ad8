package ferrite

// HTTPConfig is the http: section (health, readiness, metrics).
type HTTPConfig struct {
	// Listen is the HTTP address (default ":8080"; "" disables HTTP).
	Listen string `yaml:"listen"`
}

func (h *HTTPConfig) defaults() { h.Listen = ":8080" }

func (h *HTTPConfig) validate(s section, _ *Config) { validAddr(s, "listen", h.Listen) }
