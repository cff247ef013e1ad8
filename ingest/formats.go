package ingest

import (
	"bytes"
	"fmt"
)

// flatVisitor turns every numeric, boolean or ON/OFF leaf of a JSON object
// into a sample named by its path (zigbee2mqtt, Tasmota).
type flatVisitor struct {
	r       *compiledRule
	tasmota bool
	ts      int64
	noClock bool
	haveTS  bool
	err     error
}

func (fv *flatVisitor) leaf(p *parser, path []byte, v scalar) {
	if fv.err != nil {
		return
	}
	if !fv.haveTS && isTimePath(fv.r, path) {
		ns, ok, err := p.scalarTime(v)
		if err != nil {
			fv.err = err
			return
		}
		fv.ts, fv.noClock, fv.haveTS = ns, !ok, true
		return
	}
	if fv.tasmota && v.kind == jsonString {
		switch string(path) {
		case "TempUnit":
			p.tempUnit = p.appendText(v.str)
		case "PressureUnit":
			p.pressUnit = p.appendText(v.str)
		case "SpeedUnit":
			p.speedUnit = p.appendText(v.str)
		}
	}
	f, ok := scalarValue(v, false)
	if !ok {
		return
	}
	if err := p.add(sample{field: p.appendText(path), value: f}); err != nil {
		fv.err = err
	}
}

// parseFlat handles zigbee2mqtt and Tasmota objects.
func (p *parser) parseFlat(r *compiledRule, payload []byte) error {
	p.sc.reset(payload)
	p.path = p.path[:0]
	p.tempUnit, p.pressUnit, p.speedUnit = span{}, span{}, span{}
	if p.sc.peek() != jsonObject {
		if err := p.sc.skip(); err != nil {
			return err
		}
		return fmt.Errorf("%w: payload is not a JSON object", ErrNoValue)
	}
	p.flat = flatVisitor{r: r, tasmota: r.Format == FormatTasmota}
	fv := &p.flat
	if err := p.walkObject(fv, '/'); err != nil {
		return err
	}
	if err := p.sc.end(); err != nil {
		return err
	}
	if fv.err != nil {
		return fv.err
	}
	for i := range p.samples {
		s := &p.samples[i]
		s.ts, s.noClock = fv.ts, fv.noClock
		leaf := p.text(s.field)
		if j := bytes.LastIndexByte(leaf, '/'); j >= 0 {
			leaf = leaf[j+1:]
		}
		if fv.tasmota {
			s.unit = p.tasmotaUnit(leaf)
		} else {
			s.unit = p.zigbeeUnit(leaf, s.value)
		}
	}
	return nil
}

func (p *parser) tasmotaUnit(leaf []byte) span {
	switch string(leaf) {
	case "Temperature", "DewPoint":
		return p.tempUnit
	case "Pressure", "SeaPressure":
		return p.pressUnit
	case "Speed":
		return p.speedUnit
	case "Humidity":
		return p.appendText([]byte("%"))
	}
	return span{}
}

// zigbeeUnits are the units zigbee2mqtt documents for its common exposes;
// its payloads carry no units themselves.
var zigbeeUnits = map[string]string{
	"temperature":        "°C",
	"local_temperature":  "°C",
	"device_temperature": "°C",
	"humidity":           "%",
	"soil_moisture":      "%",
	"pressure":           "hPa",
	"battery":            "%",
	"voltage":            "mV",
	"illuminance_lux":    "lx",
	"linkquality":        "lqi",
	"power":              "W",
	"energy":             "kWh",
	"current":            "A",
	"co2":                "ppm",
	"pm25":               "µg/m³",
	"voc":                "ppb",
}

// zigbeeUnit returns the unit of a zigbee2mqtt field. "voltage" is a
// battery's in millivolts (2000-3300) on battery devices but the mains
// voltage in volts (230) on plugs: values below 1000 are volts.
func (p *parser) zigbeeUnit(leaf []byte, value float64) span {
	if bytes.HasSuffix(leaf, []byte("voltage")) { // voltage, battery_voltage
		if value < 1000 {
			return p.appendText([]byte("V"))
		}
		return p.appendText([]byte("mV"))
	}
	if u, ok := zigbeeUnits[string(leaf)]; ok {
		off := len(p.arena)
		p.arena = append(p.arena, u...)
		return span{off, len(p.arena)}
	}
	return span{}
}
