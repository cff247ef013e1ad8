package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Format names a payload parser.
type Format string

// Payload formats. See the package documentation for what each accepts.
const (
	// FormatAuto picks number, json or senml from the payload's first byte
	// ('{' → json, '[' → senml, anything else → number).
	FormatAuto Format = "auto"
	// FormatNumber is a plain decimal number or ON/OFF/true/false.
	FormatNumber Format = "number"
	// FormatJSON is one reading in a JSON object: ValuePath, UnitPath,
	// TimePath select the fields (defaults "value", "unit", "ts"|"time"|"timestamp").
	FormatJSON Format = "json"
	// FormatSenML is an RFC 8428 SenML JSON pack.
	FormatSenML Format = "senml"
	// FormatZigbee2MQTT is a flat JSON object, one sensor per numeric or
	// boolean field (strings only for ON/OFF), "last_seen" as the time.
	FormatZigbee2MQTT Format = "zigbee2mqtt"
	// FormatESPHome is ESPHome's state topic payload: a plain number or ON/OFF.
	FormatESPHome Format = "esphome"
	// FormatTasmota is Tasmota's tele/<device>/SENSOR nested JSON.
	FormatTasmota Format = "tasmota"
)

func (f Format) valid() bool {
	switch f {
	case FormatAuto, FormatNumber, FormatJSON, FormatSenML, FormatZigbee2MQTT, FormatESPHome, FormatTasmota:
		return true
	}
	return false
}

// Rule maps MQTT topics to sensors. A message is handled by the first rule,
// in configuration order, whose Topic matches.
type Rule struct {
	// Name identifies the rule in metrics and logs; defaults to Topic.
	Name string `yaml:"name" json:"name"`
	// Topic is an MQTT topic filter. Besides '+' and '#', a level written
	// as {name} matches exactly one level like '+' and names it for SensorID.
	Topic string `yaml:"topic" json:"topic"`
	// SensorID is a template for the sensor id: literal text with
	// {N} (topic level N, counting from 0), {name} (a level named in Topic)
	// and {field} (the field of a multi-value payload: zigbee2mqtt key,
	// Tasmota path, SenML resolved name). When a payload yields a field and
	// the template has no {field}, "/<field>" is appended.
	SensorID string `yaml:"sensor_id" json:"sensor_id"`
	// Format selects the payload parser; default auto.
	Format Format `yaml:"format" json:"format"`
	// ValuePath, UnitPath and TimePath are dotted JSON paths ("value",
	// "data.temp") for the json format (and auto when the payload is an
	// object). TimePath also names the time field for zigbee2mqtt
	// (default "last_seen") and tasmota (default "Time").
	ValuePath string `yaml:"value_path" json:"value_path"`
	UnitPath  string `yaml:"unit_path" json:"unit_path"`
	TimePath  string `yaml:"time_path" json:"time_path"`
	// Unit is used when the payload carries no unit.
	Unit string `yaml:"unit" json:"unit"`
}

// DefaultRules returns the shipped rules (the default of the config's
// ingest.rules; --check-config prints them):
//
//	sensors/{id}                  auto        → {id}
//	senml/#                       senml       → {field}   (SenML resolved name)
//	zigbee2mqtt/{device}          zigbee2mqtt → {device}/{field}
//	{node}/sensor/{name}/state    esphome     → {node}/{name}
//	{node}/binary_sensor/{name}/state esphome → {node}/{name}
//	tele/{device}/SENSOR          tasmota     → {device}/{field}
func DefaultRules() []Rule {
	return []Rule{
		{Name: "sensors", Topic: "sensors/{id}", SensorID: "{id}", Format: FormatAuto},
		{Name: "senml", Topic: "senml/#", SensorID: "{field}", Format: FormatSenML},
		{Name: "zigbee2mqtt", Topic: "zigbee2mqtt/{device}", SensorID: "{device}/{field}", Format: FormatZigbee2MQTT},
		{Name: "esphome", Topic: "{node}/sensor/{name}/state", SensorID: "{node}/{name}", Format: FormatESPHome},
		{Name: "esphome-binary", Topic: "{node}/binary_sensor/{name}/state", SensorID: "{node}/{name}", Format: FormatESPHome},
		{Name: "tasmota", Topic: "tele/{device}/SENSOR", SensorID: "{device}/{field}", Format: FormatTasmota},
	}
}

// Validate reports every problem of the rule at once.
func (r *Rule) Validate() error {
	_, err := compileRule(*r)
	return err
}

// Limits on sensor ids: they become parts of store keys and MQTT replies.
const maxSensorIDLen = 200

// validSensorID reports whether id is usable: 1..200 bytes of valid UTF-8
// without control characters.
func validSensorID(id []byte) bool {
	if len(id) == 0 || len(id) > maxSensorIDLen || !utf8.Valid(id) {
		return false
	}
	for _, c := range id {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// levelKind is the kind of one topic-filter level.
type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelPlus
	levelHash
)

type filterLevel struct {
	kind levelKind
	lit  string
}

// tmplPart is one piece of a compiled SensorID template.
type tmplPart struct {
	lit   string
	level int // >= 0: topic level; -1 literal; -2 field
}

const tmplField = -2

// compiledRule is a validated Rule ready for matching.
type compiledRule struct {
	Rule
	levels   []filterLevel
	tmpl     []tmplPart
	hasField bool
	// wildcardFirst: the filter starts with + or #, so it must not match
	// topics starting with '$' [MQTT-4.7.2-1].
	wildcardFirst bool
	valuePath     string
	unitPath      string
	timePaths     []string
	unitBytes     []byte
}

func compileRule(r Rule) (*compiledRule, error) {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w %q: %s", ErrInvalidRule, r.Name, fmt.Sprintf(format, args...)))
	}
	if r.Name == "" {
		r.Name = r.Topic
	}
	if r.Format == "" {
		r.Format = FormatAuto
	}
	c := &compiledRule{Rule: r}
	names := map[string]int{}
	switch {
	case r.Topic == "":
		fail("topic is empty")
	case len(r.Topic) > 65535 || strings.IndexByte(r.Topic, 0) >= 0 || !utf8.ValidString(r.Topic):
		fail("topic is not a valid MQTT topic filter")
	default:
		parts := strings.Split(r.Topic, "/")
		for i, p := range parts {
			switch {
			case p == "#":
				if i != len(parts)-1 {
					fail("'#' must be the last level of topic %q", r.Topic)
				}
				c.levels = append(c.levels, filterLevel{kind: levelHash})
			case p == "+":
				c.levels = append(c.levels, filterLevel{kind: levelPlus})
			case len(p) > 2 && p[0] == '{' && p[len(p)-1] == '}':
				name := p[1 : len(p)-1]
				if !validTemplateName(name) || name == "field" {
					fail("bad level name %q in topic", p)
				} else if _, dup := names[name]; dup {
					fail("level name %q used twice in topic", name)
				}
				names[name] = i
				c.levels = append(c.levels, filterLevel{kind: levelPlus})
			case strings.ContainsAny(p, "+#{}"):
				fail("wildcards must occupy a whole level in topic %q", r.Topic)
			default:
				c.levels = append(c.levels, filterLevel{kind: levelLiteral, lit: p})
			}
		}
		c.wildcardFirst = len(c.levels) > 0 && c.levels[0].kind != levelLiteral
	}
	if !r.Format.valid() {
		fail("unknown format %q", r.Format)
	}
	if r.SensorID == "" {
		fail("sensor_id is empty")
	} else if err := c.compileTemplate(names); err != nil {
		fail("%v", err)
	}
	if (r.ValuePath != "" || r.UnitPath != "") && r.Format != FormatJSON && r.Format != FormatAuto {
		fail("value_path and unit_path apply to the json and auto formats only")
	}
	if len(r.Unit) > MaxUnitLen {
		fail("unit is %d bytes (max %d)", len(r.Unit), MaxUnitLen)
	}
	c.defaults()
	return c, errors.Join(errs...)
}

func (c *compiledRule) defaults() {
	c.valuePath, c.unitPath = c.ValuePath, c.UnitPath
	c.unitBytes = []byte(c.Unit)
	if c.valuePath == "" {
		c.valuePath = "value"
	}
	if c.unitPath == "" {
		c.unitPath = "unit"
	}
	switch {
	case c.TimePath != "":
		c.timePaths = []string{c.TimePath}
	case c.Format == FormatZigbee2MQTT:
		c.timePaths = []string{"last_seen"}
	case c.Format == FormatTasmota:
		c.timePaths = []string{"Time"}
	default:
		c.timePaths = []string{"ts", "time", "timestamp"}
	}
}

func validTemplateName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func (c *compiledRule) compileTemplate(names map[string]int) error {
	t := c.SensorID
	hasHash := len(c.levels) > 0 && c.levels[len(c.levels)-1].kind == levelHash
	for len(t) > 0 {
		open := strings.IndexByte(t, '{')
		if close := strings.IndexByte(t, '}'); close >= 0 && (open < 0 || close < open) {
			return fmt.Errorf("unbalanced '}' in sensor_id %q", c.SensorID)
		}
		if open < 0 {
			c.tmpl = append(c.tmpl, tmplPart{lit: t, level: -1})
			break
		}
		if open > 0 {
			c.tmpl = append(c.tmpl, tmplPart{lit: t[:open], level: -1})
		}
		end := strings.IndexByte(t[open:], '}')
		if end < 0 {
			return fmt.Errorf("unbalanced '{' in sensor_id %q", c.SensorID)
		}
		name := t[open+1 : open+end]
		switch n, err := strconv.Atoi(name); {
		case name == "field":
			c.tmpl = append(c.tmpl, tmplPart{level: tmplField})
			c.hasField = true
		case err == nil:
			if n < 0 || n > 1024 || (n >= len(c.levels) && !hasHash) {
				return fmt.Errorf("sensor_id %q: topic has no level %d", c.SensorID, n)
			}
			c.tmpl = append(c.tmpl, tmplPart{level: n})
		default:
			idx, ok := names[name]
			if !ok {
				return fmt.Errorf("sensor_id %q: topic names no level {%s}", c.SensorID, name)
			}
			c.tmpl = append(c.tmpl, tmplPart{level: idx})
		}
		t = t[open+end+1:]
	}
	return nil
}

// span is a half-open byte range.
type span struct{ off, end int }

// splitTopic appends the level spans of topic to dst.
func splitTopic(dst []span, topic string) []span {
	start := 0
	for i := 0; i < len(topic); i++ {
		if topic[i] == '/' {
			dst = append(dst, span{start, i})
			start = i + 1
		}
	}
	return append(dst, span{start, len(topic)})
}

// match reports whether topic (split into levels) matches the rule's filter.
func (c *compiledRule) match(topic string, levels []span) bool {
	if c.wildcardFirst && len(topic) > 0 && topic[0] == '$' {
		return false
	}
	for i, fl := range c.levels {
		switch fl.kind {
		case levelHash:
			// "a/#" also matches "a" [MQTT-4.7.1-2].
			return true
		case levelPlus:
			if i >= len(levels) {
				return false
			}
		case levelLiteral:
			if i >= len(levels) || topic[levels[i].off:levels[i].end] != fl.lit {
				return false
			}
		}
	}
	return len(levels) == len(c.levels)
}

// appendSensorID expands the template for a matched topic and field.
func (c *compiledRule) appendSensorID(dst []byte, topic string, levels []span, field []byte) ([]byte, error) {
	for _, p := range c.tmpl {
		switch {
		case p.level == -1:
			dst = append(dst, p.lit...)
		case p.level == tmplField:
			dst = append(dst, field...)
		case p.level < len(levels):
			dst = append(dst, topic[levels[p.level].off:levels[p.level].end]...)
		default:
			return dst, fmt.Errorf("%w: topic %q has no level %d", ErrInvalidSensorID, topic, p.level)
		}
	}
	if !c.hasField && len(field) > 0 {
		dst = append(dst, '/')
		dst = append(dst, field...)
	}
	return dst, nil
}
