package ferrite

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// ErrInvalidConfig is wrapped by every *ConfigError.
var ErrInvalidConfig = errors.New("ferrite: invalid config")

// Problem is one thing wrong with a configuration.
type Problem struct {
	Path   string // dotted key path: "edge.sync_interval"
	Line   int    // line in the config file, 0 if unknown
	EnvVar string // the environment variable the value came from, if any
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.EnvVar != "":
		fmt.Fprintf(&b, "%s: ", p.EnvVar)
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	File     string // "" for a configuration without a file
	Problems []Problem
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	if len(e.Problems) == 1 {
		b.WriteString(": ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// problems collects Problems, attaching line numbers from the decoded file.
type problems struct {
	lines map[string]int    // key path → line of the key in the file
	envs  map[string]string // key path → environment variable that set it
	list  []Problem
}

func (p *problems) add(path, format string, args ...any) {
	// One problem per line of output: joined errors become "; ".
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")
	p.list = append(p.list, Problem{Path: path, Line: p.lines[path], EnvVar: p.envs[path], Msg: msg})
}

// in returns a helper that reports problems under the key prefix.
func (p *problems) in(prefix string) section {
	return section{p: p, prefix: prefix}
}

// section reports problems for keys under one prefix.
type section struct {
	p      *problems
	prefix string
}

func (s section) add(key, format string, args ...any) {
	path := key
	if s.prefix != "" {
		path = s.prefix + "." + key
	}
	s.p.add(path, format, args...)
}

func (s section) in(key string) section {
	if s.prefix == "" {
		return s.p.in(key)
	}
	return s.p.in(s.prefix + "." + key)
}

// oneOf reports value unless it is one of allowed.
func (s section) oneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	s.add(key, "invalid value %q (want one of: %s)", value, strings.Join(allowed, ", "))
}

func (s section) positive(key string, v int64) {
	if v <= 0 {
		s.add(key, "must be positive (got %d)", v)
	}
}

func (s section) inRange(key string, v, lo, hi int64) {
	if v < lo || v > hi {
		s.add(key, "%d out of range [%d, %d]", v, lo, hi)
	}
}

func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	// File order first; problems without a line (environment, defaults) after.
	key := func(p Problem) int {
		if p.Line == 0 {
			return math.MaxInt
		}
		return p.Line
	}
	sort.SliceStable(p.list, func(i, j int) bool { return key(p.list[i]) < key(p.list[j]) })
	return &ConfigError{File: file, Problems: p.list}
}

func (p *problems) addAt(path string, line int, format string, args ...any) {
	p.list = append(p.list, Problem{Path: path, Line: line, EnvVar: p.envs[path], Msg: fmt.Sprintf(format, args...)})
}
