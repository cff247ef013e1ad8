package ferrite

// HTTPConfig is the http: section (health, readiness, metrics).
type HTTPConfig struct {
	// Listen is the HTTP address (default ":8080"; "" disables HTTP).
	Listen string `yaml:"listen"`
	// TLS serves HTTPS instead when its cert and key are set.
	TLS ServerTLSConfig `yaml:"tls"`
}

func (h *HTTPConfig) defaults() { h.Listen = ":8080" }

func (h *HTTPConfig) validate(s section, _ *Config) {
	validAddr(s, "listen", h.Listen)
	h.TLS.validate(s.in("tls"))
}
