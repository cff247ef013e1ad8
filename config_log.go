package ferrite

// LogConfig is the log: section.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

func (l *LogConfig) defaults() { *l = LogConfig{Level: "info", Format: "text"} }

func (l *LogConfig) validate(s section, _ *Config) {
	s.oneOf("level", l.Level, "debug", "info", "warn", "error")
	s.oneOf("format", l.Format, "text", "json")
}
