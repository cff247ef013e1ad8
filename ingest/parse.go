package ingest

import (
	"fmt"
	"time"
)

// DefaultMaxValuesPerMessage bounds the readings one message may carry.
const DefaultMaxValuesPerMessage = 256

// sample is one value extracted from a payload. Text fields are spans into
// parser.arena, so a batch of samples costs no allocation per value.
type sample struct {
	field span
	unit  span
	value float64
	ts    int64 // unix ns; 0 = use the receive time
	// noClock: the payload had a timestamp that means "device has no clock".
	noClock bool
}

// parser extracts samples from payloads. It is reused across messages (one
// per worker); it is not safe for concurrent use.
type parser struct {
	sc        jsonScanner
	arena     []byte   // field names, units, scratch strings
	path      []byte   // current JSON path while walking
	samples   []sample // output of the last parse
	maxValues int
	loc       *time.Location
	// Tasmota unit keys, as spans in arena (found anywhere in the document).
	tempUnit, pressUnit, speedUnit span
	// Visitors live here so that passing them as interfaces does not allocate.
	one  jsonOne
	flat flatVisitor
}

func newParser(maxValues int, loc *time.Location) *parser {
	if maxValues <= 0 {
		maxValues = DefaultMaxValuesPerMessage
	}
	if loc == nil {
		loc = time.UTC
	}
	return &parser{maxValues: maxValues, loc: loc, arena: make([]byte, 0, 512), samples: make([]sample, 0, 16)}
}

func (p *parser) text(s span) []byte { return p.arena[s.off:s.end] }

// parse fills p.samples from payload. received (unix ns) resolves SenML
// relative times. On error p.samples is unspecified.
func (p *parser) parse(r *compiledRule, payload []byte, received int64) error {
	p.arena = p.arena[:0]
	p.samples = p.samples[:0]
	format := r.Format
	if format == FormatAuto {
		b := trimSpace(payload)
		switch {
		case len(b) == 0:
			return ErrEmptyPayload
		case b[0] == '{':
			format = FormatJSON
		case b[0] == '[':
			format = FormatSenML
		default:
			format = FormatNumber
		}
	}
	switch format {
	case FormatNumber, FormatESPHome:
		return p.parseNumber(payload)
	case FormatJSON:
		return p.parseJSON(r, payload)
	case FormatSenML:
		return p.parseSenML(payload, received)
	case FormatZigbee2MQTT, FormatTasmota:
		return p.parseFlat(r, payload)
	}
	return fmt.Errorf("%w: unknown format %q", ErrInvalidRule, format)
}

func (p *parser) parseNumber(payload []byte) error {
	v, err := parseValueText(payload)
	if err != nil {
		return err
	}
	p.samples = append(p.samples, sample{value: v})
	return nil
}

func (p *parser) add(s sample) error {
	if len(p.samples) >= p.maxValues {
		return fmt.Errorf("%w (limit %d)", ErrTooManyValues, p.maxValues)
	}
	p.samples = append(p.samples, s)
	return nil
}

// appendText copies b into the arena and returns its span.
func (p *parser) appendText(b []byte) span {
	off := len(p.arena)
	p.arena = append(p.arena, b...)
	return span{off, len(p.arena)}
}

// scalarValue converts a JSON leaf to a reading value: numbers, booleans,
// and (when strs) strings holding a number or ON/OFF/true/false.
func scalarValue(v scalar, strs bool) (float64, bool) {
	switch v.kind {
	case jsonNumber:
		f, err := parseDecimal(v.num)
		return f, err == nil
	case jsonBool:
		if v.b {
			return 1, true
		}
		return 0, true
	case jsonString:
		if strs {
			f, err := parseValueText(v.str)
			return f, err == nil
		}
		return parseBinaryState(trimSpace(v.str))
	}
	return 0, false
}

// scalarTime converts a JSON leaf to a timestamp. ok false means the leaf
// says "no clock" (null, 0, uptime-like values).
func (p *parser) scalarTime(v scalar) (ns int64, ok bool, err error) {
	switch v.kind {
	case jsonNumber:
		return tsFromNumber(v.num)
	case jsonString:
		return tsFromString(v.str, p.loc)
	case jsonNull:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("%w: not a number or string", ErrBadTimestamp)
}

// parseJSON reads one reading from a JSON object using the rule's paths.
// Objects on the way are walked; arrays are skipped. The value may be a
// number, a boolean or a string holding a number or ON/OFF.
func (p *parser) parseJSON(r *compiledRule, payload []byte) error {
	p.sc.reset(payload)
	p.path = p.path[:0]
	p.one = jsonOne{r: r}
	st := &p.one
	if err := p.walkObject(st, '.'); err != nil {
		return err
	}
	if err := p.sc.end(); err != nil {
		return err
	}
	if st.err != nil {
		return st.err
	}
	if !st.haveValue {
		return fmt.Errorf("%w: no field %q", ErrNoValue, r.valuePath)
	}
	s := sample{value: st.value, unit: st.unit, ts: st.ts, noClock: st.noClock}
	return p.add(s)
}

// jsonOne collects the single reading of FormatJSON.
type jsonOne struct {
	r         *compiledRule
	value     float64
	haveValue bool
	unit      span
	ts        int64
	noClock   bool
	err       error
}

func (st *jsonOne) leaf(p *parser, path []byte, v scalar) {
	switch {
	case string(path) == st.r.valuePath:
		f, ok := scalarValue(v, true)
		if !ok {
			st.err = fmt.Errorf("%w: field %q", ErrBadNumber, st.r.valuePath)
			return
		}
		st.value, st.haveValue = f, true
	case string(path) == st.r.unitPath:
		if v.kind == jsonString {
			st.unit = p.appendText(v.str)
		}
	case st.ts == 0 && !st.noClock && isTimePath(st.r, path):
		ns, ok, err := p.scalarTime(v)
		if err != nil {
			st.err = err
			return
		}
		st.ts, st.noClock = ns, !ok
	}
}

func isTimePath(r *compiledRule, path []byte) bool {
	for _, tp := range r.timePaths {
		if string(path) == tp {
			return true
		}
	}
	return false
}

// leafVisitor receives the scalar leaves of a walked JSON object.
type leafVisitor interface {
	leaf(p *parser, path []byte, v scalar)
}

// walkObject walks the object at the scanner position, calling vis for each
// scalar leaf with its path (keys joined by sep). Arrays are validated and
// skipped. Leaf strings are decoded into the arena and released after the
// call (the visitor copies what it keeps with appendText).
func (p *parser) walkObject(vis leafVisitor, sep byte) error {
	if err := p.sc.enter('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := p.sc.more('}', first)
		if err != nil || !more {
			return err
		}
		base := len(p.path)
		if base > 0 {
			p.path = append(p.path, sep)
		}
		if p.path, err = p.sc.key(p.path); err != nil {
			return err
		}
		mark := len(p.arena)
		var v scalar
		v, p.arena, err = p.sc.readScalar(p.arena)
		if err != nil {
			return err
		}
		switch v.kind {
		case jsonObject:
			err = p.walkObject(vis, sep)
		case jsonArray:
			err = p.sc.skip()
		default:
			vis.leaf(p, p.path, v)
			if v.kind == jsonString {
				// Drop the decoded string unless the visitor kept text after it.
				if len(p.arena) == mark+len(v.str) {
					p.arena = p.arena[:mark]
				}
			}
		}
		if err != nil {
			return err
		}
		p.path = p.path[:base]
	}
}
