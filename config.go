package ferrite

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Modes of a node.
const (
	ModeEdge = "edge"
	ModeHub  = "hub"
)

// Config is a node's configuration: YAML, strict (unknown keys are errors),
// defaults for every key, FERRITE_<PATH> environment overrides, and a
// validation that reports every problem at once. docs/OPERATIONS.md is the
// reference of every key.
//
// Each section is a struct in its own file config_<section>.go with a
// defaults() and a validate() method (the configSection interface); adding a
// section is adding its field below and its file. Decoding, environment
// overrides and problem reporting are derived from the yaml tags.
type Config struct {
	// NodeID names this node to its hub and peers (default: the host name).
	NodeID string `yaml:"node_id"`
	// Mode is "edge" (default) or "hub".
	Mode string `yaml:"mode"`
	// DataDir holds the store, the queue and run files (default ./data).
	DataDir string `yaml:"data_dir"`
	// ShutdownTimeout bounds a graceful shutdown (default 15s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	Log    LogConfig    `yaml:"log"`
	Broker BrokerConfig `yaml:"broker"`
	HTTP   HTTPConfig   `yaml:"http"`
	Store  StoreConfig  `yaml:"store"`
	Edge   EdgeConfig   `yaml:"edge"`
	Ingest IngestConfig `yaml:"ingest"`
	Sync   SyncConfig   `yaml:"sync"`
	Hub    HubConfig    `yaml:"hub"`

	HomeAssistant HomeAssistantConfig `yaml:"homeassistant"`

	lines map[string]int // key path → line in the file it was loaded from
	file  string
	// unknownEnv lists FERRITE_* variables that match no key.
	unknownEnv []string
}

// configSection is implemented by every section struct (by pointer).
type configSection interface {
	defaults()
	validate(s section, c *Config)
}

// sections calls fn with each section field of c and its key.
func (c *Config) sections(fn func(key string, s configSection)) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		if s, ok := v.Field(i).Addr().Interface().(configSection); ok {
			fn(key, s)
		}
	}
}

// DefaultConfig returns a configuration with every default set. NodeID is
// left empty: Resolve fills it from the host name.
func DefaultConfig() *Config {
	c := &Config{
		Mode:            ModeEdge,
		DataDir:         "./data",
		ShutdownTimeout: Duration(15e9),
	}
	c.sections(func(_ string, s configSection) { s.defaults() })
	return c
}

// reservedEnv are FERRITE_* variables read elsewhere (by cmd/ferrite).
var reservedEnv = map[string]bool{"FERRITE_CONFIG": true}

// LoadConfig reads the YAML file at path (defaults only if path is ""),
// applies the FERRITE_* variables of environ (os.Environ() form), resolves
// derived values and validates. Every problem is reported in one
// *ConfigError.
func LoadConfig(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if ext := strings.ToLower(filepath.Ext(path)); ext == ".toml" || ext == ".ini" {
			// A quick-start written for another gateway: say what we read
			// instead of failing on its first line.
			return nil, fmt.Errorf("config: %s: ferrite reads YAML config files (see configs/edge.yaml), not %s", path, ext[1:])
		}
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return ParseConfig(data, path, environ)
}

// ParseConfig is LoadConfig on data already read; name is used in errors.
func ParseConfig(data []byte, name string, environ []string) (*Config, error) {
	c := DefaultConfig()
	c.file = name
	p := &problems{lines: make(map[string]int), envs: make(map[string]string)}
	if len(bytes.TrimSpace(data)) > 0 {
		decodeYAML(data, c, p)
	}
	for _, u := range applyEnv(c, environ, p) {
		if !reservedEnv[u] {
			c.unknownEnv = append(c.unknownEnv, u)
		}
	}
	c.lines = p.lines
	if err := c.Resolve(); err != nil {
		p.add("node_id", "%v", err)
	}
	c.validateInto(p)
	if err := p.err(name); err != nil {
		return nil, err
	}
	return c, nil
}

// Warnings are things worth logging that are not errors: FERRITE_*
// variables that match no setting (a typo would otherwise go unnoticed).
func (c *Config) Warnings() []string {
	var w []string
	for _, u := range c.unknownEnv {
		w = append(w, fmt.Sprintf("environment variable %s matches no config key (see ferrite --help for the list)", u))
	}
	return w
}

// Resolve fills values derived from others (NodeID from the host name).
// LoadConfig calls it; call it after building a Config in code.
func (c *Config) Resolve() error {
	if c.NodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no node_id and no host name: %w", err)
		}
		c.NodeID = h
	}
	return nil
}

// Validate reports every problem of c in one *ConfigError (nil if none).
func (c *Config) Validate() error {
	p := &problems{lines: c.lines, envs: map[string]string{}}
	if p.lines == nil {
		p.lines = map[string]int{}
	}
	c.validateInto(p)
	return p.err(c.file)
}

func (c *Config) validateInto(p *problems) {
	root := p.in("")
	switch {
	case c.NodeID == "":
		root.add("node_id", "must not be empty")
	case len(c.NodeID) > 128:
		root.add("node_id", "longer than 128 bytes")
	case strings.ContainsAny(c.NodeID, "/+#$ \t\r\n\x00"):
		// It is a topic level of the sync protocol ($ferrite/sync/<node>/up).
		root.add("node_id", "%q must not contain '/', '+', '#', '$' or blanks (it is used in MQTT topics)", c.NodeID)
	}
	root.oneOf("mode", c.Mode, ModeEdge, ModeHub)
	if c.DataDir == "" {
		root.add("data_dir", "must not be empty")
	}
	if c.ShutdownTimeout <= 0 {
		root.add("shutdown_timeout", "must be positive")
	}
	c.sections(func(key string, s configSection) { s.validate(p.in(key), c) })
}

// File is the path the configuration was loaded from ("" if none).
func (c *Config) File() string { return c.file }

// Marshal renders the effective configuration as YAML.
func (c *Config) Marshal() ([]byte, error) {
	return yaml.Marshal(c)
}
