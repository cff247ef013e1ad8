// Package ferrite is the root of Ferrite Edge: the configuration, the Node
// that composes the subsystems of one process, and the commands that glue
// the broker's router to them.
//
// # Configuration
//
// LoadConfig reads a YAML file strictly: an unknown key, a duplicate key, a
// value of the wrong shape and every validation failure are collected and
// reported together in one *ConfigError, each with its dotted key path and
// line ("line 4: edge.sync_interval: invalid duration \"3x\""). Sizes are
// written "512kb", "128mb", "1gb" (powers of 1024) or as plain bytes;
// durations "30s", "5m". Every scalar key can be overridden from the
// environment as FERRITE_<PATH> (upper-cased, dots as underscores:
// FERRITE_EDGE_HUB_URL); the variable list is derived from the struct tags
// (EnvVars), and unknown FERRITE_* variables are reported as warnings.
//
// Each section lives in a config_<section>.go file as a struct with
// defaults() and validate() (the configSection interface); a new section is
// a field in Config plus its file. Keys whose feature has not landed yet
// (store durability, the sync keys, resource limits) are parsed, validated
// and documented in docs/OPERATIONS.md as taking effect when it lands.
//
// Presets (edge.preset: minimal, iot, mobile, standard, full) carry the
// feature document's memory budget, key limit and compression level;
// EdgeConfig.Limits resolves them against the explicit keys
// (edge.resources.memory_limit, edge.max_keys, edge.compression_level),
// which win.
//
// Decision: conflict strategies are written in snake case (lww, crdt_merge,
// cloud_wins, edge_wins); the feature document's enum names (LastWriteWins,
// CrdtMerge, CloudWins, EdgeWins) are accepted as aliases.
//
// # Node
//
// NewNode validates the configuration and builds the subsystems without
// starting anything; Start binds the listeners and starts them in order,
// pushing each one's stop function on a stack; Close (idempotent, bounded by
// its context) takes readiness down and unwinds the stack in reverse order.
// Accessors (Broker, Router, Registry, Logger) expose what wiring needs;
// AddStatus and AddReadyCheck let subsystems contribute to EDGE.STATUS and
// /readyz. Metrics go to the node's own prometheus.Registry, never the
// global one.
//
// When ready, the node writes <data_dir>/run/listeners.json (RunInfo: pid
// and bound addresses, useful with port 0) and removes it on Close.
package ferrite
