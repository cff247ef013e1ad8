package ferrite

// HTTPConfig is the http: section (health, readiness, metrics).
type HTTPConfig struct {
	// Listen is the HTTP address (default ":8080"; "" disables HTTP).
	Listen string `yaml:"listen"`
	// TLS serves HTTPS instead when its cert and key are set.
	TLS ServerTLSConfig `yaml:"tls"`
	// PProf serves Go's profiler under /debug/pprof/ (default false: it
	// exposes internals and costs CPU while profiling; enable it to
	// diagnose a gateway, ideally with http.listen on 127.0.0.1).
	PProf bool `yaml:"pprof"`
}

func (h *HTTPConfig) defaults() { h.Listen = ":8080" }

func (h *HTTPConfig) validate(s section, _ *Config) {
	validAddr(s, "listen", h.Listen)
	h.TLS.validate(s.in("tls"))
}
