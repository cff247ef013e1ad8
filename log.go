package ferrite

import (
	"io"
	"log/slog"
)

// Log keys shared by every component.
const (
	LogKeyComponent = "component"
	LogKeyNode      = "node"
)

// NewLogger builds the node's root logger from the log: section. Components
// derive theirs with logger.With("component", name).
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
