package ingest

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Reading is one sensor value.
type Reading struct {
	Sensor string    `json:"sensor"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit,omitempty"`
	Time   time.Time `json:"ts"`
}

// RuleSet is a compiled, ordered list of rules. It is immutable and safe
// for concurrent use.
type RuleSet struct {
	rules []*compiledRule
}

// CompileRules validates rules (all problems reported at once, names must
// be unique) and compiles them for matching.
func CompileRules(rules []Rule) (*RuleSet, error) {
	var errs []error
	rs := &RuleSet{}
	seen := map[string]bool{}
	for _, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("%w %q: duplicate rule name", ErrInvalidRule, c.Name))
		}
		seen[c.Name] = true
		rs.rules = append(rs.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

// Names returns the rule names in order.
func (rs *RuleSet) Names() []string {
	out := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.Name
	}
	return out
}

// Matches reports whether any rule matches topic. The broker uses it to
// hand the pipeline only the messages it will ingest; it does not allocate
// for topics of up to 16 levels.
func (rs *RuleSet) Matches(topic string) bool {
	var buf [16]span
	levels := splitTopic(buf[:0], topic)
	for _, r := range rs.rules {
		if r.match(topic, levels) {
			return true
		}
	}
	return false
}

// Parse applies the first matching rule to one message and returns its
// readings. rule is "" when no rule matches (readings and err are nil).
// It is the convenience form of the pipeline's hot path, for tests, tools
// and the Go API; the pipeline itself reuses buffers and interns strings.
func (rs *RuleSet) Parse(topic string, payload []byte, received time.Time) (rule string, readings []Reading, err error) {
	x := newExtractor(rs, DefaultMaxValuesPerMessage, time.UTC)
	r, err := x.extract(topic, payload, received.UnixNano(), func(id []byte, unit []byte, value float64, ts int64, _ bool) {
		readings = append(readings, Reading{Sensor: string(id), Value: value, Unit: string(unit), Time: time.Unix(0, ts).UTC()})
	})
	if r != nil {
		rule = r.Name
	}
	return rule, readings, err
}

// extractor matches a topic, parses the payload and expands sensor ids.
// One per goroutine (pooled by the pipeline).
type extractor struct {
	rs     *RuleSet
	p      *parser
	levels []span
	idbuf  []byte
	ids    []span
}

func newExtractor(rs *RuleSet, maxValues int, loc *time.Location) *extractor {
	return &extractor{rs: rs, p: newParser(maxValues, loc), levels: make([]span, 0, 8), idbuf: make([]byte, 0, 256)}
}

// emitFunc receives one reading; id and unit are only valid during the
// call. fallback reports that the payload's timestamp meant "no clock" and
// the receive time was used.
type emitFunc func(id, unit []byte, value float64, ts int64, fallback bool)

// extract handles one message. It returns the matched rule (nil if none).
// On a parse error nothing is emitted: a message is taken whole or not at
// all, so a half-understood payload never produces misleading readings.
func (x *extractor) extract(topic string, payload []byte, received int64, emit emitFunc) (*compiledRule, error) {
	x.levels = splitTopic(x.levels[:0], topic)
	var rule *compiledRule
	for _, r := range x.rs.rules {
		if r.match(topic, x.levels) {
			rule = r
			break
		}
	}
	if rule == nil {
		return nil, nil
	}
	if err := x.p.parse(rule, payload, received); err != nil {
		return rule, err
	}
	// Expand every id first, so that a bad id rejects the whole message.
	x.idbuf = x.idbuf[:0]
	x.ids = x.ids[:0]
	for i := range x.p.samples {
		s := &x.p.samples[i]
		off := len(x.idbuf)
		var err error
		x.idbuf, err = rule.appendSensorID(x.idbuf, topic, x.levels, x.p.text(s.field))
		if err != nil {
			return rule, err
		}
		if !validSensorID(x.idbuf[off:]) {
			return rule, fmt.Errorf("%w: %q", ErrInvalidSensorID, x.idbuf[off:])
		}
		x.ids = append(x.ids, span{off, len(x.idbuf)})
		if err := checkReading(s.value, len(x.p.text(s.unit))); err != nil {
			return rule, err
		}
	}
	for i := range x.p.samples {
		s := &x.p.samples[i]
		unit := x.p.text(s.unit)
		if len(unit) == 0 {
			unit = rule.unitBytes
		}
		ts, fallback := s.ts, s.noClock
		if ts == 0 {
			ts = received
		}
		emit(x.idbuf[x.ids[i].off:x.ids[i].end], unit, s.value, ts, fallback)
	}
	return rule, nil
}

// internTable deduplicates sensor ids and units so that steady-state
// ingestion allocates no strings. It is bounded: past max entries new
// strings are simply allocated.
type internTable struct {
	mu  sync.RWMutex
	m   map[string]string
	max int
}

func newInternTable(max int) *internTable {
	return &internTable{m: make(map[string]string), max: max}
}

func (t *internTable) get(b []byte) string {
	t.mu.RLock()
	s, ok := t.m[string(b)]
	t.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	t.mu.Lock()
	if len(t.m) < t.max {
		t.m[s] = s
	}
	t.mu.Unlock()
	return s
}
