package ingest

import (
	"fmt"
	"math"
)

// senmlRelativeLimit: SenML times below 2**28 seconds are relative to the
// current time (RFC 8428 §4.5.3).
const senmlRelativeLimit = 1 << 28

// senmlRecord is one record's own fields, before base resolution.
type senmlRecord struct {
	name, unit        span
	hasName, hasUnit  bool
	v, s, t           float64
	hasV, hasS, hasVB bool
	vb                bool
}

// senmlBase holds the base fields in force (they carry over to the
// following records until changed, RFC 8428 §4.1).
type senmlBase struct {
	name, unit span
	t, v, s    float64
}

// parseSenML reads an RFC 8428 SenML JSON pack. Each record with a numeric
// value (v, vb, or s) becomes a sample named by the resolved name
// (bn + n). String (vs) and data (vd) records are skipped. Unknown fields
// are ignored, except must-understand fields (name ending in '_'), which
// reject the pack as the RFC requires (§4.4).
func (p *parser) parseSenML(payload []byte, received int64) error {
	p.sc.reset(payload)
	if err := p.sc.enter('['); err != nil {
		return fmt.Errorf("%w: a SenML pack is a JSON array (%w)", ErrBadSenML, err)
	}
	var base senmlBase
	for first := true; ; first = false {
		more, err := p.sc.more(']', first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		rec, err := p.senmlRecord(&base)
		if err != nil {
			return err
		}
		if err := p.senmlResolve(&base, &rec, received); err != nil {
			return err
		}
	}
	if err := p.sc.end(); err != nil {
		return err
	}
	if len(p.samples) == 0 {
		return fmt.Errorf("%w: no numeric SenML record", ErrNoValue)
	}
	return nil
}

// senmlRecord reads one record object, updating base fields in place.
func (p *parser) senmlRecord(base *senmlBase) (senmlRecord, error) {
	var rec senmlRecord
	if p.sc.peek() != jsonObject {
		return rec, fmt.Errorf("%w: record is not an object", ErrBadSenML)
	}
	if err := p.sc.enter('{'); err != nil {
		return rec, err
	}
	for first := true; ; first = false {
		more, err := p.sc.more('}', first)
		if err != nil {
			return rec, err
		}
		if !more {
			return rec, nil
		}
		var key [8]byte
		k, err := p.sc.key(key[:0])
		if err != nil {
			return rec, err
		}
		var v scalar
		v, p.arena, err = p.sc.readScalar(p.arena)
		if err != nil {
			return rec, err
		}
		if err := p.senmlField(base, &rec, k, v); err != nil {
			return rec, err
		}
	}
}

func (p *parser) senmlField(base *senmlBase, rec *senmlRecord, kb []byte, v scalar) error {
	// k is only used in error messages; a copy keeps the caller's key
	// buffer on the stack.
	k := func() string { return string(kb) }
	num := func() (float64, error) {
		if v.kind != jsonNumber {
			return 0, fmt.Errorf("%w: field %q is not a number", ErrBadSenML, k())
		}
		f, err := parseDecimal(v.num)
		if err != nil {
			return 0, fmt.Errorf("%w: field %q: %w", ErrBadSenML, k(), err)
		}
		return f, nil
	}
	str := func() (span, error) {
		if v.kind != jsonString {
			return span{}, fmt.Errorf("%w: field %q is not a string", ErrBadSenML, k())
		}
		// The string was decoded at the end of the arena: keep it there.
		end := len(p.arena)
		return span{end - len(v.str), end}, nil
	}
	var err error
	switch string(kb) {
	case "bn":
		base.name, err = str()
	case "bu":
		base.unit, err = str()
	case "bt":
		base.t, err = num()
	case "bv":
		base.v, err = num()
	case "bs":
		base.s, err = num()
	case "n":
		rec.name, err = str()
		rec.hasName = true
	case "u":
		rec.unit, err = str()
		rec.hasUnit = true
	case "t":
		rec.t, err = num()
	case "v":
		rec.v, err = num()
		rec.hasV = true
	case "s":
		rec.s, err = num()
		rec.hasS = true
	case "vb":
		if v.kind != jsonBool {
			return fmt.Errorf("%w: field \"vb\" is not a boolean", ErrBadSenML)
		}
		rec.vb, rec.hasVB = v.b, true
	case "bver", "vs", "vd", "ut":
		// Version, string/data values and update time: valid, not numeric readings.
	default:
		if len(kb) > 0 && kb[len(kb)-1] == '_' {
			return fmt.Errorf("%w: must-understand field %q", ErrBadSenML, k())
		}
	}
	return err
}

// senmlResolve applies the base fields to a record and emits its sample.
func (p *parser) senmlResolve(base *senmlBase, rec *senmlRecord, received int64) error {
	var value float64
	switch {
	case rec.hasV:
		value = base.v + rec.v
	case rec.hasVB:
		if rec.vb {
			value = 1
		}
	case rec.hasS:
		value = base.s + rec.s
	default:
		return nil // string, data or base-only record
	}
	if math.IsInf(value, 0) || math.IsNaN(value) {
		return fmt.Errorf("%w: value out of range", ErrBadSenML)
	}
	off := len(p.arena)
	p.arena = append(p.arena, p.text(base.name)...)
	if rec.hasName {
		p.arena = append(p.arena, p.text(rec.name)...)
	}
	name := span{off, len(p.arena)}
	if !validSenMLName(p.text(name)) {
		return fmt.Errorf("%w: invalid name %q", ErrBadSenML, p.text(name))
	}
	unit := base.unit
	if rec.hasUnit {
		unit = rec.unit
	}
	t := base.t + rec.t
	var ts int64
	switch {
	case math.IsNaN(t) || math.Abs(t) >= float64(maxDeviceTime)/1e9:
		return fmt.Errorf("%w: SenML time out of range", ErrBadTimestamp)
	case t < senmlRelativeLimit:
		ts = received + int64(math.Round(t*1e6))*1e3
	default:
		ts = int64(math.Round(t*1e6)) * 1e3 // to the µs: see tsFromFloat
	}
	if ts < minDeviceTime || ts >= maxDeviceTime {
		return fmt.Errorf("%w: SenML time out of range", ErrBadTimestamp)
	}
	return p.add(sample{field: name, unit: unit, value: value, ts: ts})
}

// validSenMLName checks RFC 8428 §4.5.1: [A-Za-z0-9] then [A-Za-z0-9-:./_]*.
func validSenMLName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '-' && c != ':' && c != '.' && c != '/' && c != '_')) {
			return false
		}
	}
	return true
}
